"""Per-user data keys (DEKs), wrapped under the master key, and envelope encryption with them.

Storage is one JSON-serializable *envelope* per user, keyed by the user id::

    {"v": 1, "user_id": "alice", "keys": {
        "20260101T000000Z.86400s.3f9a1c2e7b10": {
            "master_key_id": "k1", "nonce": "<b64>", "wrapped": "<b64>",
            "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-01-02T00:00:00Z"}}}

A user gets one DEK per period (a day by default), so retention can destroy old DEKs, and
with them old originals, while newer ones stay readable. Deleting the envelope shreds the
user. Envelopes are written whole, never changed in place, because a Faust table only writes
its changelog on assignment.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streams.vault.errors import (
    DecryptionError,
    EnvelopeError,
    InvalidInputError,
    KeyShreddedError,
    MasterKeyError,
    RewrapError,
)
from streams.vault.master import MasterKeyProvider

log = logging.getLogger(__name__)

Envelope = dict[str, Any]
ENVELOPE_VERSION = 1
DEK_BYTES = 32
NONCE_BYTES = 12  # 96-bit random nonces; a DEK seals one user's events of one period, far below 2**32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WRAP_CONTEXT = "streams.vault.dek/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise EnvelopeError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what} is not valid base64") from None


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(text: object, what: str) -> datetime:
    if not isinstance(text, str):
        raise EnvelopeError(f"{what} is not a timestamp string")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise EnvelopeError(f"{what} is not a UTC timestamp") from None


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} needs a time zone")
    return value.astimezone(UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, eq=False, slots=True)
class DataKey:
    """One user's data key for one period. ``material`` is the raw 32 bytes; the repr hides it."""

    user_id: str
    key_id: str
    not_before: datetime
    not_after: datetime
    master_key_id: str
    material: bytes = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"DataKey(user_id={self.user_id!r}, key_id={self.key_id!r}, "
            f"master_key_id={self.master_key_id!r}, material=<hidden>)"
        )

    __str__ = __repr__


@runtime_checkable
class WrappedKeyBackend(Protocol):
    """Where envelopes live, keyed by user id. Values must survive a JSON round trip."""

    def get(self, user_id: str) -> Envelope | None: ...

    def put(self, user_id: str, envelope: Envelope) -> None: ...

    def delete(self, user_id: str) -> bool:
        """Remove the user's envelope (a tombstone on a compacted topic); True if there was one."""
        ...

    def items(self) -> Iterable[tuple[str, Envelope]]: ...


class MappingBackend:
    """Adapts a ``MutableMapping[str, dict]`` (a dict, a Faust ``Table``) to :class:`WrappedKeyBackend`.

    Every write assigns a whole new dict, so a Faust table sends it to its changelog; ``delete``
    uses ``pop``, which on a Faust table sends the tombstone.
    """

    def __init__(self, mapping: MutableMapping[str, Envelope]) -> None:
        self._mapping = mapping

    def get(self, user_id: str) -> Envelope | None:
        return self._mapping.get(user_id)

    def put(self, user_id: str, envelope: Envelope) -> None:
        self._mapping[user_id] = envelope

    def delete(self, user_id: str) -> bool:
        return self._mapping.pop(user_id, None) is not None

    def items(self) -> Iterable[tuple[str, Envelope]]:
        return list(self._mapping.items())  # a snapshot: callers write while they iterate

    def __len__(self) -> int:
        return len(self._mapping)

    def __repr__(self) -> str:
        # Never the mapping's own repr: it would print every wrapped key.
        return f"{type(self).__name__}(users={len(self._mapping)})"


class InMemoryBackend(MappingBackend):
    """A dict, with a JSON round trip on every read and write as a real changelog would do.

    The round trip also means callers never share (and so never mutate) a stored envelope.
    """

    def __init__(self) -> None:
        super().__init__({})

    def get(self, user_id: str) -> Envelope | None:
        envelope = super().get(user_id)
        return None if envelope is None else _json_copy(envelope)

    def put(self, user_id: str, envelope: Envelope) -> None:
        super().put(user_id, _json_copy(envelope))

    def items(self) -> Iterable[tuple[str, Envelope]]:
        return [(user, _json_copy(env)) for user, env in super().items()]


