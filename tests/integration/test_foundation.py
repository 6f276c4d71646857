"""The foundation on the real broker: topics apply/check, publish, tail, the publisher's bounds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams import topics_admin
from streams.errors import BrokerUnavailableError, BufferFullError, ValidationError
from streams.kafka import admin
from streams.publisher import Publisher
from streams.testing import run_cli
from streams.topology import load_topology

pytestmark = pytest.mark.broker


def test_topics_apply_and_check(test_env: dict[str, str], topics_file: Path, kafka_bootstrap: str) -> None:
    check = run_cli(test_env, "topics", "check")
    assert check.returncode == 1 and "missing" in check.stdout
    applied = run_cli(test_env, "topics", "apply")
    assert applied.returncode == 0, applied.stderr
    assert "created" in applied.stdout
    assert run_cli(test_env, "topics", "check").returncode == 0

    topology = load_topology(topics_file)
    raw = topology["raw"].name

    async def drift() -> None:
        async with admin(kafka_bootstrap) as client:
            await client.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC,
                        raw,
                        configs={**topology["raw"].desired_configs(), "retention.ms": "999"},
                    )
                ]
            )

    asyncio.run(drift())
    check = run_cli(test_env, "topics", "check")
    assert check.returncode == 1 and f"{raw}: retention.ms is '999', want '21600000'" in check.stdout
    fixed = run_cli(test_env, "topics", "apply")
    assert fixed.returncode == 0 and "fixed" in fixed.stdout
    again = run_cli(test_env, "topics", "apply")
    assert "0 changed" in again.stdout
    plans = asyncio.run(topics_admin.check(kafka_bootstrap, topology))
    assert all(p.in_sync for p in plans)


GOOD = {
    "event_type": "post_agent_call",
    "user_id": "acme-corp",
    "run_id": "run-1",
    "timestamp": "2026-11-27T20:01:51Z",
    "source": "kairos@host-1",
    "model": "claude-sonnet-4-5",
    "cost_usd": "0.0123",
    "latency_ms": 1234,
}


def test_publish_reports_bad_lines_and_tail_shows_good_ones(test_env: dict[str, str]) -> None:
    assert run_cli(test_env, "topics", "apply").returncode == 0
    lines = [
        json.dumps({**GOOD, "event_id": "good-1"}),
        "{not json",
        json.dumps({**GOOD, "event_id": "bad-type", "event_type": "post_agent_cal"}),
        "",
        json.dumps({**GOOD, "event_id": "good-2", "user_id": "globex", "payload": {"tool": "crm"}}),
        json.dumps({k: v for k, v in GOOD.items() if k != "user_id"} | {"event_id": "no-user"}),
        json.dumps({**GOOD, "event_id": "good-3", "cost_usd": 0.5}),
    ]
    result = run_cli(test_env, "publish", "-", stdin="\n".join(lines) + "\n")
    assert result.returncode == 1
    assert "published 3 events" in result.stdout and "rejected 3" in result.stdout
    assert "line 2: rejected: malformed JSON" in result.stderr
    assert "line 3: rejected: event_type" in result.stderr
    assert "line 6: rejected: user_id: is required" in result.stderr
    assert "Traceback" not in result.stderr

    tail = run_cli(test_env, "tail", "raw", "--from-beginning", "--json")
    assert tail.returncode == 0, tail.stderr
    records = [json.loads(line) for line in tail.stdout.splitlines()]
    assert sorted(r["event_id"] for r in records) == ["good-1", "good-2", "good-3"]
    assert {r["cost_usd"] for r in records} == {"0.012300", "0.500000"}

    filtered = run_cli(test_env, "tail", "raw", "--from-beginning", "--filter", "payload.tool=crm")
    assert filtered.stdout.count("\n") == 1 and "globex" in filtered.stdout and "[p" in filtered.stdout


def test_tail_of_unknown_topic_is_a_clear_error(test_env: dict[str, str]) -> None:
    result = run_cli(test_env, "tail", "no.such.topic", "--from-beginning")
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


async def test_publisher_bounded_buffer_says_full(kafka_bootstrap: str, topics_file: Path) -> None:
    await topics_admin.apply(kafka_bootstrap, load_topology(topics_file))
    topic = load_topology(topics_file)["raw"].name
    async with Publisher(kafka_bootstrap, topic, buffer=5) as publisher:
        futures = [publisher.publish_nowait({**GOOD, "event_id": f"e{i}"}) for i in range(5)]
        # No await in between: the sender has not run, so the sixth finds the buffer full.
        with pytest.raises(BufferFullError, match="buffer full"):
            publisher.publish_nowait({**GOOD, "event_id": "e5"})
        await asyncio.wait_for(asyncio.gather(*futures), 30)
        publisher.publish_nowait({**GOOD, "event_id": "e6"})  # room again once flushed
        with pytest.raises(ValidationError, match="event_type"):
            publisher.publish_nowait({**GOOD, "event_id": "x", "event_type": "nope"})
    assert publisher.sent == 6


async def test_publisher_without_broker_fails_clearly() -> None:
    publisher = Publisher("127.0.0.1:1", "hook.events.raw", producer_options={"request_timeout_ms": 2000})
    with pytest.raises(BrokerUnavailableError, match="cannot reach the Kafka broker"):
        await publisher.start()


def test_publish_cli_with_broker_down(test_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({**GOOD, "event_id": "x"}) + "\n")
    result = run_cli({**test_env, "STREAMS_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "publish", str(path))
    assert (
        result.returncode == 2 and "cannot reach the Kafka broker" in result.stderr and "Traceback" not in result.stderr
    )
