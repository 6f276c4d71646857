"""The sanitize stage on the real broker: raw in; sanitized, vault and dead letters out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from streams import serde
from streams.models import DeadLetter, HookEvent, VaultRecord
from streams.testing import WorkerProcess, read_topic, run_cli, send_raw
from streams.topology import load_topology
from streams.vault import KeyStore, StaticMasterKeyProvider, open_dead_letter, open_record

pytestmark = pytest.mark.broker

EMAIL, PHONE, CARD, KEY = "jane.roe@example.org", "+1 (415) 555-0134", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE"


def _event(event_id: str, user: str, **extra: object) -> dict[str, object]:
    return {
        "event_id": event_id,
        "event_type": "tool_call",
        "user_id": user,
        "run_id": "run-7",
        "timestamp": "2026-11-27T20:01:51Z",
        "source": "kairos@host-1",
        "model": "claude-sonnet-4-5",
        **extra,
    }


def test_sanitize_stage_end_to_end(
    test_env: dict[str, str], kafka_bootstrap: str, topics_file: Path, tmp_path: Path
) -> None:
    assert run_cli(test_env, "topics", "apply").returncode == 0
    topology = load_topology(topics_file)
    pii = _event(
        "e-pii",
        "acme-corp",
        payload={"args": {"email": EMAIL, "note": f"call {PHONE}, card {CARD}"}, "tokens": 12},
        error_message=f"auth failed for key {KEY}",
    )
    clean = _event("e-clean", "globex", payload={"text": "run 310d70c3-5dd3-4cf5-898e-53e0c517a35a took 70682 ms"})
    avro = serde.encode_avro(serde.validate(HookEvent, _event("e-avro", "acme-corp", payload={"to": EMAIL})))
    bad_type = json.dumps(_event("e-bad", "acme-corp", event_type="nope")).encode()
    items = [
        (b"acme-corp", json.dumps(pii).encode()),
        (b"globex", json.dumps(clean).encode()),
        (b"acme-corp", avro),
        (b"acme-corp", b"\x00\x01 not an event"),
        (b"acme-corp", bad_type),
        (b"wrong-key", json.dumps(_event("e-rekey", "globex")).encode()),
    ]
    asyncio.run(send_raw(kafka_bootstrap, topology["raw"].name, items))

    with WorkerProcess(test_env, ["sanitize"], tmp_path / "worker.log") as worker:
        sanitized = asyncio.run(
            read_topic(kafka_bootstrap, topology["sanitized"].name, expect=4, seconds=120, worker=worker)
        )
        dlq = asyncio.run(read_topic(kafka_bootstrap, topology["dlq"].name, expect=2, seconds=30))
        vault = asyncio.run(read_topic(kafka_bootstrap, topology["vault"].name, expect=2, seconds=30))
    log = worker.log_text()

    events = {v["event_id"]: v for _, v in sanitized}
    assert set(events) == {"e-pii", "e-clean", "e-avro", "e-rekey"}, log[-3000:]
    assert all(key == v["user_id"].encode() for key, v in sanitized)
    text = json.dumps([v for _, v in sanitized])
    for value in (EMAIL, PHONE, CARD, KEY):
        assert value not in text and value not in log
    got = events["e-pii"]
    assert got["payload"]["args"]["email"] == "<EMAIL_ADDRESS>"
    assert got["payload"]["tokens"] == 12 and got["run_id"] == "run-7" and got["model"] == "claude-sonnet-4-5"
    assert "310d70c3-5dd3-4cf5-898e-53e0c517a35a" in events["e-clean"]["payload"]["text"]

    reasons = sorted(v["reason"] for _, v in dlq)
    assert len(reasons) == 2 and any("neither Avro" in r for r in reasons) and any("event_type" in r for r in reasons)
    assert all(v["source_topic"] == topology["raw"].name and v["original_ciphertext"] for _, v in dlq)

    # The originals are in the vault, readable with the master key only.
    keystore_records = {v["event_id"]: v for _, v in vault}
    assert set(keystore_records) == {"e-pii", "e-avro"}
    assert EMAIL not in json.dumps(keystore_records, default=str)


def test_vault_originals_open_with_the_key(
    test_env: dict[str, str], kafka_bootstrap: str, topics_file: Path, tmp_path: Path
) -> None:
    """Read the raw Avro vault and key records back and decrypt them, as an auditor would."""
    assert run_cli(test_env, "topics", "apply").returncode == 0
    topology = load_topology(topics_file)
    asyncio.run(
        send_raw(
            kafka_bootstrap,
            topology["raw"].name,
            [
                (b"acme-corp", json.dumps(_event("e-1", "acme-corp", payload={"to": EMAIL})).encode()),
                (b"acme-corp", b"garbage"),
            ],
        )
    )
    with WorkerProcess(test_env, ["sanitize"], tmp_path / "worker.log"):
        vault = asyncio.run(read_topic(kafka_bootstrap, topology["vault"].name, expect=1, seconds=120, decode=False))
        keys = asyncio.run(read_topic(kafka_bootstrap, topology["vault_keys"].name, expect=2, seconds=60, decode=False))
        dlq = asyncio.run(read_topic(kafka_bootstrap, topology["dlq"].name, expect=1, seconds=60, decode=False))
    table = {json.loads(k): json.loads(v) for k, v in keys if v is not None}
    keystore = KeyStore(StaticMasterKeyProvider(test_env["STREAMS_MASTER_KEY"]), backend=table)
    originals = open_record(keystore, serde.decode(VaultRecord, vault[0][1]))
    assert [o["text"] for o in originals] == [EMAIL]
    assert open_dead_letter(keystore, serde.decode(DeadLetter, dlq[0][1])) == b"garbage"
