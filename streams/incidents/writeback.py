"""Table writes batched per key: one changelog record per ring per batch, not per event.

A detector touches up to seven rings per event and each write re-serializes the whole ring
(a latency sketch included) into a changelog record; at a few hundred events a second that
was most of the incidents stage's time. ``WriteBack`` reads through to the table and keeps
writes until ``flush()``, which sets each changed key once.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

_DELETED = object()


class WriteBack(MutableMapping[str, Any]):
    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table
        self._pending: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self._pending:
            value = self._pending[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self._table[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._pending[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._pending[key] = _DELETED

    def __contains__(self, key: object) -> bool:
        if key in self._pending:
            return self._pending[key] is not _DELETED
        return key in self._table

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for key, value in self._pending.items():
            seen.add(key)
            if value is not _DELETED:
                yield key
        for key in list(self._table):
            if key not in seen:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def flush(self) -> int:
        """Write the pending keys to the table; returns how many."""
        n = len(self._pending)
        for key, value in self._pending.items():
            if value is _DELETED:
                self._table.pop(key, None)
            else:
                self._table[key] = value
        self._pending.clear()
        return n
