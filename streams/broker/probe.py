"""Is something listening, and does it answer Kafka metadata?"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

_mute_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    cluster_id: str | None
    broker_ids: tuple[int, ...]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def _aiokafka_muted() -> Iterator[None]:
    # aiokafka logs every failed bootstrap at ERROR; while we poll a starting broker those
    # failures are expected, and would otherwise reach stderr through logging's last resort.
    logger = logging.getLogger("aiokafka")
    with _mute_lock:
        level = logger.level
        logger.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            logger.setLevel(level)


async def _describe(bootstrap: str, limit_s: float) -> ClusterInfo:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(limit_s * 1000)))
    try:
        await asyncio.wait_for(admin.start(), limit_s)
        meta = await asyncio.wait_for(admin.describe_cluster(), limit_s)
    finally:
        await admin.close()
    brokers = tuple(sorted(int(b["node_id"]) for b in meta.get("brokers", [])))
    return ClusterInfo(cluster_id=meta.get("cluster_id"), broker_ids=brokers)


def describe_cluster(bootstrap: str, timeout: float = 5.0) -> ClusterInfo | None:
    """The cluster's metadata, or None when nothing answers it within ``timeout`` seconds.

    Runs its own event loop in a worker thread, so it also works when called from async code
    (an async pytest fixture) where ``asyncio.run`` would refuse.
    """

    def run() -> ClusterInfo | None:
        try:
            return asyncio.run(_describe(bootstrap, timeout))
        except Exception:  # any failure means "not answering Kafka (yet)"; the caller decides
            return None

    with _aiokafka_muted(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-probe") as pool:
        return pool.submit(run).result()
