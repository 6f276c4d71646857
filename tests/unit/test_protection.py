"""Data protection without Kafka: forget, the audit chain, retention, re-wrap, the API token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streams.errors import ConfigError, DecodeError, PermanentError
from streams.models import AuditRecord, HookEvent
from streams.protection.audit import GENESIS, audit_record, link_hash, verify_chain
from streams.protection.auth import bearer_ok, client_token, configured_token, worker_token
from streams.protection.forget import (
    OP_RETENTION,
    Command,
    decode_command,
    encode_command,
    forget_request,
    forget_user,
    is_forgotten,
)
from streams.protection.retention import OneUserBackend, load_policy, parse_policy, rewrap_user
from streams.settings import Settings
from streams.vault import (
    FileMasterKeyProvider,
    InMemoryBackend,
    KeyShreddedError,
    KeyStore,
    StaticMasterKeyProvider,
    generate_master_key,
    open_record,
    seal_findings,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)


def _keystore() -> KeyStore:
    return KeyStore(StaticMasterKeyProvider(f"k1:{generate_master_key()}"), clock=lambda: NOW)


def _seal(store: KeyStore, user: str, event_id: str, at: datetime = NOW) -> object:
    return seal_findings(store, user, event_id, [{"path": "payload.to", "text": "jane@example.org"}], at=at)


# -- forget ----------------------------------------------------------------------------------


def test_forget_shreds_verifies_and_leaves_other_users_alone() -> None:
    store, forgotten = _keystore(), {}
    acme = _seal(store, "acme-corp", "e-1")
    older = _seal(store, "acme-corp", "e-0", NOW - timedelta(days=3))
    globex = _seal(store, "globex", "e-2")
    record = forget_user(
        store, forgotten, forget_request("acme-corp", "dpo@example.org", now=NOW), keys_topic="hook.vault.keys", now=NOW
    )
    assert record.verified and record.user_id == "acme-corp" and record.requested_by == "dpo@example.org"
    assert record.removed == ["hook.vault.keys: 2 data key(s) shredded (tombstone)"]
    assert record.deletion_id.startswith("del-")
    for sealed in (acme, older):
        with pytest.raises(KeyShreddedError):
            open_record(store, sealed)  # type: ignore[arg-type]
    assert store.key_ids("acme-corp") == []
    assert is_forgotten(forgotten, "acme-corp") and not is_forgotten(forgotten, "globex")
    assert open_record(store, globex)[0]["text"] == "jane@example.org"  # type: ignore[arg-type]


def test_forget_again_and_unknown_user_say_nothing_was_found() -> None:
    store, forgotten = _keystore(), {}
    _seal(store, "acme-corp", "e-1")
    first = forget_user(store, forgotten, forget_request("acme-corp", "dpo", now=NOW), keys_topic="k", now=NOW)
    marker = dict(forgotten["acme-corp"])
    again = forget_user(store, forgotten, forget_request("acme-corp", "dpo", now=NOW), keys_topic="k", now=NOW)
    assert first.removed and not again.removed and again.verified
    assert again.detail.startswith("nothing found: already forgotten at")
    assert forgotten["acme-corp"] == marker  # the first forget's marker is kept
    nobody = forget_user(store, forgotten, forget_request("nobody", "dpo", now=NOW), keys_topic="k", now=NOW)
    assert nobody.removed == [] and nobody.verified
    assert nobody.detail.startswith("nothing found: no data keys for this user")
    assert store.key_ids("nobody") == []  # verification created no key


def test_reserved_principal_and_bad_requests_are_refused() -> None:
    with pytest.raises(PermanentError, match="reserved"):
        forget_request("_unattributed", "dpo")
    with pytest.raises(PermanentError, match="reserved"):
        forget_request("_unattributed.p3", "dpo")
    with pytest.raises(PermanentError):
        forget_request("", "dpo")
    for bad in (None, b"nope", b'{"v": 2}', b'{"v":1,"op":"drop","user_id":"a","request_id":"r","requested_by":"x"}'):
        with pytest.raises(DecodeError):
            decode_command(bad)


def test_commands_round_trip() -> None:
    request = forget_request("acme-corp", "dpo@example.org", now=NOW)
    assert decode_command(encode_command(request)) == request
    retention = Command(OP_RETENTION, "acme-corp", "r-1", "retention-policy", NOW, NOW - timedelta(days=30))
    assert decode_command(encode_command(retention)) == retention


# -- audit chain ----------------------------------------------------------------------------


def _hook(i: int, event_type: str = "tool_call", **payload: object) -> HookEvent:
    return HookEvent.model_validate(
        {
            "event_id": f"e-{i}",
            "event_type": event_type,
            "user_id": "acme-corp",
            "timestamp": NOW + timedelta(seconds=i, microseconds=123),
            "source": "kairos@host-1",
            "payload": payload or {"tool": "crm_lookup"},
        }
    )


def _chain(n: int) -> list[tuple[int, AuditRecord]]:
    out, head = [], GENESIS
    for i in range(n):
        record = audit_record(_hook(i) if i % 2 else _hook(i, "memory_access", op="read", key="mem/acme"), head)
        assert record is not None
        out.append((i, record))
        head = record.record_hash
    return out


def test_audit_records_name_actor_resource_action() -> None:
    tool = audit_record(_hook(1), GENESIS)
    memory = audit_record(_hook(2, "memory_access", op="write", key="mem/acme/run-1"), GENESIS)
    assert tool is not None and memory is not None
    assert (tool.actor, tool.resource, tool.action, tool.tenant) == (
        "kairos@host-1",
        "crm_lookup",
        "tool_call",
        "acme-corp",
    )
    assert (memory.resource, memory.action) == ("mem/acme/run-1", "memory_write")
    assert tool.record_hash == link_hash(GENESIS, tool) and len(tool.record_hash) == 64
    assert audit_record(_hook(3, "post_agent_call"), GENESIS) is None


def test_chain_survives_the_avro_round_trip_and_verifies() -> None:
    from streams import serde

    chain = [(o, serde.decode(AuditRecord, serde.encode_avro(r))) for o, r in _chain(6)]
    report = verify_chain(0, chain)
    assert report.ok and report.records == 6 and report.head == chain[-1][1].record_hash


def test_tampered_inserted_or_removed_records_break_the_chain_at_their_offset() -> None:
    chain = _chain(6)
    altered = list(chain)
    altered[3] = (3, altered[3][1].model_copy(update={"resource": "something_else"}))
    report = verify_chain(0, altered)
    assert not report.ok and report.broken_offset == 3 and "altered" in (report.broken_reason or "")

    # A forger who recomputes the record's own hash still breaks the next link.
    forged = altered[3][1].model_copy(update={"record_hash": link_hash(chain[2][1].record_hash, altered[3][1])})
    report = verify_chain(0, [*chain[:3], (3, forged), *chain[4:]])
    assert not report.ok and report.broken_offset == 4

    report = verify_chain(0, [*chain[:2], *chain[3:]])  # one removed
    assert not report.ok and report.broken_offset == 3 and "prev_hash" in (report.broken_reason or "")


def test_exact_resends_after_a_crash_are_skipped() -> None:
    chain = _chain(4)
    replayed = [*chain[:3], (10, chain[1][1]), (11, chain[2][1]), chain[3]]
    report = verify_chain(0, replayed)
    assert report.ok and report.records == 4 and report.duplicates == 2


# -- retention and re-wrap ------------------------------------------------------------------


def test_retention_policy_file() -> None:
    policy = load_policy(ROOT / "retention.yaml")
    assert policy.days_for("acme-corp") == 30 and policy.days_for("someone-else") == policy.default_days
    assert policy.cutoff_for("acme-corp", NOW) == NOW - timedelta(days=30)
    for bad in ("version: 2\ndefault_days: 1", "version: 1\ndefault_days: 0", "version: 1\ndefault_days: 5\nx: 1", "["):
        with pytest.raises(ConfigError):
            parse_policy(bad)
    with pytest.raises(ConfigError, match=r"tenants\.a"):
        parse_policy("version: 1\ndefault_days: 5\ntenants: {a: true}")


def test_retention_cutoffs_shred_per_tenant() -> None:
    store = _keystore()
    policy = parse_policy("version: 1\ndefault_days: 30\ntenants: {globex: 2}")
    old = {u: _seal(store, u, f"{u}-old", NOW - timedelta(days=10)) for u in ("acme-corp", "globex")}
    new = {u: _seal(store, u, f"{u}-new", NOW) for u in ("acme-corp", "globex")}
    destroyed = {u: store.shred_older_than(u, policy.cutoff_for(u, NOW)) for u in ("acme-corp", "globex")}
    assert destroyed == {"acme-corp": 0, "globex": 1}
    with pytest.raises(KeyShreddedError):
        open_record(store, old["globex"])  # type: ignore[arg-type]
    for sealed in (old["acme-corp"], new["acme-corp"], new["globex"]):
        assert open_record(store, sealed)  # type: ignore[arg-type]


def test_rotation_rewraps_one_user_at_a_time_and_every_original_reads_back(tmp_path: Path) -> None:
    k1, k2 = generate_master_key(), generate_master_key()
    keyfile = tmp_path / "master.keys"
    keyfile.write_text(f"k1:{k1}\n")
    keyfile.chmod(0o600)
    provider = FileMasterKeyProvider(keyfile)
    backend = InMemoryBackend()
    store = KeyStore(provider, backend=backend, clock=lambda: NOW)
    sealed = [_seal(store, user, f"{user}-{day}", NOW - timedelta(days=day)) for user in ("a", "b") for day in (0, 1)]

    keyfile.write_text(f"k2:{k2}\nk1:{k1}\n")  # new current, old kept
    provider.refresh()
    sealed.append(_seal(store, "a", "a-after", NOW + timedelta(days=1)))  # flows on during the rotation
    assert rewrap_user(provider, backend, "a") == 2  # only a's k1 keys; b untouched so far
    assert {e["master_key_id"] for e in backend.get("b")["keys"].values()} == {"k1"}  # type: ignore[index]
    assert rewrap_user(provider, backend, "b") == 2 and rewrap_user(provider, backend, "b") == 0

    keyfile.write_text(f"k2:{k2}\n")  # old key removed
    provider.refresh()
    for record in sealed:
        assert open_record(store, record)[0]["text"] == "jane@example.org"  # type: ignore[arg-type]


def test_one_user_backend_exposes_only_its_user() -> None:
    backend = InMemoryBackend()
    backend.put("a", {"v": 1, "user_id": "a", "keys": {}})
    backend.put("b", {"v": 1, "user_id": "b", "keys": {}})
    view = OneUserBackend(backend, "a")
    assert [u for u, _ in view.items()] == ["a"] and view.get("b") is None and not view.delete("b")
    with pytest.raises(KeyError):
        view.put("b", {})
    assert repr(view) == "OneUserBackend(<one user>)"  # never the user id or the envelope


# -- API token ------------------------------------------------------------------------------


def test_bearer_token_check() -> None:
    token = "s3cret-token-of-enough-length"
    assert bearer_ok(f"Bearer {token}", token) and bearer_ok(f"bearer {token}", token)
    for header in (None, "", token, f"Basic {token}", f"Bearer {token}x", "Bearer "):
        assert not bearer_ok(header, token)


def test_token_from_settings_file_or_generated(tmp_path: Path) -> None:
    assert configured_token(Settings(api_token="x" * 20)) == "x" * 20
    path = tmp_path / "token"
    path.write_text("y" * 20 + "\n")
    assert configured_token(Settings(api_token_file=path)) == "y" * 20
    with pytest.raises(ConfigError):
        configured_token(Settings(api_token="x" * 20, api_token_file=path))
    with pytest.raises(ConfigError, match="16"):
        configured_token(Settings(api_token="short"))
    settings = Settings(data_dir=tmp_path / "faust")
    assert client_token(settings) is None
    made = worker_token(settings)
    assert len(made) >= 32 and client_token(settings) == made == worker_token(settings)
    assert (tmp_path / "faust" / "api-token").stat().st_mode & 0o077 == 0
