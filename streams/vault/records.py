"""Sealing and opening what goes on the ``vault`` and ``dlq`` topics.

The associated data binds each ciphertext to where it belongs: a vault record's to its event
and user (copying the bytes into another record makes them fail to open), a dead letter's to
its principal.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from streams.models import DeadLetter, VaultRecord
from streams.vault.errors import InvalidInputError, VaultError
from streams.vault.keystore import KeyStore

UNATTRIBUTED = "_unattributed"
"""The principal whose data keys seal dead letters with no known user.

Reserved: no real user may have this id. Shredding a user cannot reach their unattributed dead
letters (nothing says whose they are); those go when the DLQ's retention drops them and when a
retention job calls ``keystore.shred_older_than(UNATTRIBUTED, cutoff)``.
"""

_VAULT_AAD = "streams.vault.record/v1"
_DLQ_AAD = "streams.dlq.original/v1"


def _aad(*parts: str) -> bytes:
    # JSON framing, so ("a", "bc") and ("ab", "c") never give the same bytes.
    return json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_aad(event_id: str, user_id: str) -> bytes:
    """The associated data of a vault record: its event id and user id."""
    return _aad(_VAULT_AAD, event_id, user_id)


def _check_user(user_id: str) -> None:
    if user_id == UNATTRIBUTED:
        raise InvalidInputError(f"{UNATTRIBUTED!r} is reserved for dead letters with no known user")


def seal_findings(
    keystore: KeyStore,
    user_id: str,
    event_id: str,
    findings: list[dict[str, Any]],
    *,
    at: datetime | None = None,
) -> VaultRecord:
    """Encrypt the originals a sanitizer replaced in one event into a :class:`VaultRecord`.

    ``at`` (default: the keystore's clock) picks the data key's period and is ``created_at``;
    pass the event's time to make retention follow event time.
    """
    _check_user(user_id)
    try:
        plaintext = json.dumps(findings, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        # The message names the offending type, never the value (it is the PII being sealed).
        raise InvalidInputError(f"findings are not plain JSON: {type(exc).__name__}") from None
    when = at if at is not None else keystore.now()
    key_id, nonce, ciphertext = keystore.encrypt(
        user_id, plaintext.encode("utf-8"), record_aad(event_id, user_id), at=when
    )
    return VaultRecord(
        event_id=event_id,
        user_id=user_id,
        key_id=key_id,
        nonce=nonce,
        ciphertext=ciphertext,
        entity_count=len(findings),
        created_at=when,
    )


def open_record(keystore: KeyStore, record: VaultRecord) -> list[dict[str, Any]]:
    """The findings sealed in ``record``; :class:`KeyShreddedError` once the user's key is gone."""
    plaintext = keystore.decrypt(
        record.user_id,
        record.key_id,
        record.nonce,
        record.ciphertext,
        record_aad(record.event_id, record.user_id),
    )
    findings = json.loads(plaintext.decode("utf-8"))
    if not isinstance(findings, list) or not all(isinstance(item, dict) for item in findings):
        raise VaultError(f"vault record of event {record.event_id!r} does not hold a list of findings")
    return findings


def seal_dead_letter(keystore: KeyStore, user_id: str | None, raw: bytes) -> tuple[str, bytes, bytes]:
    """Encrypt a dead letter's original bytes: ``(key_id, nonce, ciphertext)`` for :class:`DeadLetter`.

    ``user_id=None`` (the user is unknown, or not trustworthy because the record did not parse)
    seals under :data:`UNATTRIBUTED`. Set ``DeadLetter.user_id`` to exactly the ``user_id``
    given here: :func:`open_dead_letter` reads the principal from it.
    """
    if user_id is not None:
        _check_user(user_id)
    principal = user_id if user_id is not None else UNATTRIBUTED
    return keystore.encrypt(principal, raw, _aad(_DLQ_AAD, principal))


def open_dead_letter(keystore: KeyStore, record: DeadLetter) -> bytes:
    """The original bytes of a dead letter sealed by :func:`seal_dead_letter`."""
    if record.original_key_id is None or record.original_nonce is None or record.original_ciphertext is None:
        raise VaultError(f"dead letter {record.dlq_id!r} holds no sealed original")
    principal = record.user_id if record.user_id is not None else UNATTRIBUTED
    return keystore.decrypt(
        principal,
        record.original_key_id,
        record.original_nonce,
        record.original_ciphertext,
        _aad(_DLQ_AAD, principal),
    )
