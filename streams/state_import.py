"""Carry table state from Faust's own changelog topics into topics.yaml's ``state.*`` topics.

Until 2026-12-02 a table's changelog was the topic Faust names ``<app id>-<table>-changelog``;
now each is declared in topics.yaml. A worker reads only the declared one, so without this
copy an upgraded deployment starts with empty tables (month-to-date spend, the dedupe window,
open incidents). The copy keeps each record's partition, key, value and timestamp, and only
ever writes to an empty target: running it twice, or after workers wrote new state, changes
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from streams.errors import StreamsError
from streams.kafka import broker_errors, consumer, producer, read_range, topic_partitions
from streams.topology import Topology

# topics.yaml key of each state topic -> the Faust table whose changelog it is.
TABLES = {
    "cost_state": "cost-state",
    "audit_chain": "audit-chain",
    "incident_rings": "incident-rings",
    "incident_tracker": "incident-tracker",
    "delivery_ledger": "delivery-ledger",
}


@dataclass(frozen=True)
class Imported:
    source: str
    target: str
    records: int
    skipped: str | None = None  # why nothing was copied


def legacy_changelog(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


async def import_state(bootstrap: str, topology: Topology, app_ids: Sequence[str]) -> list[Imported]:
    """Copy every old changelog of ``app_ids`` that exists into its empty ``state.*`` topic.

    An app id is the worker's ``STREAMS_APP_ID``, suffixed by its stage set when it ran with
    ``--only`` (``streams-cost``, ``streams-incidents``): give each one that ran.
    """
    out: list[Imported] = []
    client = consumer(bootstrap, group_id=None)  # metadata and end offsets only
    sink = producer(bootstrap)
    async with broker_errors(bootstrap):
        await client.start()
        await sink.start()
    try:
        for app_id in app_ids:
            for key, table in TABLES.items():
                source, target = legacy_changelog(app_id, table), topology[key].name
                sources = await topic_partitions(client, source)
                if not sources:
                    continue  # this app id never ran that table
                targets = await topic_partitions(client, target)
                if not targets:
                    raise StreamsError(f"{target} does not exist: run `streams topics apply` first")
                if len(sources) != len(targets):
                    out.append(Imported(source, target, 0, f"{len(sources)} partitions, {target} has {len(targets)}"))
                    continue
                if any((await client.end_offsets(targets)).values()):
                    out.append(Imported(source, target, 0, f"{target} already holds records"))
                    continue
                out.append(Imported(source, target, await _copy(bootstrap, sink, source, target)))
    finally:
        await sink.stop()
        await client.stop()
    return out


async def _copy(bootstrap: str, sink: AIOKafkaProducer, source: str, target: str) -> int:
    pending = []
    async for r in read_range(bootstrap, source):  # up to the end offsets seen at its start
        pending.append(await sink.send(target, r.value, key=r.key, partition=r.partition, timestamp_ms=r.timestamp))
    for fut in pending:
        await fut  # acknowledged by the broker (acks=all) before the copy is reported done
    return len(pending)
