"""The labelled PII corpus through the real pipeline: nothing of it reaches the sanitized
topic, the dead-letter topic, the worker's log lines or its metric labels."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path

import pytest

from streams.testing import WorkerProcess, free_port, read_topic, run_cli, send_raw
from streams.topology import load_topology

pytestmark = pytest.mark.broker

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "pii" / "dev_corpus.jsonl"
SAMPLE = 400  # enough of every entity type; the whole corpus is scored by evaluate.py


@pytest.mark.skipif(not CORPUS.exists(), reason="the shared PII corpus is not beside the project")
def test_corpus_pii_never_leaves_the_raw_topic(
    test_env: dict[str, str], kafka_bootstrap: str, topics_file: Path, tmp_path: Path
) -> None:
    records = [json.loads(line) for line in CORPUS.read_text().splitlines()[:SAMPLE]]
    values = {p["value"] for r in records for p in r["pii"]}
    assert len(values) > 100
    port = free_port()
    env = {**test_env, "STREAMS_WEB_PORT": str(port)}
    assert run_cli(env, "topics", "apply").returncode == 0
    topology = load_topology(topics_file)
    items = []
    for i, r in enumerate(records):
        event = {
            "event_id": f"c-{i}", "event_type": "tool_call", "user_id": f"tenant-{i % 4}", "run_id": "run-eval",
            "timestamp": "2026-11-27T00:00:00Z", "source": "pii-eval",
            "payload": {"text": r["text"], "nested": [{"note": r["text"]}]},
            "error_message": r["text"] if i % 5 == 0 else None,
        }  # fmt: skip
        items.append((event["user_id"].encode(), json.dumps(event).encode()))
    # Malformed records whose bytes carry PII: dead-lettered, the original only encrypted.
    items += [(b"tenant-0", b"not json " + records[j]["text"].encode()) for j in range(5)]
    asyncio.run(send_raw(kafka_bootstrap, topology["raw"].name, items))

    with WorkerProcess(env, ["sanitize"], tmp_path / "worker.log") as worker:
        sanitized = asyncio.run(
            read_topic(kafka_bootstrap, topology["sanitized"].name, expect=SAMPLE, seconds=240, worker=worker)
        )
        dlq = asyncio.run(read_topic(kafka_bootstrap, topology["dlq"].name, expect=5, seconds=30))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    assert len(sanitized) == SAMPLE and len(dlq) == 5
    log = worker.log_text()
    out_text = json.dumps([v for _, v in sanitized], ensure_ascii=False) + json.dumps(
        [v for _, v in dlq], default=str, ensure_ascii=False
    )
    label_values = " ".join(re.findall(r'="([^"]*)"', metrics))
    leaked = sorted(v for v in values if v in out_text or v in log or v in label_values)
    assert leaked == [], f"{len(leaked)} PII values escaped, e.g. {leaked[:3]}"
    assert 'streams_sanitize_entities_total{entity_type="EMAIL_ADDRESS"}' in metrics
