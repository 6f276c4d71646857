"""A real broker JVM per Kafka version: start, reuse, topic, produce, consume, stop.

Versions: $STREAMS_TEST_KAFKA_VERSIONS (comma-separated, default "3.9.1"), e.g.
``STREAMS_TEST_KAFKA_VERSIONS=3.9.1,4.1.1 pytest -m broker tests/integration/test_broker_real.py``.
Jars come from $STREAMS_KAFKA_JARS_HOME, else the default kafka_home (fetched there once).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from streams.broker import broker_status, ensure_broker, stop_broker
from streams.broker.layout import JARS_HOME_ENV
from streams.settings import Settings
from streams.testing import free_port

pytestmark = pytest.mark.broker

VERSIONS = [v.strip() for v in os.environ.get("STREAMS_TEST_KAFKA_VERSIONS", "3.9.1").split(",") if v.strip()]


async def _roundtrip(bootstrap: str) -> tuple[bytes | None, bytes | None]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"broker-test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        # A just-started broker can answer metadata before the new topic is in it.
        for _ in range(50):
            if topic in await admin.list_topics():
                break
            await asyncio.sleep(0.2)
        assert topic in await admin.list_topics()
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}", auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=60)
        await consumer.commit()
    finally:
        await consumer.stop()
    return record.key, record.value


@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", VERSIONS)
def test_real_broker_start_reuse_roundtrip_stop(version: str, tmp_path: Path) -> None:
    settings = Settings(
        kafka_home=tmp_path / "kafka",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_version=version,
    )
    jars_home = Path(os.environ.get(JARS_HOME_ENV) or Settings().kafka_home)

    handle = ensure_broker(settings, jars_home=jars_home)
    try:
        assert handle.started_by_us
        assert handle.version == version
        assert handle.bootstrap == f"127.0.0.1:{settings.kafka_port}"

        again = ensure_broker(settings, jars_home=jars_home)
        assert not again.started_by_us
        assert again.pid == handle.pid
        assert again.cluster_id == handle.cluster_id
        assert again.startup_seconds < 5

        assert asyncio.run(_roundtrip(handle.bootstrap)) == (b"k1", b"hello")
        status = broker_status(settings)
        assert (status.state, status.version, status.pid) == ("ready", version, handle.pid)
    finally:
        stopped = stop_broker(settings)
    assert stopped is not None
    assert stopped.pid == handle.pid
    assert broker_status(settings).state == "stopped"
    assert (tmp_path / "kafka" / f"data-{version}" / "kraft-logs" / "meta.properties").is_file()
