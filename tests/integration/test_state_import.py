"""`streams topics import-state`: table state under Faust's old changelog names moves into the
declared state.* topics, partition by partition, once, on the real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.kafka import admin, producer, read_range
from streams.testing import run_cli
from streams.topology import load_topology

pytestmark = pytest.mark.broker

# (partition, key, value) as a Faust JSON table writes them; None is a deleted key.
OLD_STATE = [
    (0, b'"acme-corp"', b'{"v":1,"months":{"2026-11":{"c":1200000000,"n":3}}}'),
    (2, b'"\\u0000globex|s|ev-7"', b"12"),
    (2, b'"globex"', b'{"v":1,"months":{"2026-11":{"c":50000000,"n":1}}}'),
    (2, b'"\\u0000globex|s|ev-7"', None),
]


async def _write(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import NewTopic

    async with admin(bootstrap) as client:
        await client.create_topics([NewTopic(topic, 3, 1, topic_configs={"cleanup.policy": "compact"})])
    sink = producer(bootstrap)
    await sink.start()
    try:
        for partition, key, value in OLD_STATE:
            await sink.send_and_wait(topic, value, key=key, partition=partition, timestamp_ms=1_790_000_000_000)
    finally:
        await sink.stop()


async def _read(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None, int]]:
    out = [(m.partition, m.key, m.value, m.timestamp) async for m in read_range(bootstrap, topic)]
    return sorted(out, key=lambda r: (r[0], r[3]))


def test_old_changelogs_are_imported_once_keeping_partitions(
    test_env: dict[str, str], kafka_bootstrap: str, run_id: str, topics_file: Path
) -> None:
    old_app = f"streams-old-{run_id}"
    asyncio.run(_write(kafka_bootstrap, f"{old_app}-cost-state-changelog"))
    assert run_cli(test_env, "topics", "apply").returncode == 0
    target = load_topology(topics_file)["cost_state"].name

    first = run_cli(test_env, "topics", "import-state", "--from-app-id", old_app)
    assert first.returncode == 0, first.stderr
    assert f"{old_app}-cost-state-changelog -> {target}: 4 records imported" in first.stdout
    imported = asyncio.run(_read(kafka_bootstrap, target))
    assert [(p, k, v) for p, k, v, _ in imported] == OLD_STATE  # tombstone and order included
    assert {ts for *_, ts in imported} == {1_790_000_000_000}

    again = run_cli(test_env, "topics", "import-state", "--from-app-id", old_app)
    assert again.returncode == 0, again.stderr
    assert f"skipped: {target} already holds records" in again.stdout
    assert len(asyncio.run(_read(kafka_bootstrap, target))) == len(OLD_STATE)

    none = run_cli(test_env, "topics", "import-state", "--from-app-id", f"never-{run_id}")
    assert none.returncode == 0 and "nothing to import" in none.stdout
