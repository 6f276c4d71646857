"""Per-partition offset continuity: every record a stage sees is the one after the last.

Why this exists: around a rebalance faust-streaming (0.15) can hand a stream records fetched
in the previous generation, after it has already sought the partition back to its committed
offset (faust-streaming#216, #221). The stream then processes offset 47 while 44-46 were
never delivered, and Faust's own gap tracking treats 44-46 as compacted away and commits
past them: records lost for good. aiokafka's ``seek_to_committed`` also leaves a partition
with no committed offset wherever prefetching moved it, so a new group could skip the first
records of a partition.

The source topics of this pipeline are never compacted and never written transactionally,
so offsets have no holes: a record beyond the expected offset means records were skipped.
``OffsetContinuity`` says what to do with each fetched record; the Faust consumer in
``streams.ops.consumer`` seeks back when told to. A hole that survives ``GAP_ATTEMPTS``
seeks is real (a topic configured differently) and is accepted, loudly.

Delivered is not processed: Faust can also drop a record between the consumer and the agent
(queues cleared on a rebalance). Its commit then refuses to pass the unacknowledged offset
(``first_unacked``), and ``StallWatch`` says when to fetch the partition again from it.

Fetched is not delivered either: Faust drops records it fetched when the generation changes
mid-batch or the partition was paused meanwhile, and aiokafka's position has already moved past
them. When no later record arrives (the partition's last records, or a quiet partition) nothing
else would ever notice; ``DropWatch`` compares the position with the next offset to deliver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

GAP_ATTEMPTS = 3  # seeks to the same offset before a hole is believed
RESEEK_SECONDS = 2.0  # how long records beyond a pending rewind are dropped before seeking again
STALL_SECONDS = 10.0  # a commit stuck behind a record nobody is processing: fetch it again
STALL_IN_FLIGHT_SECONDS = 120.0  # ... or behind one a stage has held this long
DROPPED_SECONDS = 1.0  # Kafka's position past the next offset to deliver, unchanged this long: refetch


class Verdict(StrEnum):
    DELIVER = "deliver"  # the expected record: hand it to the stream
    STALE = "stale"  # at or below what was delivered (a prefetched repeat), or behind a rewind: drop
    REWIND = "rewind"  # records are missing before it: drop it and seek back to ``expected``
    GAP = "gap"  # a hole that repeated seeks did not fill: deliver it, the hole is real


@dataclass
class _Pending:
    offset: int
    attempts: int
    since: float


class OffsetContinuity:
    """Tracks the next offset each partition must deliver. Partitions it was never told
    about are accepted as they come (the first record sets the expectation)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._expected: dict[Hashable, int] = {}
        self._pending: dict[Hashable, _Pending] = {}
        self._clock = clock

    def expect(self, tp: Hashable, offset: int) -> None:
        """The partition was sought to ``offset``: that is the next record it must deliver."""
        self._expected[tp] = offset
        pending = self._pending.get(tp)
        if pending is not None and pending.offset != offset:
            del self._pending[tp]

    def reset(self, positions: Mapping[Hashable, int | None]) -> None:
        for tp, offset in positions.items():
            if offset is None:
                self.forget([tp])
            else:
                self.expect(tp, offset)

    def forget(self, tps: Iterable[Hashable]) -> None:
        for tp in tps:
            self._expected.pop(tp, None)
            self._pending.pop(tp, None)

    def expected(self, tp: Hashable) -> int | None:
        return self._expected.get(tp)

    def check(self, tp: Hashable, offset: int) -> Verdict:
        expected = self._expected.get(tp)
        if expected is None or offset == expected:
            self._expected[tp] = offset + 1
            self._pending.pop(tp, None)
            return Verdict.DELIVER
        if offset < expected:
            return Verdict.STALE
        now = self._clock()
        pending = self._pending.get(tp)
        if pending is None or pending.offset != expected:
            self._pending[tp] = _Pending(expected, 1, now)
            return Verdict.REWIND
        if now - pending.since < RESEEK_SECONDS:
            return Verdict.STALE  # the seek back is on its way; records fetched before it still drain
        if pending.attempts < GAP_ATTEMPTS:
            pending.attempts += 1
            pending.since = now
            return Verdict.REWIND
        self._expected[tp] = offset + 1
        del self._pending[tp]
        return Verdict.GAP


def commit_blocked(committed: int | None, acked: Iterable[int]) -> int | None:
    """The offset a partition's commit must not pass, or None. ``committed`` is Kafka's
    committed offset (the next record to process); ``acked`` the processed offsets after it.
    Faust's own check lets one missing record through (it tests ``min(acked) - committed > 1``)
    and none when nothing was committed yet."""
    first = min(acked, default=None)
    if committed is None or first is None or first <= committed:
        return None
    return committed


class StallWatch:
    """When to re-fetch a partition whose commit is stuck at an offset nobody processes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._since: dict[Hashable, tuple[int, float]] = {}
        self._clock = clock

    def should_refetch(self, tp: Hashable, blocked_at: int | None, *, in_flight: bool) -> bool:
        if blocked_at is None:
            self._since.pop(tp, None)
            return False
        now = self._clock()
        offset, since = self._since.setdefault(tp, (blocked_at, now))
        if offset != blocked_at:
            self._since[tp] = (blocked_at, now)
            return False
        waited = now - since
        if waited >= (STALL_IN_FLIGHT_SECONDS if in_flight else STALL_SECONDS):
            self._since[tp] = (blocked_at, now)  # once per period, not on every poll
            return True
        return False

    def forget(self, tps: Iterable[Hashable]) -> None:
        for tp in tps:
            self._since.pop(tp, None)


class DropWatch:
    """When records taken from Kafka never reached the stream: the consumer's position is past
    the next offset to deliver and stays there (between fetches the two are equal)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: dict[Hashable, tuple[int, int, float]] = {}
        self._clock = clock

    def should_refetch(self, tp: Hashable, expected: int | None, position: int | None) -> bool:
        if expected is None or position is None or position <= expected:
            self._seen.pop(tp, None)
            return False
        now = self._clock()
        seen = self._seen.get(tp)
        if seen is None or seen[:2] != (expected, position):
            self._seen[tp] = (expected, position, now)
            return False
        if now - seen[2] >= DROPPED_SECONDS:
            del self._seen[tp]
            return True
        return False

    def forget(self, tps: Iterable[Hashable]) -> None:
        for tp in tps:
            self._seen.pop(tp, None)
