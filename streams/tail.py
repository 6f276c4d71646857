"""`streams tail`: read any topic, decode Avro or JSON, print readable lines or JSON."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from streams import serde
from streams.errors import StreamsError
from streams.kafka import broker_errors, consumer, topic_partitions
from streams.render import matches, render


async def tail(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool,
    follow: bool,
    as_json: bool,
    filters: list[tuple[str, str]],
    limit: int | None = None,
    out: TextIO = sys.stdout,
    idle_timeout: float | None = None,
) -> int:
    """Print records; return how many were printed.

    Without ``follow`` it stops at the end offsets seen at start. ``idle_timeout`` (seconds)
    ends a follow after that long without a record (for scripts and tests).
    """
    client = consumer(bootstrap, group_id=None, auto_offset_reset="earliest")
    async with broker_errors(bootstrap):
        await client.start()
    printed = 0
    try:
        tps = await topic_partitions(client, topic)
        if not tps:
            raise StreamsError(f"topic {topic!r} does not exist (see `streams topics check`)")
        client.assign(tps)
        if from_beginning:
            await client.seek_to_beginning(*tps)
        else:
            await client.seek_to_end(*tps)
        end = await client.end_offsets(tps)
        while True:
            if not follow:
                positions = {tp: await client.position(tp) for tp in tps}
                if all(positions[tp] >= end[tp] for tp in tps):
                    break
            batches = await client.getmany(timeout_ms=500, max_records=500)
            if not batches and follow and idle_timeout is not None:
                idle_timeout -= 0.5
                if idle_timeout <= 0:
                    break
            for tp, messages in batches.items():
                for message in messages:
                    line = _format(message.value, tp.partition, message.offset, as_json, filters)
                    if line is None:
                        continue
                    print(line, file=out, flush=True)
                    printed += 1
                    if limit is not None and printed >= limit:
                        return printed
    finally:
        await client.stop()
    return printed


def _format(
    value: bytes | None, partition: int, offset: int, as_json: bool, filters: list[tuple[str, str]]
) -> str | None:
    if value is None:
        data: dict[str, object] = {"tombstone": True}
        kind = "tombstone"
    else:
        try:
            kind, data = serde.decode_any(value)
        except StreamsError as exc:
            # Undecodable bytes are reported in place, never silently skipped.
            kind, data = "undecodable", {"error": str(exc), "bytes": len(value)}
    if filters and not matches(data, filters):
        return None
    if as_json:
        return json.dumps(data, ensure_ascii=False)
    return f"{render(kind, data)}  [p{partition}@{offset}]"
