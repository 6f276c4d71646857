"""Vault records and dead-letter originals: seal, open, bind to their event, shred."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from streams.models import DeadLetter, VaultRecord
from streams.vault import (
    UNATTRIBUTED,
    DecryptionError,
    InvalidInputError,
    KeyShreddedError,
    KeyStore,
    StaticMasterKeyProvider,
    VaultError,
    generate_master_key,
    open_dead_letter,
    open_record,
    seal_dead_letter,
    seal_findings,
)

T0 = datetime(2026, 11, 27, 20, 1, 51, tzinfo=UTC)
FINDINGS: list[dict[str, Any]] = [
    {"entity": "EMAIL", "path": "payload.prompt", "start": 10, "end": 27, "original": "ana@example.com"},
    {"entity": "PERSON", "path": "error_message", "original": "José Ñúñez"},
]


@pytest.fixture
def store() -> KeyStore:
    return KeyStore(StaticMasterKeyProvider(generate_master_key()), clock=lambda: T0)


def test_seal_and_open(store: KeyStore) -> None:
    record = seal_findings(store, "alice", "evt-1", FINDINGS)
    assert isinstance(record, VaultRecord)
    assert (record.event_id, record.user_id, record.entity_count) == ("evt-1", "alice", 2)
    assert record.created_at == T0
    assert record.algorithm == "AES-256-GCM"
    assert b"ana@example.com" not in record.ciphertext
    assert record.key_id in store.key_ids("alice")
    assert open_record(store, record) == FINDINGS
    # It survives the wire form.
    assert open_record(store, VaultRecord.from_avro(record.to_avro())) == FINDINGS


def test_event_time_picks_the_key(store: KeyStore) -> None:
    at = datetime(2026, 10, 1, 8, tzinfo=UTC)
    record = seal_findings(store, "alice", "evt-1", [], at=at)
    assert record.created_at == at
    assert record.key_id.startswith("20261001T000000Z.")
    assert open_record(store, record) == []


def test_record_is_bound_to_event_and_user(store: KeyStore) -> None:
    record = seal_findings(store, "alice", "evt-1", FINDINGS)
    with pytest.raises(DecryptionError):
        open_record(store, record.model_copy(update={"event_id": "evt-2"}))


def test_shred_user_makes_records_unreadable(store: KeyStore) -> None:
    alice = seal_findings(store, "alice", "evt-1", FINDINGS)
    bob = seal_findings(store, "bob", "evt-2", FINDINGS[:1])
    store.shred("alice")
    with pytest.raises(KeyShreddedError):
        open_record(store, alice)
    assert open_record(store, bob) == FINDINGS[:1]


def test_findings_must_be_plain_json(store: KeyStore) -> None:
    with pytest.raises(InvalidInputError, match="not plain JSON") as info:
        seal_findings(store, "alice", "evt-1", [{"original": Decimal("4111.11")}])
    assert "4111" not in str(info.value)


def test_reserved_principal_is_refused(store: KeyStore) -> None:
    with pytest.raises(InvalidInputError, match="reserved"):
        seal_findings(store, UNATTRIBUTED, "evt-1", FINDINGS)
    with pytest.raises(InvalidInputError, match="reserved"):
        seal_dead_letter(store, UNATTRIBUTED, b"x")


def _dead_letter(user_id: str | None, sealed: tuple[str, bytes, bytes] | None) -> DeadLetter:
    key_id, nonce, ciphertext = sealed or (None, None, None)
    return DeadLetter(
        dlq_id="dlq-1",
        stage="sanitize",
        reason="payload is not JSON",
        error_type="DecodeError",
        source_topic="hook.events.raw",
        source_partition=0,
        source_offset=42,
        received_at=T0,
        user_id=user_id,
        original_key_id=key_id,
        original_nonce=nonce,
        original_ciphertext=ciphertext,
    )


def test_dead_letters_with_and_without_a_user(store: KeyStore) -> None:
    raw = b'{"user_id": "alice", "payload": "ana@example.com'
    unattributed = _dead_letter(None, seal_dead_letter(store, None, raw))
    attributed = _dead_letter("alice", seal_dead_letter(store, "alice", raw))
    assert store.key_ids(UNATTRIBUTED)
    assert open_dead_letter(store, unattributed) == raw
    assert open_dead_letter(store, attributed) == raw

    store.shred("alice")
    with pytest.raises(KeyShreddedError):
        open_dead_letter(store, attributed)
    assert open_dead_letter(store, unattributed) == raw  # only retention reaches these

    # Claiming the unattributed original for a user does not open it.
    with pytest.raises(KeyShreddedError):
        open_dead_letter(store, unattributed.model_copy(update={"user_id": "mallory"}))


def test_dead_letter_without_original(store: KeyStore) -> None:
    with pytest.raises(VaultError, match="no sealed original"):
        open_dead_letter(store, _dead_letter(None, None))
