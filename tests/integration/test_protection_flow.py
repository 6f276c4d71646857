"""Data protection on the real broker: forget (HTTP and CLI), auth, the audit chain."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from streams import serde
from streams.models import AuditRecord, HookEvent, VaultRecord
from streams.testing import WorkerProcess, read_topic, send_raw
from streams.topology import load_topology
from streams.vault import KeyShreddedError, KeyStore, StaticMasterKeyProvider, open_record

pytestmark = pytest.mark.broker

EMAIL = "jane.roe@example.org"
TOKEN = "test-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


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


async def _raw_records(bootstrap: str, topic: str, seconds: float = 10) -> list[tuple[bytes, bytes | None]]:
    from aiokafka import TopicPartition

    from streams.kafka import consumer

    client = consumer(bootstrap, group_id=None, auto_offset_reset="earliest")
    await client.start()
    out: list[tuple[bytes, bytes | None]] = []
    try:
        await client._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in client.partitions_for_topic(topic) or ()]
        client.assign(tps)
        await client.seek_to_beginning()
        end = await client.end_offsets(tps)
        deadline = time.monotonic() + seconds
        while [tp for tp in tps if await client.position(tp) < end[tp]] and time.monotonic() < deadline:
            for messages in (await client.getmany(timeout_ms=500)).values():
                out += [(m.key, m.value) for m in messages]
    finally:
        await client.stop()
    return out


def test_forget_over_http_and_cli_then_later_events_stay_forgotten(
    test_env: dict[str, str], kafka_bootstrap: str, topics_file: Path, tmp_path: Path
) -> None:
    port = _free_port()
    env = {**test_env, "STREAMS_WEB_PORT": str(port), "STREAMS_API_TOKEN": TOKEN, "STREAMS_NER_MODEL": ""}
    assert _cli(env, "topics", "apply").returncode == 0
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

        again = _cli(env, "forget", "acme-corp", "--requested-by", "dpo@example.org", "--wait", "60")
        assert again.returncode == 0, again.stderr
        assert "verified=True; nothing found: already forgotten" in again.stdout
        unknown = _cli(env, "forget", "nobody-at-all", "--wait", "60")
        assert unknown.returncode == 0 and "nothing found: no data keys for this user" in unknown.stdout
        assert _cli(env, "forget", "_unattributed.p0").returncode == 2  # reserved, refused before publishing

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
    assert _cli(test_env, "topics", "apply").returncode == 0
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

    ok = _cli(test_env, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "chain intact" in ok.stdout and ", 0 broken" in ok.stdout

    # Tamper: re-publish a real record with its resource changed, into its own partition.
    raw = asyncio.run(_raw_partitioned(kafka_bootstrap, topology["audit"].name))
    partition, _, value = raw[0]
    forged_offset = sum(1 for p, _, _ in raw if p == partition)  # appended at the partition's end
    forged = serde.decode(AuditRecord, value).model_copy(update={"resource": "payroll_export"})
    asyncio.run(_send_to(kafka_bootstrap, topology["audit"].name, partition, serde.encode_avro(forged)))
    broken = _cli(test_env, "audit", "verify")
    assert broken.returncode == 1, broken.stdout
    assert f"partition {partition}: BROKEN at offset {forged_offset}: record_hash does not match" in broken.stdout


async def _raw_partitioned(bootstrap: str, topic: str) -> list[tuple[int, int, bytes]]:
    from aiokafka import TopicPartition

    from streams.kafka import consumer

    client = consumer(bootstrap, group_id=None, auto_offset_reset="earliest")
    await client.start()
    out: list[tuple[int, int, bytes]] = []
    try:
        await client._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in client.partitions_for_topic(topic) or ()]
        client.assign(tps)
        await client.seek_to_beginning()
        end = await client.end_offsets(tps)
        while [tp for tp in tps if await client.position(tp) < end[tp]]:
            for messages in (await client.getmany(timeout_ms=500)).values():
                out += [(m.partition, m.offset, m.value) for m in messages]
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
