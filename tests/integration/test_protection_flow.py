"""Data protection on the real broker: forget (HTTP and CLI), auth, the audit chain."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams import serde
from streams.models import AuditRecord, HookEvent, VaultRecord
from streams.testing import WorkerProcess, free_port, read_topic, run_cli, send_raw
from streams.topology import load_topology
from streams.vault import KeyShreddedError, KeyStore, StaticMasterKeyProvider, open_record

pytestmark = pytest.mark.broker

EMAIL = "jane.roe@example.org"
TOKEN = "test-token-0123456789abcdef"


def _event(event_id: str, user: str, event_type: str = "tool_call", **payload: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "user_id": user,
        "run_id": "run-7",
        "timestamp": "2026-11-27T20:01:51Z",
        "source": "kairos@host-1",
        "payload": payload or {"tool": "crm_lookup", "args": {"email": EMAIL}},
    }


def _http(url: str, method: str = "GET", token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, method=method, headers=headers)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the worker's web server is not up yet


async def _raw_records(bootstrap: str, topic: str) -> list[tuple[bytes, bytes | None]]:
    return [(key, value) for _, _, key, value in await _raw_partitioned(bootstrap, topic)]


def test_forget_over_http_and_cli_then_later_events_stay_forgotten(
    test_env: dict[str, str], kafka_bootstrap: str, topics_file: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {**test_env, "STREAMS_WEB_PORT": str(port), "STREAMS_API_TOKEN": TOKEN, "STREAMS_NER_MODEL": ""}
    assert run_cli(env, "topics", "apply").returncode == 0
    topology = load_topology(topics_file)
    first = [
        (b"acme-corp", json.dumps(_event("e-1", "acme-corp")).encode()),
        (b"globex", json.dumps(_event("e-2", "globex")).encode()),
    ]
    asyncio.run(send_raw(kafka_bootstrap, topology["raw"].name, first))
    base = f"http://127.0.0.1:{port}"

    with WorkerProcess(env, ["sanitize"], tmp_path / "worker.log") as worker:
        vault = asyncio.run(read_topic(kafka_bootstrap, topology["vault"].name, expect=2, seconds=120, worker=worker))
        assert {v["event_id"] for _, v in vault} == {"e-1", "e-2"}

        # Auth: data endpoints need the token, /metrics does not.
        assert _http(f"{base}/metrics")[0] == 200
        assert _http(f"{base}/chargeback?period=2026-11")[0] == 401
        assert _http(f"{base}/chargeback?period=2026-11", token="wrong-token-0123456789")[0] == 401
        assert _http(f"{base}/chargeback?period=2026-11", token=TOKEN)[0] == 404  # no cost stage here
        assert _http(f"{base}/forget/acme-corp", "POST")[0] == 401
        status, body = _http(f"{base}/forget/acme-corp?requested_by=dpo%40example.org", "POST", token=TOKEN)
        assert status == 202, body
        deletion_id = json.loads(body)["deletion_id"]

        deletions = asyncio.run(read_topic(kafka_bootstrap, topology["deletions"].name, expect=1, worker=worker))
        record = deletions[0][1]
        assert record["deletion_id"] == deletion_id and record["user_id"] == "acme-corp"
        assert record["requested_by"] == "dpo@example.org" and record["verified"] is True
        assert record["removed"] == [f"{topology['vault_keys'].name}: 1 data key(s) shredded (tombstone)"]

        again = run_cli(env, "forget", "acme-corp", "--requested-by", "dpo@example.org", "--wait", "60")
        assert again.returncode == 0, again.stderr
        assert "verified=True; nothing found: already forgotten" in again.stdout
        unknown = run_cli(env, "forget", "nobody-at-all", "--wait", "60")
        assert unknown.returncode == 0 and "nothing found: no data keys for this user" in unknown.stdout
        assert run_cli(env, "forget", "_unattributed.p0").returncode == 2  # reserved, refused before publishing

        # Events for the forgotten user still arriving: sanitized as ever, originals not vaulted.
        later = [
            (b"acme-corp", json.dumps(_event("e-3", "acme-corp")).encode()),
            (b"globex", json.dumps(_event("e-4", "globex")).encode()),
        ]
        asyncio.run(send_raw(kafka_bootstrap, topology["raw"].name, later))
        sanitized = asyncio.run(read_topic(kafka_bootstrap, topology["sanitized"].name, expect=4, worker=worker))
        assert {v["event_id"] for _, v in sanitized} == {"e-1", "e-2", "e-3", "e-4"}
        vault = asyncio.run(read_topic(kafka_bootstrap, topology["vault"].name, expect=4, seconds=10))
    log = worker.log_text()
    assert {v["event_id"] for _, v in vault} == {"e-1", "e-2", "e-4"}, log[-3000:]
    assert TOKEN not in log and EMAIL not in log
    assert "refused an unauthenticated request" in log

    # An auditor with the master key and the compacted key topic: acme-corp is gone, globex is not.
    table: dict[str, dict[str, object]] = {}
    for key, value in asyncio.run(_raw_records(kafka_bootstrap, topology["vault_keys"].name)):
        user = json.loads(key)
        if value is None:
            table.pop(user, None)
        else:
            table[user] = json.loads(value)
    assert "acme-corp" not in table and "globex" in table
    keystore = KeyStore(StaticMasterKeyProvider(env["STREAMS_MASTER_KEY"]), backend=table)
    records = {r.event_id: r for _, v in asyncio.run(_raw_records(kafka_bootstrap, topology["vault"].name)) if v
               for r in [serde.decode(VaultRecord, v)]}  # fmt: skip
    with pytest.raises(KeyShreddedError):
        open_record(keystore, records["e-1"])
    assert open_record(keystore, records["e-4"])[0]["text"] == EMAIL


def test_audit_chain_on_the_broker_and_a_tampered_record(
    test_env: dict[str, str], kafka_bootstrap: str, topics_file: Path, tmp_path: Path
) -> None:
    assert run_cli(test_env, "topics", "apply").returncode == 0
    topology = load_topology(topics_file)
    events = []
    for i in range(12):
        user = ("acme-corp", "globex", "initech")[i % 3]
        kind = ("tool_call", "memory_access", "post_agent_call")[i % 3 if i % 4 else 0]
        payload = {"op": "read", "key": f"mem/{user}/run-7"} if kind == "memory_access" else {"tool": "crm_lookup"}
        event = serde.validate(HookEvent, _event(f"a-{i}", user, kind, **payload))
        events.append((user.encode(), serde.encode_avro(event)))
    audited = sum(1 for _, v in events if serde.decode(HookEvent, v).event_type in ("tool_call", "memory_access"))
    asyncio.run(send_raw(kafka_bootstrap, topology["sanitized"].name, events))

    with WorkerProcess(test_env, ["audit"], tmp_path / "worker.log") as worker:
        trail = asyncio.run(
            read_topic(kafka_bootstrap, topology["audit"].name, expect=audited, seconds=120, worker=worker)
        )
    assert len(trail) == audited and {v["actor"] for _, v in trail} == {"kairos@host-1"}
    assert {v["action"] for _, v in trail} <= {"tool_call", "memory_read"}

    ok = run_cli(test_env, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "chain intact" in ok.stdout and ", 0 broken" in ok.stdout

    # Tamper: re-publish a real record with its resource changed, into its own partition.
    raw = asyncio.run(_raw_partitioned(kafka_bootstrap, topology["audit"].name))
    partition, _, _, value = raw[0]
    assert value is not None
    forged_offset = sum(1 for p, _, _, _ in raw if p == partition)  # appended at the partition's end
    forged = serde.decode(AuditRecord, value).model_copy(update={"resource": "payroll_export"})
    asyncio.run(_send_to(kafka_bootstrap, topology["audit"].name, partition, serde.encode_avro(forged)))
    broken = run_cli(test_env, "audit", "verify")
    assert broken.returncode == 1, broken.stdout
    assert f"partition {partition}: BROKEN at offset {forged_offset}: record_hash does not match" in broken.stdout


async def _raw_partitioned(bootstrap: str, topic: str) -> list[tuple[int, int, bytes, bytes | None]]:
    """Every record up to the end now: (partition, offset, key, value), tombstones included."""
    from aiokafka import TopicPartition

    from streams.kafka import consumer

    client = consumer(bootstrap, group_id=None, auto_offset_reset="earliest")
    await client.start()
    out: list[tuple[int, int, bytes, bytes | None]] = []
    try:
        await client._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in client.partitions_for_topic(topic) or ()]
        client.assign(tps)
        await client.seek_to_beginning()
        end = await client.end_offsets(tps)
        deadline = time.monotonic() + 30
        while [tp for tp in tps if await client.position(tp) < end[tp]] and time.monotonic() < deadline:
            for messages in (await client.getmany(timeout_ms=500)).values():
                out += [(m.partition, m.offset, m.key, m.value) for m in messages]
    finally:
        await client.stop()
    return out


async def _send_to(bootstrap: str, topic: str, partition: int, value: bytes) -> None:
    from streams.kafka import producer

    client = producer(bootstrap)
    await client.start()
    try:
        await client.send_and_wait(topic, value=value, key=b"forger", partition=partition)
    finally:
        await client.stop()


def _write_keys(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)  # atomic: the worker never reads half a keyring


def _key_table(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for key, value in asyncio.run(_raw_records(bootstrap, topic)):
        if value is None:
            table.pop(json.loads(key), None)
        else:
            table[json.loads(key)] = json.loads(value)
    return table


def test_retention_and_master_key_rotation_while_events_flow(
    test_env: dict[str, str], kafka_bootstrap: str, topics_file: Path, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from streams.vault import generate_master_key

    k1, k2 = generate_master_key(), generate_master_key()
    keyfile = tmp_path / "master.keys"
    _write_keys(keyfile, f"k1:{k1}\n")
    policy = tmp_path / "retention.yaml"
    policy.write_text("version: 1\ndefault_days: 365\ntenants:\n  globex: 2\n")
    env = {k: v for k, v in test_env.items() if k != "STREAMS_MASTER_KEY"}
    env |= {
        "STREAMS_MASTER_KEY_FILE": str(keyfile),
        "STREAMS_RETENTION_FILE": str(policy),
        "STREAMS_RETENTION_INTERVAL": "3",
        "STREAMS_ROTATION_INTERVAL": "2",
        "STREAMS_NER_MODEL": "",
    }
    assert run_cli(env, "topics", "apply").returncode == 0
    topology = load_topology(topics_file)
    now = datetime.now(UTC)

    def event(event_id: str, user: str, at: datetime) -> tuple[bytes, bytes]:
        return user.encode(), json.dumps({**_event(event_id, user), "timestamp": at.isoformat()}).encode()

    first = [event("acme-0", "acme-corp", now), event("globex-old", "globex", now - timedelta(days=10))]
    first.append(event("globex-new", "globex", now))
    asyncio.run(send_raw(kafka_bootstrap, topology["raw"].name, first))
    with WorkerProcess(env, ["sanitize"], tmp_path / "worker.log") as worker:
        asyncio.run(read_topic(kafka_bootstrap, topology["vault"].name, expect=3, seconds=120, worker=worker))
        deletions = asyncio.run(read_topic(kafka_bootstrap, topology["deletions"].name, expect=1, worker=worker))
        assert [v["user_id"] for _, v in deletions] == ["globex"], worker.log_text()[-3000:]
        assert deletions[0][1]["requested_by"] == "retention-policy" and deletions[0][1]["verified"]
        assert "1 data key(s) ended by" in deletions[0][1]["removed"][0]

        _write_keys(keyfile, f"k2:{k2}\nk1:{k1}\n")  # rotate: new current, old kept
        asyncio.run(send_raw(kafka_bootstrap, topology["raw"].name, [event("acme-1", "acme-corp", now)]))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            table = _key_table(kafka_bootstrap, topology["vault_keys"].name)
            masters = {e["master_key_id"] for env_ in table.values() for e in env_["keys"].values()}
            if masters == {"k2"}:
                break
            time.sleep(1)
        assert masters == {"k2"}, worker.log_text()[-3000:]

        _write_keys(keyfile, f"k2:{k2}\n")  # the old master key is gone
        time.sleep(4)  # a refresh
        asyncio.run(send_raw(kafka_bootstrap, topology["raw"].name, [event("acme-2", "acme-corp", now)]))
        vault = asyncio.run(read_topic(kafka_bootstrap, topology["vault"].name, expect=5, worker=worker))
    assert len(vault) == 5

    keys = _key_table(kafka_bootstrap, topology["vault_keys"].name)
    keystore = KeyStore(StaticMasterKeyProvider(f"k2:{k2}"), backend=keys)  # the new master key only
    for _, value in asyncio.run(_raw_records(kafka_bootstrap, topology["vault"].name)):
        assert value is not None
        record = serde.decode(VaultRecord, value)
        if record.event_id == "globex-old":
            with pytest.raises(KeyShreddedError):  # retention shredded its day's key
                open_record(keystore, record)
        else:
            assert open_record(keystore, record)[0]["text"] == EMAIL  # every other original reads back