def _json_copy(envelope: Envelope) -> Envelope:
    copy: Envelope = json.loads(json.dumps(envelope))
    return copy


def _as_backend(backend: WrappedKeyBackend | MutableMapping[str, Envelope] | None) -> WrappedKeyBackend:
    if backend is None:
        return InMemoryBackend()
    # A Faust Table is a MutableMapping (and has no put/delete): adapt mappings first.
    if isinstance(backend, MutableMapping):
        return MappingBackend(backend)
    if isinstance(backend, WrappedKeyBackend):
        return backend
    raise TypeError(f"backend must be a WrappedKeyBackend or a MutableMapping, not {type(backend).__name__}")


def _wrap_aad(user_id: str, key_id: str, entry: Envelope) -> bytes:
    # Binds a wrapped DEK to its user, id and validity: moving it to another user, or editing
    # not_after to dodge retention, makes it fail to unwrap.
    fields = [_WRAP_CONTEXT, user_id, key_id, entry["not_before"], entry["not_after"]]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class KeyStore:
    """Per-user data keys over a :class:`WrappedKeyBackend`, wrapped by a :class:`MasterKeyProvider`.

    ``period`` is how long one DEK is used for new data (whole seconds, at least one); retention
    can destroy data in steps of it. ``clock`` returns an aware "now" (tests pass a fake one).

    Plaintext DEKs are never cached: every operation unwraps from the backend, so a shred done
    by another process through the same table takes effect at once. Read-modify-write of an
    envelope is serialized in this process by a lock; across processes, only the owner of a
    user's table partition may write that user's envelope (two creators would race and one DEK
    would be lost).
    """

    def __init__(
        self,
        provider: MasterKeyProvider,
        backend: WrappedKeyBackend | MutableMapping[str, Envelope] | None = None,
        *,
        period: timedelta = timedelta(days=1),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        seconds = period.total_seconds()
        if seconds < 1 or seconds != int(seconds):
            raise InvalidInputError("period must be a whole number of seconds, at least one")
        self._provider = provider
        self._backend = _as_backend(backend)
        self._period = int(seconds)
        self._clock = clock
        self._lock = threading.RLock()

    @property
    def backend(self) -> WrappedKeyBackend:
        return self._backend

    @property
    def provider(self) -> MasterKeyProvider:
        """The master keys new user keys are wrapped with (rotation re-wraps with them)."""
        return self._provider

    def __repr__(self) -> str:
        return f"KeyStore(provider={self._provider!r}, backend={self._backend!r}, period={self._period}s)"

    __str__ = __repr__

    def now(self) -> datetime:
        """The keystore's clock, as an aware UTC datetime."""
        return _aware(self._clock(), "clock()")

    # -- envelopes ---------------------------------------------------------------------------

    def _load(self, user_id: str) -> Envelope | None:
        envelope = self._backend.get(user_id)
        if envelope is None:
            return None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("keys"), dict):
            raise EnvelopeError(f"the key envelope of user {user_id!r} is malformed")
        if envelope.get("v") != ENVELOPE_VERSION:
            raise EnvelopeError(f"the key envelope of user {user_id!r} has unknown version {envelope.get('v')!r}")
        if envelope.get("user_id") != user_id:
            raise EnvelopeError(f"the key envelope stored under user {user_id!r} belongs to another user")
        return envelope

    @staticmethod
    def _new_envelope(user_id: str, keys: dict[str, Envelope]) -> Envelope:
        return {"v": ENVELOPE_VERSION, "user_id": user_id, "keys": keys}

    def _wrap(self, user_id: str, key_id: str, entry: Envelope, material: bytes) -> Envelope:
        master = self._provider.current()
        nonce = secrets.token_bytes(NONCE_BYTES)
        wrapped = AESGCM(master.material).encrypt(nonce, material, _wrap_aad(user_id, key_id, entry))
        return {**entry, "master_key_id": master.key_id, "nonce": _b64(nonce), "wrapped": _b64(wrapped)}

    def _unwrap(self, user_id: str, key_id: str, entry: object) -> DataKey:
        what = f"data key {key_id!r} of user {user_id!r}"
        if not isinstance(entry, dict):
            raise EnvelopeError(f"{what} is malformed")
        master_key_id = entry.get("master_key_id")
        if not isinstance(master_key_id, str):
            raise EnvelopeError(f"{what} names no master key")
        not_before = _parse_ts(entry.get("not_before"), f"{what}: not_before")
        not_after = _parse_ts(entry.get("not_after"), f"{what}: not_after")
        nonce = _unb64(entry.get("nonce"), f"{what}: nonce")
        wrapped = _unb64(entry.get("wrapped"), f"{what}: wrapped")
        master = self._provider.get(master_key_id)  # UnknownMasterKeyError if it was dropped too soon
        try:
            material = AESGCM(master.material).decrypt(nonce, wrapped, _wrap_aad(user_id, key_id, entry))
        except InvalidTag:
            raise EnvelopeError(
                f"{what} does not unwrap under master key {master_key_id!r}: "
                "the master key material changed under the same id, or the envelope was altered"
            ) from None
        return DataKey(user_id, key_id, not_before, not_after, master_key_id, material)

    # -- data keys ---------------------------------------------------------------------------

    def _period_of(self, at: datetime) -> tuple[datetime, datetime]:
        index = (at - _EPOCH) // timedelta(seconds=self._period)
        start = _EPOCH + timedelta(seconds=index * self._period)
        return start, start + timedelta(seconds=self._period)

    def data_key_for(self, user_id: str, at: datetime | None = None) -> DataKey:
        """The user's DEK for the period holding ``at`` (default now), created on first use."""
        if not user_id:
            raise InvalidInputError("user_id must not be empty")
        when = _aware(at, "at") if at is not None else self.now()
        with self._lock:
            envelope = self._load(user_id)
            keys: dict[str, Envelope] = dict(envelope["keys"]) if envelope else {}
            covering = []
            for key_id, entry in keys.items():
                if not isinstance(entry, dict):
                    raise EnvelopeError(f"data key {key_id!r} of user {user_id!r} is malformed")
                start = _parse_ts(entry.get("not_before"), f"data key {key_id!r}: not_before")
                end = _parse_ts(entry.get("not_after"), f"data key {key_id!r}: not_after")
                if start <= when < end:
                    covering.append((start, key_id, entry))
            if covering:
                # Several only if the period setting changed: the latest-starting one wins.
                _, key_id, entry = max(covering, key=lambda item: item[0])
                return self._unwrap(user_id, key_id, entry)
            start, end = self._period_of(when)
            # The random tail keeps ids unique: a DEK re-created for a shredded period gets a new
            # id, so the old ciphertexts report "shredded" instead of failing to authenticate.
            key_id = f"{start:%Y%m%dT%H%M%SZ}.{self._period}s.{secrets.token_hex(6)}"
            material = secrets.token_bytes(DEK_BYTES)
            entry = self._wrap(user_id, key_id, {"not_before": _ts(start), "not_after": _ts(end)}, material)
            keys[key_id] = entry
            self._backend.put(user_id, self._new_envelope(user_id, keys))
            log.info("created data key %s for user %r", key_id, user_id)
            return DataKey(user_id, key_id, start, end, entry["master_key_id"], material)

    def key_ids(self, user_id: str) -> list[str]:
        """The ids of the user's live DEKs, oldest first (empty after a shred)."""
        envelope = self._load(user_id)
        return sorted(envelope["keys"]) if envelope else []

    # -- envelope encryption ------------------------------------------------------------------

    def encrypt(
        self, user_id: str, plaintext: bytes, aad: bytes, *, at: datetime | None = None
    ) -> tuple[str, bytes, bytes]:
        """AES-256-GCM under the user's DEK for ``at`` (default now): ``(key_id, nonce, ciphertext)``.

        ``aad`` is authenticated, not encrypted, and must be given again to decrypt.
        """
        key = self.data_key_for(user_id, at)
        nonce = secrets.token_bytes(NONCE_BYTES)
        return key.key_id, nonce, AESGCM(key.material).encrypt(nonce, plaintext, aad)

    def decrypt(self, user_id: str, key_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """The plaintext, or :class:`KeyShreddedError` if the DEK is gone, :class:`DecryptionError`
        if the bytes or ``aad`` do not authenticate."""
        envelope = self._load(user_id)
        if envelope is None:
            raise KeyShreddedError(f"user {user_id!r} has no data keys (shredded, expired or never created)")
        entry = envelope["keys"].get(key_id)
        if entry is None:
            raise KeyShreddedError(f"data key {key_id!r} of user {user_id!r} is gone (shredded or expired)")
        key = self._unwrap(user_id, key_id, entry)
        if len(nonce) != NONCE_BYTES:
            raise DecryptionError(f"nonce is {len(nonce)} bytes; AES-GCM here uses {NONCE_BYTES}")
        try:
            return AESGCM(key.material).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionError(
                f"ciphertext under data key {key_id!r} of user {user_id!r} does not authenticate "
                "(wrong associated data, or altered bytes)"
            ) from None

    # -- shredding ---------------------------------------------------------------------------

    def shred(self, user_id: str) -> bool:
        """Destroy every DEK of the user (a tombstone); True if there were any.

        Afterwards nothing of the user's decrypts, here or anywhere reading the same backend.
        """
        with self._lock:
            removed = self._backend.delete(user_id)
        if removed:
            log.info("shredded all data keys of user %r", user_id)
        return removed

    def shred_older_than(self, user_id: str | None, cutoff: datetime) -> int:
        """Destroy the DEKs whose period ended at or before ``cutoff``; returns how many.

        ``user_id=None`` means every user. A DEK whose period straddles ``cutoff`` is kept, so
        nothing newer than ``cutoff`` is lost; data slightly older may live up to one period
        longer. A user left with no DEK gets a tombstone.
        """
        limit = _aware(cutoff, "cutoff")
        users = [user_id] if user_id is not None else [user for user, _ in self._backend.items()]
        destroyed = 0
        with self._lock:
            for user in users:
                envelope = self._load(user)
                if envelope is None:
                    continue
                keep: dict[str, Envelope] = {}
                for key_id, entry in envelope["keys"].items():
                    end = _parse_ts(
                        entry.get("not_after") if isinstance(entry, dict) else None,
                        f"data key {key_id!r} of user {user!r}: not_after",
                    )
                    if end > limit:
                        keep[key_id] = entry
                gone = len(envelope["keys"]) - len(keep)
                if not gone:
                    continue
                if keep:
                    self._backend.put(user, self._new_envelope(user, keep))
                else:
                    self._backend.delete(user)
                destroyed += gone
                log.info("shredded %d data keys of user %r ended by %s", gone, user, _ts(limit))
        return destroyed

    # -- master key rotation -----------------------------------------------------------------

    def rewrap_all(self) -> int:
        """Re-wrap every DEK not under the current master key; returns how many were re-wrapped.

        The DEKs themselves (and so every ciphertext) stay the same. Users that fail are
        skipped and reported together in a :class:`RewrapError` after the rest are done; the
        call is idempotent, so run it again once the cause is fixed. Only after it succeeds may
        the old master key be dropped from the provider.
        """
        current = self._provider.current().key_id
        rewrapped = 0
        failed: dict[str, str] = {}
        with self._lock:
            for user, _ in self._backend.items():
                try:
                    rewrapped += self._rewrap_user(user, current)
                except (EnvelopeError, MasterKeyError) as exc:
                    failed[user] = type(exc).__name__
                    log.error("could not re-wrap the data keys of user %r: %s", user, exc)
        if rewrapped:
            log.info("re-wrapped %d data keys under master key %r", rewrapped, current)
        if failed:
            raise RewrapError(rewrapped, failed)
        return rewrapped

    def _rewrap_user(self, user_id: str, current: str) -> int:
        envelope = self._load(user_id)
        if envelope is None:
            return 0
        keys: dict[str, Envelope] = {}
        count = 0
        for key_id, entry in envelope["keys"].items():
            if isinstance(entry, dict) and entry.get("master_key_id") == current:
                keys[key_id] = entry
                continue
            key = self._unwrap(user_id, key_id, entry)
            base = {"not_before": _ts(key.not_before), "not_after": _ts(key.not_after)}
            keys[key_id] = self._wrap(user_id, key_id, base, key.material)
            count += 1
        if count:
            self._backend.put(user_id, self._new_envelope(user_id, keys))
        return count

    def users(self) -> Iterator[str]:
        """The user ids holding at least one DEK in this backend (on a Faust worker: its partitions)."""
        return (user for user, _ in self._backend.items())
