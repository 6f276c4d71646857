"""The cost stage on the real broker: budgets crossed once, a worker SIGKILLed mid-stream
and restarted, and the live chargeback equal to the replay and to the exact sum."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from streams.models import format_money
from streams.testing import WorkerProcess, free_port, read_topic, run_cli, send_raw
from streams.topology import load_topology

pytestmark = pytest.mark.broker

BUDGETS = """
version: 1
tenants:
  acme-corp:
    timezone: UTC
    budgets:
      - {name: monthly, period: monthly, limit_usd: "10.00", hard_kill: true, thresholds: [80, 100]}
  globex:
    timezone: Europe/Berlin
    budgets:
      - {name: monthly, period: monthly, limit_usd: "1.00", hard_kill: false}
"""


def _events(start: datetime) -> tuple[list[tuple[bytes, bytes]], dict[str, Decimal]]:
    """Costs that do not add up in binary floating point; a retry duplicate; one bad cost."""
    items, totals = [], {"acme-corp": Decimal(0), "globex": Decimal(0)}
    costs = [Decimal("0.1"), Decimal("0.2"), Decimal("0.3000001"), Decimal("0.000000001")]
    for i in range(120):
        user = "acme-corp" if i % 3 else "globex"
        cost = costs[i % len(costs)]
        event = {
            "event_id": f"ev-{i}",
            "event_type": "post_agent_call",
            "user_id": user,
            "run_id": f"run-{i % 5}",
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
            "source": "kairos@host-1",
            "model": "claude-sonnet-4-5",
            "cost_usd": str(cost),
            "latency_ms": 900,
        }
        items.append((user.encode(), json.dumps(event).encode()))
        totals[user] += cost
        if i == 7:  # the publisher retried: same event id again
            items.append((user.encode(), json.dumps(event).encode()))
    bad = {**json.loads(items[0][1]), "event_id": "ev-bad", "payload": {"currency": "EUR"}}
    items.append((b"globex", json.dumps(bad).encode()))
    return items, totals


def test_budgets_kill_once_and_chargeback_equals_replay_after_sigkill(
    test_env: dict[str, str], kafka_bootstrap: str, topics_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "budgets.yaml").write_text(BUDGETS)
    port = free_port()
    env = {**test_env, "STREAMS_BUDGETS_FILE": str(tmp_path / "budgets.yaml"), "STREAMS_WEB_PORT": str(port)}
    assert run_cli(env, "topics", "apply").returncode == 0
    topology = load_topology(topics_file)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    items, totals = _events(start)
    first, rest = items[:50], items[50:]

    asyncio.run(send_raw(kafka_bootstrap, topology["raw"].name, first))
    worker = WorkerProcess(env, ["sanitize", "cost"], tmp_path / "worker1.log").start()
    try:
        asyncio.run(read_topic(kafka_bootstrap, topology["ledger"].name, expect=20, seconds=90, worker=worker))
        asyncio.run(send_raw(kafka_bootstrap, topology["raw"].name, rest))
        time.sleep(1.0)
    finally:
        worker.kill()  # SIGKILL mid-stream: no commit, no flush
    with WorkerProcess(env, ["sanitize", "cost"], tmp_path / "worker2.log") as worker2:
        ledger = asyncio.run(
            read_topic(
                kafka_bootstrap, topology["ledger"].name, expect=120, seconds=120, worker=worker2, distinct="event_id"
            )
        )
        alerts = asyncio.run(
            read_topic(kafka_bootstrap, topology["budget_alerts"].name, expect=4, seconds=20, distinct="alert_id")
        )
        kills = asyncio.run(read_topic(kafka_bootstrap, topology["budget_kills"].name, expect=1, seconds=20))
        dlq = asyncio.run(read_topic(kafka_bootstrap, topology["dlq"].name, expect=1, seconds=20))
        time.sleep(2)
        period = start.strftime("%Y-%m")
        live = run_cli(
            env, "chargeback", "--period", period, "--format", "json", "--worker", f"http://127.0.0.1:{port}"
        )
    assert live.returncode == 0, live.stderr + worker2.log_text()[-2000:]
    replayed = run_cli(
        env, "replay", "--from", (start - timedelta(hours=1)).isoformat(), "--period", period, "--format", "json"
    )
    assert replayed.returncode == 0, replayed.stderr

    assert "Error in recovery" not in worker2.log_text(), "tables must recover from their changelogs"
    live_doc, replay_doc = json.loads(live.stdout), json.loads(replayed.stdout)
    exact = {u: format_money(t) for u, t in totals.items()}
    assert {r["user_id"]: r["total_usd"] for r in live_doc["tenants"]} == exact
    assert live_doc["tenants"] == replay_doc["tenants"] and live_doc["total"] == replay_doc["total"]
    assert live_doc["total"]["total_usd"] == format_money(sum(totals.values(), Decimal(0)))

    # Each event counted once in the ledger (by id; at-least-once delivery may repeat a record).
    assert {v["event_id"] for _, v in ledger} == {f"ev-{i}" for i in range(120)}
    # 80 % and 100 % of acme's hard budget and of globex's soft one: each once (by id);
    # only the hard budget kills.
    assert len({v["alert_id"] for _, v in alerts}) == 4
    assert {(v["user_id"], v["threshold_pct"], v["hard_kill"]) for _, v in alerts} == {
        ("acme-corp", 80, True),
        ("acme-corp", 100, True),
        ("globex", 80, False),
        ("globex", 100, False),
    }
    kill_ids = {v["kill_id"] for _, v in kills}
    assert len(kill_ids) == 1 and all(v["user_id"] == "acme-corp" for _, v in kills)
    assert any("currency" in v["reason"] for _, v in dlq)
