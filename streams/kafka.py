"""aiokafka clients built from settings, with broker failures mapped to our own errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from streams.errors import BrokerUnavailableError, StreamsError


def producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer: acks=all, retries without duplicates or reordering."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "request_timeout_ms": 15000,
        "client_id": "streams",
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(bootstrap: str, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "enable_auto_commit": False,
        "auto_offset_reset": "latest",
        "client_id": "streams",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def topic_partitions(client: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, sorted; [] when the broker does not know the topic.

    A new consumer knows no topic until it asks: refresh the metadata first.
    """
    partitions = client.partitions_for_topic(topic)
    if not partitions:
        await client._client.force_metadata_update()
        partitions = client.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(partitions or ())]


async def read_range(
    bootstrap: str, topic: str, *, since_ms: int | None = None, group_id: str | None = None
) -> AsyncIterator[Any]:
    """Every record of ``topic`` from ``since_ms`` (or the beginning) up to the end offsets
    seen at the start: a bounded read, for replays and verifications."""
    client = consumer(bootstrap, group_id=group_id, auto_offset_reset="earliest")
    async with broker_errors(bootstrap):
        await client.start()
    try:
        tps = await topic_partitions(client, topic)
        if not tps:
            raise StreamsError(f"topic {topic!r} does not exist (run `streams topics apply`)")
        client.assign(tps)
        stop = await client.end_offsets(tps)
        await client.seek_to_beginning(*tps)
        if since_ms is not None:
            found = await client.offsets_for_times(dict.fromkeys(tps, since_ms))
            for tp in tps:
                if found[tp] is None:
                    stop[tp] = 0  # nothing at or after since_ms in this partition
                else:
                    client.seek(tp, found[tp].offset)
        pending = {tp for tp in tps if await client.position(tp) < stop[tp]}
        while pending:
            batches = await client.getmany(*pending, timeout_ms=1000)
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset < stop[tp]:
                        yield message
            pending = {tp for tp in pending if await client.position(tp) < stop[tp]}
    finally:
        await client.stop()


@contextlib.asynccontextmanager
async def admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, client_id="streams-admin")
    async with broker_errors(bootstrap):
        await client.start()
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def broker_errors(bootstrap: str) -> AsyncIterator[None]:
    """Turn aiokafka's connection failures into one clear, retryable error."""
    try:
        yield
    except KafkaConnectionError as exc:
        raise BrokerUnavailableError(
            f"cannot reach the Kafka broker at {bootstrap} ({exc}); is it running? try `streams broker start`"
        ) from None
    except KafkaError as exc:
        if getattr(exc, "retriable", False) or "Unable to bootstrap" in str(exc):
            raise BrokerUnavailableError(f"Kafka broker at {bootstrap}: {exc}") from None
        raise
