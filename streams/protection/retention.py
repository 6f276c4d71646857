"""Per-tenant retention of vault originals (``retention.yaml``) and per-user key re-wrapping.

Retention is crypto-shredding by age: a tenant's data keys whose period ended more than its
``days`` ago are destroyed (:meth:`KeyStore.shred_older_than`), which makes its older vault
originals and dead letters unreadable long before the topics' own retention drops them.
Principals that are not tenants (``_unattributed.pN``, dead letters of unknown users) follow
``default_days``.

Both operations act on ONE user so the Faust agent can run them from that user's own
partition (see :mod:`streams.protection.forget`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from streams.errors import ConfigError
from streams.vault import KeyStore, MasterKeyProvider, WrappedKeyBackend

Envelope = dict[str, Any]


@dataclass(frozen=True)
class RetentionPolicy:
    default_days: int
    tenants: dict[str, int] = field(default_factory=dict)

    def days_for(self, user_id: str) -> int:
        return self.tenants.get(user_id, self.default_days)

    def cutoff_for(self, user_id: str, now: datetime) -> datetime:
        return now - timedelta(days=self.days_for(user_id))


def _days(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 36500:
        raise ConfigError(f"{where}: days must be a whole number from 1 to 36500")
    return value


def parse_policy(text: str, source: str = "retention.yaml") -> RetentionPolicy:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{source}: not valid YAML") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise ConfigError(f"{source}: expected a mapping with version: 1")
    unknown = set(doc) - {"version", "default_days", "tenants"}
    if unknown:
        raise ConfigError(f"{source}: unknown keys {sorted(unknown)}")
    tenants = doc.get("tenants") or {}
    if not isinstance(tenants, dict):
        raise ConfigError(f"{source}: tenants must map tenant id -> days")
    return RetentionPolicy(
        default_days=_days(doc.get("default_days"), f"{source}: default_days"),
        tenants={str(t): _days(d, f"{source}: tenants.{t}") for t, d in tenants.items()},
    )


def load_policy(path: Path) -> RetentionPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_policy(text, str(path))


class OneUserBackend:
    """A view of a key backend restricted to one user, so ``rewrap_all`` touches only them.

    On a Faust worker each user's envelope must be written while processing an event of that
    user's partition; a whole-table ``rewrap_all`` from one event would misplace the others.
    """

    def __init__(self, backend: WrappedKeyBackend, user_id: str) -> None:
        self._backend, self._user = backend, user_id

    def get(self, user_id: str) -> Envelope | None:
        return self._backend.get(user_id) if user_id == self._user else None

    def put(self, user_id: str, envelope: Envelope) -> None:
        if user_id != self._user:
            raise KeyError("OneUserBackend writes only its own user")
        self._backend.put(user_id, envelope)

    def delete(self, user_id: str) -> bool:
        return self._backend.delete(user_id) if user_id == self._user else False

    def items(self) -> Iterable[tuple[str, Envelope]]:
        envelope = self._backend.get(self._user)
        return [] if envelope is None else [(self._user, envelope)]

    def __repr__(self) -> str:
        return "OneUserBackend(<one user>)"


def rewrap_user(provider: MasterKeyProvider, backend: WrappedKeyBackend, user_id: str) -> int:
    """Re-wrap one user's data keys under the provider's current master key; how many."""
    return KeyStore(provider, backend=OneUserBackend(backend, user_id)).rewrap_all()
