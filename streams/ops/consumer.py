"""The Faust consumer every worker uses: Faust's aiokafka consumer with offset continuity.

What it does over faust-streaming's own (see ``streams.ops.continuity``; the scale-out test
found the lost or stuck records behind each):
- a partition with no committed offset is sought to its beginning (this pipeline's reset
  policy) instead of staying wherever prefetching left it;
- records reach the streams in offset order without holes: a stale prefetched record is
  dropped, a record past a hole makes the consumer seek back to the first missing offset.
- an offset is committed only once every record before it was processed: a record Faust
  dropped between the consumer and the agent blocks the commit (Faust would commit past
  it), and after ``STALL_SECONDS`` the partition is fetched again from it; records already
  processed are not handed to the agent twice.
- records Faust fetched but dropped before the stream (the generation changed mid-batch)
  leave aiokafka's position past the next offset to deliver; after a second of that the
  partition is fetched again from that offset (nothing else notices when no later record comes);
- offsets are committed only after every table write queued so far reached the broker:
  Faust's own pre-commit flush of its producer buffer gives up after 0.1 s without progress,
  so a crash right after a commit could lose table writes of committed records.
Faust's changelog partitions (table recovery) are left exactly as Faust handles them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Hashable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from streams.metrics import CONTINUITY
from streams.ops.continuity import DropWatch, OffsetContinuity, StallWatch, Verdict, commit_blocked

log = logging.getLogger(__name__)


DRAIN_WARN_SECONDS = 5.0


async def drain_buffer(buffer: Any, *, warn_after: float = DRAIN_WARN_SECONDS) -> None:
    """Wait until Faust's producer buffer (table changelog writes queued by synchronous
    ``table[key] = value``) has handed everything to the Kafka producer. Waits as long as it
    takes: committing earlier could lose state, not committing only delays the commit."""
    started = time.monotonic()
    warned = False
    while buffer.size:
        await buffer.flush()  # returns after 0.1 s without progress
        if buffer.size:
            if not warned and time.monotonic() - started >= warn_after:
                log.warning("offset commit waits for %d table writes still queued for the broker", buffer.size)
                warned = True
            await asyncio.sleep(0.05)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        result: Mapping[TP, int] = await self.call_thread(self._seek_to_committed_or_start)
        return result

    async def _seek_to_committed_or_start(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed: dict[Any, Any] = dict(await consumer.seek_to_committed())
        changelogs = self.app.tables.changelog_topics
        # aiokafka seeks only to committed offsets > 0: the rest keep their prefetch position.
        fresh = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
        if fresh:
            await consumer.seek_to_beginning(*fresh)
            for tp in fresh:
                committed[tp] = await consumer.position(tp)
        return committed

    def fetch_position(self, tp: TP) -> int | None:
        """The partition's next offset to fetch, read without waiting (None when unknown).

        aiokafka's ``position()`` waits for a valid position; this only looks, which is all a
        once-a-second check between fetches needs. It reads the consumer thread's state from
        the event loop's thread: a single attribute read, and a torn view only delays the
        check (``DropWatch`` wants the same values a second apart)."""
        consumer = self._consumer
        if consumer is None or consumer._subscription.subscription is None:
            return None
        state = consumer._subscription.subscription.assignment.state_value(tp)
        if state is None or not state.has_valid_position:
            return None
        position: int = state.position
        return position


class ContinuousConsumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.continuity = OffsetContinuity()
        self.stalls = StallWatch()
        self.drops = DropWatch()
        self._floor: dict[TP, int] = {}  # where each partition started, until its first commit
        self._stalls_checked = 0.0

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _tracked(self, tp: TP) -> bool:
        return tp.topic not in self.app.tables.changelog_topics

    async def seek_to_committed(self) -> Mapping[TP, int]:
        positions = await super().seek_to_committed()
        tracked: dict[Hashable, int | None] = {tp: o for tp, o in positions.items() if self._tracked(tp)}
        self.continuity.reset(tracked)
        # Faust stores a committed offset of 0 as None; the commit check needs the number.
        self._floor.update({tp: o for tp, o in positions.items() if self._tracked(tp) and o is not None})
        return positions

    def _blocked_at(self, tp: TP) -> int | None:
        """The unprocessed offset this partition's commit must not pass, or None."""
        committed = self._committed_offset.get(tp)
        return commit_blocked(self._floor.get(tp) if committed is None else committed, self._acked.get(tp, ()))

    def _new_offset(self, tp: TP) -> int | None:
        if self._tracked(tp) and not self._gap.get(tp) and self._blocked_at(tp) is not None:
            return None  # a record before the first processed one is not processed yet
        offset: int | None = super()._new_offset(tp)
        return offset

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        await drain_buffer(self.app.producer.buffer)
        done: bool = await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)
        return done

    async def _refetch_stalled(self) -> None:
        for tp in list(self._acked):
            if not self._tracked(tp):
                continue
            blocked = self._blocked_at(tp)
            in_flight = blocked is not None and any(
                m.tp == tp and m.offset == blocked for m in list(self._unacked_messages)
            )
            if blocked is not None and self.stalls.should_refetch(tp, blocked, in_flight=in_flight):
                await self._fetch_again(tp, blocked, "refetch", "offset %s of %s[%s] was fetched but never processed")

    async def _refetch_dropped(self) -> None:
        thread = self._thread
        if not isinstance(thread, _ConsumerThread):
            return
        for tp in self.assignment():
            if not self._tracked(tp):
                continue
            expected = self.continuity.expected(tp)
            if self.drops.should_refetch(tp, expected, thread.fetch_position(tp)) and expected is not None:
                await self._fetch_again(
                    tp, expected, "dropped", "offsets from %s of %s[%s] were fetched but never delivered"
                )

    async def _fetch_again(self, tp: TP, offset: int, verdict: str, what: str) -> None:
        CONTINUITY.labels(topic=tp.topic, verdict=verdict).inc()
        log.warning(what + ": fetching again", offset, tp.topic, tp.partition)  # what: a constant format
        await self.seek(tp, offset)

    async def _seek(self, partition: TP, offset: int) -> None:
        await super()._seek(partition, offset)
        if self._tracked(partition):
            self.continuity.expect(partition, offset)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.continuity.forget(revoked)
        self.stalls.forget(revoked)
        self.drops.forget(revoked)
        for tp in revoked:
            self._floor.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109 (Faust's signature)
        now = time.monotonic()
        if now - self._stalls_checked >= 1.0:
            self._stalls_checked = now
            await self._refetch_stalled()
            await self._refetch_dropped()
        async for tp, message in super().getmany(timeout):
            if not self._tracked(tp):
                yield tp, message
                continue
            expected = self.continuity.expected(tp)
            verdict = self.continuity.check(tp, message.offset)
            if verdict is Verdict.DELIVER:
                if message.offset in self._acked_index.get(tp, ()):
                    CONTINUITY.labels(topic=tp.topic, verdict="processed").inc()
                    continue  # fetched again after a stall: processed already, only awaiting commit
                yield tp, message
                continue
            CONTINUITY.labels(topic=tp.topic, verdict=verdict.value).inc()
            if verdict is Verdict.GAP:
                log.error(
                    "offsets %s..%s of %s[%s] never arrived after repeated seeks; continuing past them",
                    expected, message.offset - 1, tp.topic, tp.partition,
                )  # fmt: skip
                yield tp, message
            elif verdict is Verdict.REWIND and expected is not None:
                log.warning(
                    "offset %s of %s[%s] arrived before %s: seeking back",
                    message.offset, tp.topic, tp.partition, expected,
                )  # fmt: skip
                await self.seek(tp, expected)


def install(app: Any) -> None:
    """Make ``app`` build ``ContinuousConsumer``s. Connects nothing: the transport object is
    only a factory until the worker starts."""

    class Transport(faust_aiokafka.Transport):
        Consumer = ContinuousConsumer

    # No loop argument, like Faust's own: the transport resolves its loop when first used.
    app.transport = Transport(app.conf.broker_consumer, app)
