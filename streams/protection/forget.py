"""Right to delete: the request on the ``deletion_requests`` topic and the forget itself.

A request is a JSON record keyed by ``user_id`` on ``deletion_requests``, which has as many
partitions as ``raw``: the default partitioner puts it on the partition whose sanitize worker
owns the user's vault keys, so the forget agent (running in the sanitize stage) writes the
vault-keys table from an event of the right partition and the tombstone lands in the right
changelog partition. The same topic carries the stage's own per-user commands (retention
cutoffs, key re-wraps) for the same reason: Faust timers have no current partition.

:func:`forget_user` is pure (a ``KeyStore`` and a mapping): it shreds the user's data keys,
records the user as forgotten (so originals arriving later are never vaulted again), verifies,
and returns the :class:`DeletionRecord`. Repeating it is harmless: the record then says that
nothing was found.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.errors import DecodeError, PermanentError
from streams.models import DeletionRecord
from streams.vault import UNATTRIBUTED, KeyShreddedError, KeyStore

OP_FORGET = "forget"
OP_RETENTION = "retention"
OP_REWRAP = "rewrap"
OPS = (OP_FORGET, OP_RETENTION, OP_REWRAP)
FORGOTTEN_TABLE = "forgotten-users"
# Associated data of the verification probe: never a valid vault or dead-letter aad.
_PROBE_AAD = b'["streams.protection.forget-probe/v1"]'
_PROBE = b"forget-probe"


@dataclass(frozen=True)
class Command:
    """One record of ``deletion_requests``. ``cutoff`` only for retention."""

    op: str
    user_id: str
    request_id: str
    requested_by: str
    requested_at: datetime
    cutoff: datetime | None = None


def check_user_id(user_id: str) -> str:
    """A user id a request may name; the dead-letter principal is nobody's to forget."""
    if not user_id or len(user_id) > 256:
        raise PermanentError("user id must be 1 to 256 characters")
    if user_id == UNATTRIBUTED or user_id.startswith(f"{UNATTRIBUTED}."):
        raise PermanentError(f"{UNATTRIBUTED!r} is reserved for dead letters with no known user")
    return user_id


def forget_request(user_id: str, requested_by: str, *, now: datetime | None = None) -> Command:
    if not requested_by or len(requested_by) > 256:
        raise PermanentError("requested_by must be 1 to 256 characters")
    return Command(
        OP_FORGET, check_user_id(user_id), str(uuid.uuid4()), requested_by, (now or datetime.now(UTC)).astimezone(UTC)
    )


def encode_command(command: Command) -> bytes:
    doc: dict[str, Any] = {
        "v": 1,
        "op": command.op,
        "user_id": command.user_id,
        "request_id": command.request_id,
        "requested_by": command.requested_by,
        "requested_at": command.requested_at.isoformat(),
    }
    if command.cutoff is not None:
        doc["cutoff"] = command.cutoff.isoformat()
    return json.dumps(doc, separators=(",", ":")).encode()


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise DecodeError(f"{what} is not a string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DecodeError(f"{what} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise DecodeError(f"{what} has no time zone")
    return parsed.astimezone(UTC)


def decode_command(data: bytes | None) -> Command:
    """A command from its JSON bytes; DecodeError naming the field (never its value)."""
    if data is None:
        raise DecodeError("empty value (tombstone)")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise DecodeError("deletion request is not JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise DecodeError("deletion request is not a version 1 JSON object")
    op = doc.get("op")
    if op not in OPS:
        raise DecodeError("deletion request: unknown op")
    for name in ("user_id", "request_id", "requested_by"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise DecodeError(f"deletion request: {name} missing")
    cutoff = _time(doc["cutoff"], "cutoff") if op == OP_RETENTION else None
    requested_at = _time(doc.get("requested_at"), "requested_at")
    return Command(op, doc["user_id"], doc["request_id"], doc["requested_by"], requested_at, cutoff)


def is_forgotten(forgotten: Any, user_id: str) -> bool:
    """Whether the user was forgotten (``forgotten`` is the table, or None when not wired)."""
    return forgotten is not None and forgotten.get(user_id) is not None


def forget_user(
    keystore: KeyStore,
    forgotten: MutableMapping[str, Any],
    command: Command,
    *,
    keys_topic: str,
    tombstoned: Sequence[str] = (),
    now: datetime | None = None,
) -> DeletionRecord:
    """Shred the user's data keys, mark the user forgotten, verify; the proof record.

    ``tombstoned`` names other compacted topics a tombstone was already written to.
    Deterministic ``deletion_id`` (from the request id): a request processed again after a
    crash yields a record with the same id, which says nothing was left to find.
    """
    user_id = command.user_id
    check_user_id(user_id)
    at = (now or datetime.now(UTC)).astimezone(UTC)
    # Mark first: if a later step fails, the retry still finds (and shreds) the keys, and the
    # sanitize stage already stopped vaulting this user.
    marker = forgotten.get(user_id)
    if marker is None:
        forgotten[user_id] = {"forgotten_at": at.isoformat(), "deletion_id": f"del-{command.request_id}"}
    key_ids = keystore.key_ids(user_id)
    probe: tuple[str, bytes, bytes] | None = None
    if key_ids:
        # Seal a probe under the user's live key, so verification proves a real ciphertext
        # of this user no longer opens (not merely that the mapping looks empty).
        probe = keystore.encrypt(user_id, _PROBE, _PROBE_AAD, at=at)
    shredded = keystore.shred(user_id)  # on the Faust table: pop -> tombstone in vault_keys

    removed: list[str] = []
    if shredded:
        removed.append(f"{keys_topic}: {len(key_ids)} data key(s) shredded (tombstone)")
    removed += [f"{topic}: tombstone written" for topic in tombstoned]

    left = keystore.key_ids(user_id)
    opened = False
    if probe is not None:
        try:
            keystore.decrypt(user_id, *probe, _PROBE_AAD)
            opened = True
        except KeyShreddedError:
            opened = False
    verified = not left and not opened and is_forgotten(forgotten, user_id)

    if shredded:
        detail = "vault originals and dead letters of this user no longer decrypt"
    elif marker is not None:
        detail = f"nothing found: already forgotten at {marker.get('forgotten_at', '?')}"
    else:
        detail = "nothing found: no data keys for this user"
    detail += "; verified: no key left, a sealed probe does not open" if verified else "; NOT verified"
    return DeletionRecord(
        deletion_id=f"del-{command.request_id}",
        user_id=user_id,
        requested_by=command.requested_by,
        requested_at=command.requested_at,
        completed_at=at,
        removed=removed,
        verified=verified,
        detail=detail,
    )
