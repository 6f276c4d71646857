"""KeyStore: envelope encryption, shredding, per-period keys, master-key rotation, backends."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.errors import SecretsError
from streams.vault import (
    DecryptionError,
    Envelope,
    EnvelopeError,
    EnvMasterKeyProvider,
    InMemoryBackend,
    InvalidInputError,
    KeyShreddedError,
    KeyStore,
    RewrapError,
    StaticMasterKeyProvider,
    UnknownMasterKeyError,
    WrappedKeyBackend,
    generate_master_key,
)

K1 = generate_master_key()
K2 = generate_master_key()
T0 = datetime(2026, 11, 27, 20, 1, 51, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> KeyStore:
    return KeyStore(StaticMasterKeyProvider(f"k1:{K1}"), clock=clock)


def test_round_trip(store: KeyStore) -> None:
    key_id, nonce, ciphertext = store.encrypt("alice", b"4111 1111 1111 1111", b"evt-1")
    assert b"4111" not in ciphertext
    assert len(nonce) == 12
    assert store.decrypt("alice", key_id, nonce, ciphertext, b"evt-1") == b"4111 1111 1111 1111"


def test_nonces_are_fresh(store: KeyStore) -> None:
    first = store.encrypt("alice", b"same", b"")
    second = store.encrypt("alice", b"same", b"")
    assert first[0] == second[0]  # same period, same DEK
    assert first[1] != second[1]
    assert first[2] != second[2]


def test_wrong_aad_fails(store: KeyStore) -> None:
    key_id, nonce, ciphertext = store.encrypt("alice", b"secret", b"evt-1")
    with pytest.raises(DecryptionError, match="does not authenticate") as info:
        store.decrypt("alice", key_id, nonce, ciphertext, b"evt-2")
    assert isinstance(info.value, SecretsError)


def test_altered_ciphertext_fails(store: KeyStore) -> None:
    key_id, nonce, ciphertext = store.encrypt("alice", b"secret", b"a")
    altered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(DecryptionError):
        store.decrypt("alice", key_id, nonce, altered, b"a")


def test_another_users_key_cannot_open(store: KeyStore) -> None:
    key_id, nonce, ciphertext = store.encrypt("alice", b"secret", b"a")
    store.encrypt("bob", b"x", b"a")
    with pytest.raises(KeyShreddedError):  # bob has no DEK with alice's id
        store.decrypt("bob", key_id, nonce, ciphertext, b"a")


def test_shred_makes_decrypt_raise_and_leaves_others(store: KeyStore) -> None:
    alice = store.encrypt("alice", b"alice's", b"a")
    bob = store.encrypt("bob", b"bob's", b"b")
    assert store.shred("alice") is True
    with pytest.raises(KeyShreddedError, match="'alice'"):
        store.decrypt("alice", *alice, b"a")
    assert store.decrypt("bob", *bob, b"b") == b"bob's"
    assert store.key_ids("alice") == []
    assert store.shred("alice") is False


def test_new_key_after_shred_has_a_new_id(store: KeyStore) -> None:
    old = store.encrypt("alice", b"before", b"")
    store.shred("alice")
    new = store.encrypt("alice", b"after", b"")
    assert new[0] != old[0]
    with pytest.raises(KeyShreddedError):  # not a confusing authentication failure
        store.decrypt("alice", *old, b"")
    assert store.decrypt("alice", *new, b"") == b"after"


def test_one_key_per_period(store: KeyStore, clock: Clock) -> None:
    first = store.data_key_for("alice")
    assert store.data_key_for("alice").key_id == first.key_id
    assert first.key_id.startswith("20261127T000000Z.86400s.")
    assert first.not_before == datetime(2026, 11, 27, tzinfo=UTC)
    assert first.not_after == datetime(2026, 11, 28, tzinfo=UTC)
    clock.now += timedelta(days=1)
    second = store.data_key_for("alice")
    assert second.key_id != first.key_id
    assert store.key_ids("alice") == sorted([first.key_id, second.key_id])
    # An explicit time picks that period's existing key.
    assert store.data_key_for("alice", at=T0).key_id == first.key_id


def test_shred_older_than(store: KeyStore, clock: Clock) -> None:
    sealed = {}
    for day in range(3):
        clock.now = T0 + timedelta(days=day)
        sealed[day] = store.encrypt("alice", f"day {day}".encode(), b"")
    bob = store.encrypt("bob", b"bob", b"")  # bob's key is day 2's period

    # Cutoff in the middle of day 1: day 0's key is destroyed; day 1's straddles and stays.
    cutoff = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert store.shred_older_than("alice", cutoff) == 1
    with pytest.raises(KeyShreddedError):
        store.decrypt("alice", *sealed[0], b"")
    assert store.decrypt("alice", *sealed[1], b"") == b"day 1"
    assert store.decrypt("alice", *sealed[2], b"") == b"day 2"

    # Every user: only keys ended by the cutoff go; bob's current key stays.
    assert store.shred_older_than(None, datetime(2026, 11, 29, tzinfo=UTC)) == 1
    with pytest.raises(KeyShreddedError):
        store.decrypt("alice", *sealed[1], b"")
    assert store.decrypt("alice", *sealed[2], b"") == b"day 2"
    assert store.decrypt("bob", *bob, b"") == b"bob"

    # A user left with no key gets a tombstone.
    assert store.shred_older_than(None, datetime(2026, 12, 31, tzinfo=UTC)) == 2
    assert store.backend.get("alice") is None
    assert store.backend.get("bob") is None
    assert store.shred_older_than(None, datetime(2026, 12, 31, tzinfo=UTC)) == 0


def test_naive_datetimes_are_refused(store: KeyStore) -> None:
    with pytest.raises(InvalidInputError, match="time zone"):
        store.shred_older_than(None, datetime(2026, 1, 1))  # naive on purpose
    with pytest.raises(InvalidInputError):
        store.data_key_for("alice", at=datetime(2026, 1, 1))  # naive on purpose


def test_rotation_refresh_rewrap_then_drop_old_key(clock: Clock) -> None:
    environ = {"STREAMS_MASTER_KEY": f"k1:{K1}"}
    provider = EnvMasterKeyProvider(environ=environ)
    store = KeyStore(provider, clock=clock)
    old = store.encrypt("alice", b"under k1", b"a")
    bob_old = store.encrypt("bob", b"bob under k1", b"b")

    # Rotate: k2 current, k1 still readable.
    environ["STREAMS_MASTER_KEY"] = f"k2:{K2},k1:{K1}"
    provider.refresh()
    assert store.decrypt("alice", *old, b"a") == b"under k1"
    clock.now += timedelta(days=1)
    new = store.encrypt("alice", b"under k2", b"a")
    assert store.data_key_for("alice").master_key_id == "k2"
    assert store.data_key_for("alice", at=T0).master_key_id == "k1"

    assert store.rewrap_all() == 2  # alice's day-0 key and bob's
    assert store.rewrap_all() == 0  # idempotent
    assert store.data_key_for("alice", at=T0).master_key_id == "k2"

    # Drop k1: everything still opens, the DEKs (and ciphertexts) are unchanged.
    environ["STREAMS_MASTER_KEY"] = f"k2:{K2}"
    provider.refresh()
    assert store.decrypt("alice", *old, b"a") == b"under k1"
    assert store.decrypt("alice", *new, b"a") == b"under k2"
    assert store.decrypt("bob", *bob_old, b"b") == b"bob under k1"


def test_dropping_the_old_master_key_too_early_is_reported(store: KeyStore) -> None:
    sealed = store.encrypt("alice", b"x", b"")
    rotated = KeyStore(StaticMasterKeyProvider(f"k2:{K2}"), store.backend)
    with pytest.raises(UnknownMasterKeyError, match="'k1'"):
        rotated.decrypt("alice", *sealed, b"")
    with pytest.raises(RewrapError) as info:
        rotated.rewrap_all()
    assert info.value.failed == {"alice": "UnknownMasterKeyError"}


def test_rewrap_skips_broken_users_and_does_the_rest() -> None:
    backend: dict[str, Envelope] = {}
    store = KeyStore(StaticMasterKeyProvider(f"k1:{K1}"), backend)
    store.encrypt("alice", b"a", b"")
    bob = store.encrypt("bob", b"b", b"")
    backend["alice"] = {**backend["alice"], "v": 99}
    rotated = KeyStore(StaticMasterKeyProvider(f"k2:{K2},k1:{K1}"), backend)
    with pytest.raises(RewrapError) as info:
        rotated.rewrap_all()
    assert info.value.rewrapped == 1
    assert set(info.value.failed) == {"alice"}
    assert rotated.data_key_for("bob").master_key_id == "k2"
    assert rotated.decrypt("bob", *bob, b"") == b"b"


def test_changed_master_material_under_same_id(store: KeyStore) -> None:
    sealed = store.encrypt("alice", b"x", b"")
    impostor = KeyStore(StaticMasterKeyProvider(f"k1:{K2}"), store.backend)
    with pytest.raises(EnvelopeError, match="does not unwrap"):
        impostor.decrypt("alice", *sealed, b"")


def test_wrapped_key_is_bound_to_user_and_validity() -> None:
    backend: dict[str, Envelope] = {}
    store = KeyStore(StaticMasterKeyProvider(f"k1:{K1}"), backend)
    key_id, nonce, ciphertext = store.encrypt("alice", b"x", b"")
    # Copy alice's wrapped key to mallory's entry: it does not unwrap for mallory.
    backend["mallory"] = {**backend["alice"], "user_id": "mallory"}
    with pytest.raises(EnvelopeError):
        store.decrypt("mallory", key_id, nonce, ciphertext, b"")
    # Extend the key's life to dodge retention: it no longer unwraps.
    entry = backend["alice"]["keys"][key_id]
    backend["alice"] = {**backend["alice"], "keys": {key_id: {**entry, "not_after": "2099-01-01T00:00:00Z"}}}
    with pytest.raises(EnvelopeError):
        store.decrypt("alice", key_id, nonce, ciphertext, b"")


def test_envelope_stored_under_another_user_is_refused(store: KeyStore) -> None:
    store.encrypt("alice", b"x", b"")
    envelope = store.backend.get("alice")
    assert envelope is not None
    store.backend.put("bob", envelope)
    with pytest.raises(EnvelopeError, match="another user"):
        store.data_key_for("bob")


def test_plain_dict_backend_and_tombstone() -> None:
    backend: dict[str, dict[str, Any]] = {}
    store = KeyStore(StaticMasterKeyProvider(f"k1:{K1}"), backend)
    sealed = store.encrypt("alice", b"x", b"")
    envelope = backend["alice"]
    # The envelope is small, JSON-serializable, and holds only base64 strings for bytes.
    assert json.loads(json.dumps(envelope)) == envelope
    entry = envelope["keys"][sealed[0]]
    assert entry["master_key_id"] == "k1"
    assert len(base64.b64decode(entry["wrapped"])) == 32 + 16
    assert store.decrypt("alice", *sealed, b"") == b"x"
    # A second process sharing the table sees the same keys (nothing is cached) ...
    other = KeyStore(StaticMasterKeyProvider(f"k1:{K1}"), backend)
    assert other.decrypt("alice", *sealed, b"") == b"x"
    # ... and a tombstone written by anyone shreds the user for both.
    del backend["alice"]
    for keystore in (store, other):
        with pytest.raises(KeyShreddedError):
            keystore.decrypt("alice", *sealed, b"")


class RecordingTable(dict[str, dict[str, Any]]):
    """Like a Faust table: only assignment and deletion reach the changelog."""

    def __init__(self) -> None:
        super().__init__()
        self.changelog: list[tuple[str, dict[str, Any] | None]] = []

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        self.changelog.append((key, json.loads(json.dumps(value))))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.changelog.append((key, None))
        super().__delitem__(key)

    def pop(self, key: str, default: Any = None) -> Any:
        if key in self:
            value = self[key]
            del self[key]
            return value
        return default


def test_every_change_is_an_assignment_or_a_tombstone(clock: Clock) -> None:
    table = RecordingTable()
    store = KeyStore(StaticMasterKeyProvider(f"k1:{K1}"), table, clock=clock)
    store.encrypt("alice", b"x", b"")
    clock.now += timedelta(days=1)
    store.encrypt("alice", b"y", b"")
    store.shred_older_than("alice", clock.now)
    store.shred("alice")
    # Replaying the changelog gives the table's state: nothing was changed in place.
    replay: dict[str, dict[str, Any]] = {}
    for key, value in table.changelog:
        if value is None:
            replay.pop(key, None)
        else:
            replay[key] = value
    assert replay == table == {}
    assert [len(v["keys"]) if v else 0 for _, v in table.changelog] == [1, 2, 1, 0]


class ListBackend:
    """A custom WrappedKeyBackend that is not a mapping."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, Envelope]] = []

    def get(self, user_id: str) -> Envelope | None:
        return next((env for user, env in self.rows if user == user_id), None)

    def put(self, user_id: str, envelope: Envelope) -> None:
        self.delete(user_id)
        self.rows.append((user_id, envelope))

    def delete(self, user_id: str) -> bool:
        before = len(self.rows)
        self.rows = [(u, e) for u, e in self.rows if u != user_id]
        return len(self.rows) != before

    def items(self) -> Iterable[tuple[str, Envelope]]:
        return list(self.rows)


