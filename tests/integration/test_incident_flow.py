"""From raw events to a delivered page, on the real broker: an error burst becomes one
incident, one Slack message and one PagerDuty trigger; once quiet, one resolve. A worker
restart re-reads the incidents topic and pages nobody twice."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streams.testing import WorkerProcess, read_topic, run_cli, send_raw
from streams.topology import load_topology

pytestmark = pytest.mark.broker

DETECTORS = """
tick_seconds: 1
max_event_lag_seconds: 600
tracker: {hold_down_seconds: 4, repeat_interval_seconds: 3600}
detectors:
  repeat_error: {window_seconds: 10, bucket_seconds: 1, min_count: 8, global_min_count: null}
  cost_spike: {window_seconds: 10, bucket_seconds: 1, baseline_seconds: 60, min_history_seconds: 30, factor: "5",
               min_window_cost_usd: "1.00", min_baseline_cost_usd: "0.01", include_total: false}
  latency_regression_p99: {window_seconds: 10, bucket_seconds: 1, threshold_ms: 30000, consecutive_ticks: 3,
                           min_samples: 20, relative_accuracy: 0.01}
  volume_spike: {window_seconds: 10, bucket_seconds: 1, baseline_seconds: 60, min_history_seconds: 30, factor: "10",
                 min_calls: 50, event_types: [post_agent_call, agent_error]}
"""
ESCALATIONS = """
escalations:
  repeat_error: {severity: high, adapters: [slack, pagerduty]}
  cost_spike: {severity: medium, adapters: [slack]}
  latency_regression_p99: {severity: high, adapters: [pagerduty, slack]}
  volume_spike: {severity: medium, adapters: [slack]}
  budget_alert: {severity: medium, adapters: [slack]}
  budget_kill: {severity: high, adapters: [pagerduty]}
delivery: {max_attempts: 3, backoff_initial_seconds: 0.1, backoff_max_seconds: 1, retry_after_max_seconds: 2,
           timeout_seconds: 5, queue_size: 100}
"""


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, object]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, json.loads(body)))  # type: ignore[attr-defined]  # set below
        status = 202 if self.path.startswith("/v2/enqueue") else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.received = []  # type: ignore[attr-defined]  # the requests, in order
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _errors(n: int) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC).isoformat()
    return [
        (
            b"acme-corp",
            json.dumps(
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "agent_error",
                    "user_id": "acme-corp",
                    "run_id": "run-1",
                    "timestamp": now,
                    "source": "kairos@host-1",
                    "model": "claude-sonnet-4-5",
                    "error_code": "overloaded_error",
                    "error_message": "upstream overloaded for jane@example.com",
                }
            ).encode(),
        )
        for _ in range(n)
    ]


def test_error_burst_pages_once_and_resolves(
    test_env: dict[str, str], kafka_bootstrap: str, topics_file: Path, tmp_path: Path, recorder: ThreadingHTTPServer
) -> None:
    (tmp_path / "detectors.yaml").write_text(DETECTORS)
    (tmp_path / "escalations.yaml").write_text(ESCALATIONS)
    port = recorder.server_address[1]
    env = {
        **test_env,
        "STREAMS_DETECTORS_FILE": str(tmp_path / "detectors.yaml"),
        "STREAMS_ESCALATIONS_FILE": str(tmp_path / "escalations.yaml"),
        "STREAMS_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{port}/services/T000/B000/secretpath",
        "STREAMS_PAGERDUTY_ROUTING_KEY": "routing-key-not-to-be-logged",
        "STREAMS_PAGERDUTY_EVENTS_URL": f"http://127.0.0.1:{port}/v2/enqueue",
    }
    assert run_cli(env, "topics", "apply").returncode == 0
    topology = load_topology(topics_file)
    received = recorder.received  # type: ignore[attr-defined]

    with WorkerProcess(env, ["sanitize", "incidents"], tmp_path / "worker.log") as worker:
        time.sleep(3)  # let the worker join before the burst, so event time is "now"
        asyncio.run(send_raw(kafka_bootstrap, topology["raw"].name, _errors(30)))
        incidents = asyncio.run(
            read_topic(kafka_bootstrap, topology["incidents"].name, expect=2, seconds=90, worker=worker)
        )
        deadline = time.monotonic() + 30
        while len(received) < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
    log = worker.log_text()
    statuses = [v["status"] for _, v in incidents]
    assert statuses == ["triggered", "resolved"], log[-3000:]
    first = incidents[0][1]
    assert first["incident_type"] == "repeat_error" and first["evidence"]["error_code"] == "overloaded_error"
    assert "streams tail" in first["runbook"]
    pagerduty = [body for path, body in received if path.startswith("/v2/enqueue")]
    slack = [body for path, body in received if path.startswith("/services/")]
    assert [p["event_action"] for p in pagerduty] == ["trigger", "resolve"]
    assert pagerduty[0]["dedup_key"] == pagerduty[1]["dedup_key"] == first["fingerprint"]
    assert len(slack) == 2
    assert "jane@example.com" not in json.dumps(received) and "jane@example.com" not in log
    assert "secretpath" not in log and "routing-key-not-to-be-logged" not in log

    # A restarted worker (new process, same consumer group and tables) re-reads nothing twice.
    before = len(received)
    with WorkerProcess(env, ["sanitize", "incidents"], tmp_path / "worker2.log"):
        time.sleep(12)
    assert len(received) == before
