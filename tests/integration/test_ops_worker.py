"""A real `streams worker` in production shape: /health and /ready, consumer lag on /metrics,
JSON log lines, SIGTERM within the grace; and readiness following a broker that stops and
comes back (a broker of its own: the shared one on 9092 is never stopped)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.testing import WorkerProcess, free_port, run_cli

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
GRACE = 15.0


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # our own worker on 127.0.0.1
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def wait_for(check: Callable[[], bool], seconds: float, worker: WorkerProcess, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not worker.alive:
            raise AssertionError(f"worker exited ({worker.returncode}):\n{worker.log_text()[-4000:]}")
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{worker.log_text()[-3000:]}")


def apply_topics(env: dict[str, str]) -> None:
    result = run_cli(env, "topics", "apply")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def ops_env(test_env: dict[str, str]) -> Iterator[dict[str, str]]:
    port = free_port()
    yield {
        **test_env,
        "STREAMS_WEB_PORT": str(port),
        "STREAMS_HEALTH_INTERVAL": "1",
        "STREAMS_SHUTDOWN_GRACE": str(GRACE),
    }


def test_worker_health_ready_lag_json_logs_and_sigterm(ops_env: dict[str, str], tmp_path: Path) -> None:
    apply_topics(ops_env)
    base = f"http://127.0.0.1:{ops_env['STREAMS_WEB_PORT']}"
    worker = WorkerProcess(ops_env, stages=["sanitize"], log_path=tmp_path / "worker.log").start()
    try:
        wait_for(lambda: get(base + "/ready")[0] == 200, 120, worker, "/ready")
        status, body = get(base + "/health")
        assert status == 200 and json.loads(body) == {"status": "ok", "reasons": []}

        sim = run_cli(ops_env, "simulate", "--events", "60", "--rate", "0", "--seed", "7")
        assert sim.returncode == 0, sim.stderr

        def lag_exported() -> bool:
            text = get(base + "/metrics")[1]
            return "swarm_queue_depth{" in text and 'streams_events_in_total{stage="sanitize"}' in text

        wait_for(lag_exported, 60, worker, "swarm_queue_depth and stage counters on /metrics")
        metrics = get(base + "/metrics")[1]
        lag_lines = [line for line in metrics.splitlines() if line.startswith("swarm_queue_depth{")]
        prefix = f'topic="{ops_env["STREAMS_APP_ID"].removeprefix("streams-test-")}'.replace('"', '"t', 1)
        # Labels are this test's topics.yaml topics only (bounded), and the stage's intake is among them.
        assert lag_lines and all(prefix in line for line in lag_lines), lag_lines
        assert any(".hook.events.raw" in line for line in lag_lines), lag_lines
        assert "streams_ready 1.0" in metrics

        started = time.monotonic()
        code = worker.stop(grace=GRACE + 10)
        took = time.monotonic() - started
    finally:
        worker.kill()
    assert code == 0, worker.log_text()[-3000:]
    assert took < GRACE, f"took {took:.1f} s"

    lines = [line for line in worker.log_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, lines[:5]
    faust_lines = [r for r in records if r["logger"].startswith("faust.")]
    assert faust_lines, "Faust's own logs come through the JSON formatter too"
    assert any(r["msg"].startswith("SIGTERM received: pausing intake") for r in records)
    with_context = [r for r in records if "offset" in r]
    assert all({"topic", "partition"} <= r.keys() for r in with_context)


def test_ready_follows_its_broker_down_and_back(tmp_path: Path, test_env: dict[str, str]) -> None:
    from streams.broker.api import ensure_broker, stop_broker
    from streams.settings import Settings

    settings = Settings(
        kafka_port=free_port(), kafka_controller_port=free_port(), kafka_home=tmp_path / "kafka", kafka_heap="384m"
    )
    jars = ROOT / ".kafka"
    handle = ensure_broker(settings, jars_home=jars)
    env = {
        **test_env,
        "STREAMS_BOOTSTRAP_SERVERS": handle.bootstrap,
        "STREAMS_WEB_PORT": str(free_port()),
        "STREAMS_HEALTH_INTERVAL": "1",
        "STREAMS_SHUTDOWN_GRACE": str(GRACE),
    }
    base = f"http://127.0.0.1:{env['STREAMS_WEB_PORT']}"
    worker: WorkerProcess | None = None
    try:
        apply_topics(env)
        worker = WorkerProcess(env, stages=["sanitize"], log_path=tmp_path / "worker.log").start()
        wait_for(lambda: get(base + "/ready")[0] == 200, 120, worker, "/ready with the broker up")

        stop_broker(settings)
        wait_for(lambda: get(base + "/ready")[0] == 503, 60, worker, "/ready to fail with the broker down")
        body = json.loads(get(base + "/ready")[1])
        assert any("broker metadata did not answer" in r for r in body["reasons"]), body

        ensure_broker(settings, jars_home=jars)
        wait_for(lambda: get(base + "/ready")[0] == 200, 120, worker, "/ready to recover with the broker back")
        assert get(base + "/health")[0] == 200
    finally:
        if worker is not None:
            worker.stop(grace=GRACE + 10)
        stop_broker(settings)


def test_top_once_shows_a_live_worker(ops_env: dict[str, str], tmp_path: Path) -> None:
    apply_topics(ops_env)
    base = f"http://127.0.0.1:{ops_env['STREAMS_WEB_PORT']}"
    with WorkerProcess(ops_env, stages=["sanitize", "cost"], log_path=tmp_path / "worker.log") as worker:
        wait_for(lambda: get(base + "/ready")[0] == 200, 120, worker, "/ready")
        result = run_cli(ops_env, "top", "--url", base, "--once", "--incident-seconds", "3", timeout=60)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "throughput" in out and "sanitize" in out and "lag" in out and "incidents" in out
