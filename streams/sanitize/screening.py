"""One hyperscan database over every recognizer's screen expression, compiled once.

A scan answers "which recognizers could match this text?" in one pass; a text with no hit
costs a few microseconds and skips every regex.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.sanitize.patterns import PatternSpec


class Screen:
    def __init__(self, specs: Sequence[PatternSpec]) -> None:
        import hyperscan

        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._db.compile(
            expressions=[spec.screen.encode("ascii") for spec in specs],
            ids=list(range(len(specs))),
            elements=len(specs),
            # SINGLEMATCH: one report per recognizer is all we need, and it lets hyperscan stop early.
            flags=[hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_DOTALL] * len(specs),
        )
        self._scratch = hyperscan.Scratch(self._db)

    def hits(self, text: str) -> list[int]:
        """Indices into the spec list whose screen matches, in ascending order."""
        found: list[int] = []
        self._db.scan(
            text.encode("utf-8", "surrogatepass"),
            match_event_handler=_collect,
            context=found,
            scratch=self._scratch,
        )
        if len(found) > 1:
            found.sort()
        return found


def _collect(spec_id: int, _from: int, _to: int, _flags: int, found: Any) -> None:
    found.append(spec_id)
