"""StageContext: dead letters never raise because the vault fails nor keep the original in the
clear; tables use changelogs declared in topics.yaml, partitioned like their sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streams import serde
from streams.errors import ConfigError, DecodeError
from streams.models import DeadLetter
from streams.settings import Settings
from streams.stage import StageContext
from streams.topology import load_topology, parse_topology
from streams.vault import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]


class _Topic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, *, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


class _FailingKeyStore:
    def encrypt(self, *args: Any, **kwargs: Any) -> Any:
        raise InvalidInputError("the vault is broken")


async def test_dead_letter_survives_a_failing_vault() -> None:
    ctx = StageContext(app=None, settings=Settings(), topology=load_topology(ROOT / "topics.yaml"))
    topic = _Topic()
    ctx._topics["dlq"] = topic
    ctx.keystore = _FailingKeyStore()
    await ctx.dead_letter(
        "sanitize",
        DecodeError("not JSON"),
        topic="hook.events.raw",
        partition=2,
        offset=7,
        original=b"jane@example.com",
    )
    [(key, value)] = topic.sent
    assert key == b"_unattributed"
    record = serde.decode(DeadLetter, value)
    assert record.reason == "not JSON; original not kept: InvalidInputError"
    assert record.original_ciphertext is None and b"jane@example.com" not in value
    assert (record.source_partition, record.source_offset) == (2, 7)


def test_every_table_changelog_is_declared_in_topics_yaml(tmp_path: Path) -> None:
    # Declared topics are created by `topics apply` before a worker starts; a changelog Faust
    # creates at start-up can miss the first assignment (its table then never recovers).
    from streams.app import create_app

    app, ctx = create_app(Settings(data_dir=tmp_path, master_key="dev:" + "A" * 43 + "="))
    names = {spec.name for spec in ctx.topology.topics.values()}
    changelogs = {table.name: table.changelog_topic.get_topic_name() for table in app.tables.values()}
    assert len(changelogs) >= 7
    assert {table: name for table, name in changelogs.items() if name not in names} == {}
    # `topics import-state` knows which old Faust changelog feeds which state.* topic.
    from streams.state_import import TABLES

    declared_before = {ctx.topology["vault_keys"].name, ctx.topology["forgotten_users"].name}
    assert {ctx.topology[key].name: table for key, table in TABLES.items()} == {
        name: table for table, name in changelogs.items() if name not in declared_before
    }


def test_a_table_refuses_a_changelog_partitioned_unlike_its_source(tmp_path: Path) -> None:
    import faust

    data = yaml.safe_load((ROOT / "topics.yaml").read_text())
    data["topics"]["cost_state"]["partitions"] = 5
    topology = parse_topology(yaml.safe_dump(data))
    assert topology["cost_state"].partitions == 5
    ctx = StageContext(app=faust.App("t", datadir=str(tmp_path)), settings=Settings(), topology=topology)
    with pytest.raises(ConfigError, match="cost_state must have as many partitions as sanitized"):
        ctx.json_table("cost-state", changelog="cost_state", co_partitioned=["sanitized"])
