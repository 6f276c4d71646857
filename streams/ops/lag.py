"""Consumer lag per assigned topic partition, exported as ``swarm_queue_depth{topic,partition}``.

Lag is the high-water mark minus the group's committed offset (the next record the group
would read after a restart), so records fetched into Faust's buffers but not yet processed
still count. Before the first commit of a partition the consumer position stands in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from streams.metrics import QUEUE_DEPTH

TopicPartition = tuple[str, int]


def compute_lag(
    highwaters: Mapping[TopicPartition, int],
    committed: Mapping[TopicPartition, int | None],
    positions: Mapping[TopicPartition, int | None],
) -> dict[TopicPartition, int]:
    """Lag for every partition with a high-water mark and a known offset; never negative."""
    out: dict[TopicPartition, int] = {}
    for tp, high in highwaters.items():
        offset = committed.get(tp)
        if offset is None:
            offset = positions.get(tp)
        if offset is None:
            continue  # nothing read, nothing committed: unknown rather than a made-up number
        out[tp] = max(0, high - offset)
    return out


class LagGauge:
    """Sets the gauge for the current assignment and removes partitions that moved away,
    so a revoked partition does not report its last lag forever (and label sets stay bounded
    by the partitions of topics.yaml topics)."""

    def __init__(self) -> None:
        self._exported: set[TopicPartition] = set()

    def update(self, lag: Mapping[TopicPartition, int], allowed_topics: Iterable[str]) -> None:
        allowed = set(allowed_topics)
        current = {tp for tp in lag if tp[0] in allowed}
        for topic, partition in self._exported - current:
            QUEUE_DEPTH.remove(topic, str(partition))
        for tp in current:
            QUEUE_DEPTH.labels(topic=tp[0], partition=str(tp[1])).set(lag[tp])
        self._exported = current
