"""Offset continuity: which fetched records a consumer hands on, drops or seeks back for."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from streams.ops.consumer import drain_buffer
from streams.ops.continuity import (
    DROPPED_SECONDS,
    GAP_ATTEMPTS,
    RESEEK_SECONDS,
    STALL_IN_FLIGHT_SECONDS,
    STALL_SECONDS,
    DropWatch,
    OffsetContinuity,
    StallWatch,
    Verdict,
    commit_blocked,
)

TP = ("topic", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_contiguous_records_are_delivered_and_repeats_dropped() -> None:
    c = OffsetContinuity()
    c.expect(TP, 44)
    assert [c.check(TP, o) for o in (44, 45, 46)] == [Verdict.DELIVER] * 3
    assert c.check(TP, 45) is Verdict.STALE  # prefetched before a seek, already delivered
    assert c.expected(TP) == 47


def test_a_hole_after_a_seek_rewinds_once_then_drops_until_the_missing_record() -> None:
    # The faust-streaming race: sought to committed 44, then records 47.. of the old
    # generation's fetch arrive.
    c = OffsetContinuity(clock=Clock())
    c.expect(TP, 44)
    assert c.check(TP, 47) is Verdict.REWIND
    assert c.check(TP, 48) is Verdict.STALE  # same batch: the seek back is already asked for
    c.expect(TP, 44)  # the consumer seeks back: the same expectation
    assert c.check(TP, 44) is Verdict.DELIVER
    assert c.check(TP, 45) is Verdict.DELIVER
    assert c.expected(TP) == 46


def test_unknown_partitions_start_where_their_first_record_is() -> None:
    c = OffsetContinuity()
    assert c.check(TP, 10) is Verdict.DELIVER
    assert c.check(TP, 12) is Verdict.REWIND


def test_a_real_hole_is_accepted_after_repeated_seeks() -> None:
    clock = Clock()
    c = OffsetContinuity(clock=clock)
    c.expect(TP, 5)
    assert c.check(TP, 9) is Verdict.REWIND
    for _ in range(GAP_ATTEMPTS - 1):
        clock.now += RESEEK_SECONDS
        assert c.check(TP, 9) is Verdict.REWIND
    clock.now += RESEEK_SECONDS
    assert c.check(TP, 9) is Verdict.GAP
    assert c.check(TP, 10) is Verdict.DELIVER


def test_forget_and_reset() -> None:
    c = OffsetContinuity()
    c.reset({TP: 3, ("topic", 1): None})
    assert c.expected(TP) == 3 and c.expected(("topic", 1)) is None
    c.forget([TP])
    assert c.check(TP, 99) is Verdict.DELIVER


@given(st.integers(0, 50), st.lists(st.integers(0, 80), max_size=60))
def test_delivered_offsets_are_always_contiguous(start: int, fetched: list[int]) -> None:
    """Whatever order records come in, what is delivered is start, start+1, ... (no real
    holes here: the clock never moves, so no GAP)."""
    c = OffsetContinuity(clock=Clock())
    c.expect(TP, start)
    delivered = []
    for offset in fetched:
        verdict = c.check(TP, offset)
        if verdict is Verdict.DELIVER:
            delivered.append(offset)
        elif verdict is Verdict.REWIND:
            expected = c.expected(TP)
            assert expected is not None
            c.expect(TP, expected)
    assert delivered == list(range(start, start + len(delivered)))


def test_commit_is_blocked_by_one_missing_record_and_by_a_missing_first_record() -> None:
    # Faust's check (min(acked) - committed > 1) lets exactly these two through.
    assert commit_blocked(30, [31, 32]) == 30
    assert commit_blocked(0, [1, 2]) == 0
    assert commit_blocked(30, [30, 31]) is None
    assert commit_blocked(30, []) is None
    assert commit_blocked(None, [5]) is None  # no floor known: nothing to say


def test_a_stalled_commit_is_fetched_again_once_per_period() -> None:
    clock = Clock()
    watch = StallWatch(clock=clock)
    assert not watch.should_refetch(TP, 30, in_flight=False)
    clock.now += STALL_SECONDS - 0.1
    assert not watch.should_refetch(TP, 30, in_flight=False)
    clock.now += 0.1
    assert watch.should_refetch(TP, 30, in_flight=False)
    assert not watch.should_refetch(TP, 30, in_flight=False)  # not again at once
    assert not watch.should_refetch(TP, None, in_flight=False)  # the commit moved on


def test_a_record_still_in_a_stage_gets_longer() -> None:
    clock = Clock()
    watch = StallWatch(clock=clock)
    watch.should_refetch(TP, 7, in_flight=True)
    clock.now += STALL_SECONDS * 2
    assert not watch.should_refetch(TP, 7, in_flight=True)
    clock.now = STALL_IN_FLIGHT_SECONDS
    assert watch.should_refetch(TP, 7, in_flight=True)


def test_progress_restarts_the_stall_clock() -> None:
    clock = Clock()
    watch = StallWatch(clock=clock)
    watch.should_refetch(TP, 7, in_flight=False)
    clock.now += STALL_SECONDS
    assert not watch.should_refetch(TP, 9, in_flight=False)  # stuck elsewhere now: a new stall
    watch.forget([TP])
    clock.now += STALL_SECONDS
    assert not watch.should_refetch(TP, 9, in_flight=False)


class SlowBuffer:
    """Faust's producer buffer as the commit sees it: ``flush()`` gives up after a while
    without progress, here after handing over one message."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1
        self.size = max(0, self.size - 1)


def test_records_fetched_but_never_delivered_are_fetched_again_once() -> None:
    # The scale-out test's lost records: the fetch took offsets 29..30, Faust dropped them (the
    # generation changed mid-batch), and no later record came to reveal the hole.
    clock = Clock()
    w = DropWatch(clock)
    assert not w.should_refetch(TP, 29, 31)  # first sight: maybe a batch still being handed on
    clock.now += DROPPED_SECONDS / 2
    assert not w.should_refetch(TP, 29, 31)
    clock.now += DROPPED_SECONDS
    assert w.should_refetch(TP, 29, 31)
    assert not w.should_refetch(TP, 29, 31)  # the clock starts again after a refetch


def test_a_position_that_keeps_up_or_moves_is_never_refetched() -> None:
    clock = Clock()
    w = DropWatch(clock)
    for step in range(5):
        clock.now += DROPPED_SECONDS
        assert not w.should_refetch(TP, 40 + step, 40 + step)  # caught up
        assert not w.should_refetch(("topic", 1), 10 + step, 12 + step)  # still moving
        assert not w.should_refetch(("topic", 2), 50, 45)  # stale repeats being dropped
        assert not w.should_refetch(("topic", 3), None, 7)  # nothing expected yet
    w.should_refetch(TP, 3, 9)
    w.forget([TP])
    clock.now += DROPPED_SECONDS
    assert not w.should_refetch(TP, 3, 9)  # a revoked partition starts over


def test_the_commit_waits_until_every_queued_table_write_is_handed_over() -> None:
    buffer = SlowBuffer(3)
    asyncio.run(drain_buffer(buffer, warn_after=0.0))
    assert buffer.size == 0 and buffer.flushes == 3  # Faust's one flush would have left 2 behind
    empty = SlowBuffer(0)
    asyncio.run(drain_buffer(empty))
    assert empty.flushes == 0