def test_custom_backend() -> None:
    backend = ListBackend()
    assert isinstance(backend, WrappedKeyBackend)
    store = KeyStore(StaticMasterKeyProvider(f"k1:{K1}"), backend)
    sealed = store.encrypt("alice", b"x", b"")
    assert store.decrypt("alice", *sealed, b"") == b"x"
    assert list(store.users()) == ["alice"]
    assert store.shred("alice")
    assert backend.rows == []


def test_bad_backend_and_period() -> None:
    provider = StaticMasterKeyProvider(f"k1:{K1}")
    with pytest.raises(TypeError):
        KeyStore(provider, object())  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(InvalidInputError):
        KeyStore(provider, period=timedelta(milliseconds=1500))


def test_reprs_hide_material(store: KeyStore) -> None:
    sealed = store.encrypt("alice", b"x", b"")
    key = store.data_key_for("alice")
    envelope = store.backend.get("alice")
    assert envelope is not None
    entry = envelope["keys"][sealed[0]]
    shown = "\n".join([repr(store), str(store), repr(key), str(key), repr(store.backend), repr(InMemoryBackend())])
    for secret in (
        K1,
        K1[:12],
        entry["wrapped"][:12],
        entry["nonce"],
        base64.b64encode(key.material).decode(),
    ):
        assert secret not in shown
    assert key.material.hex()[:16] not in shown
    assert "<hidden>" in repr(key)
