"""The daemon-side publisher: validate, encode, send keyed by user_id, never block for long.

    publisher = Publisher("127.0.0.1:9092")
    await publisher.start()
    bus.on("post_agent_call", publisher.hook_handler)
    ...
    await publisher.stop()          # flushes what is buffered

``publish`` validates at once (a bad event raises ``ValidationError`` naming the field)
and puts the encoded record on a bounded queue; a background task sends it with an
idempotent producer (acks=all). When the queue is full, ``publish`` raises
``BufferFullError`` instead of waiting: the daemon's loop is never held up by a slow or
absent broker for longer than it takes to fill the buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from streams import serde
from streams.errors import BufferFullError, StreamsError, ValidationError
from streams.kafka import broker_errors, consumer, producer
from streams.models import BudgetKill, HookEvent

log = logging.getLogger(__name__)

Encoding = Literal["avro", "json"]


class Publisher:
    def __init__(
        self,
        bootstrap: str,
        topic: str = "hook.events.raw",
        *,
        buffer: int = 10_000,
        encoding: Encoding = "avro",
        max_event_bytes: int = 256 * 1024,
        producer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.encoding: Encoding = encoding
        self.max_event_bytes = max_event_bytes
        self._queue: asyncio.Queue[tuple[bytes, bytes, asyncio.Future[None]]] = asyncio.Queue(buffer)
        self._producer_options = dict(producer_options or {})
        self._producer: Any = None
        self._sender: asyncio.Task[None] | None = None
        self._full_warned = False
        self.sent = 0
        self.failed = 0

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._producer = producer(self.bootstrap, **self._producer_options)
        async with broker_errors(self.bootstrap):
            await self._producer.start()
        self._sender = asyncio.create_task(self._send_loop(), name="streams-publisher")

    async def stop(self, flush_seconds: float = 30.0) -> None:
        """Flush what is buffered (bounded by ``flush_seconds``), then close the producer."""
        if self._sender is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), flush_seconds)
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        while not self._queue.empty():  # anything left could not be sent in time: say so
            _, _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(StreamsError("publisher stopped before the event was sent"))
            self.failed += 1
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def encode(self, event: HookEvent | Mapping[str, Any]) -> tuple[HookEvent, bytes]:
        record = event if isinstance(event, HookEvent) else serde.validate(HookEvent, dict(event))
        value = serde.encode_avro(record) if self.encoding == "avro" else serde.encode_json(record)
        if len(value) > self.max_event_bytes:
            raise ValidationError([("(event)", f"encoded size {len(value)} bytes exceeds {self.max_event_bytes}")])
        return record, value

    def publish_nowait(self, event: HookEvent | Mapping[str, Any]) -> asyncio.Future[None]:
        """Validate and enqueue; the returned future completes when the broker acknowledged."""
        if self._sender is None:
            raise StreamsError("publisher not started")
        record, value = self.encode(event)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((record.user_id.encode(), value, fut))
        except asyncio.QueueFull:
            if not self._full_warned:
                log.warning(
                    "publisher buffer full (%d events): the broker is slower than the daemon",
                    self._queue.maxsize,
                )
                self._full_warned = True
            raise BufferFullError(
                f"publisher buffer full ({self._queue.maxsize} events waiting for the broker)"
            ) from None
        self._full_warned = False
        return fut

    async def publish(self, event: HookEvent | Mapping[str, Any], *, wait: bool = False) -> None:
        fut = self.publish_nowait(event)
        if wait:
            await fut

    async def flush(self) -> None:
        await self._queue.join()

    async def hook_handler(self, event: HookEvent | Mapping[str, Any], *_: Any, **__: Any) -> None:
        """For hook buses: ``bus.on("post_agent_call", publisher.hook_handler)``.

        Fills ``event_id`` and ``timestamp`` when the daemon left them out. Never raises into
        the daemon: a rejected event or a full buffer is logged (without the event's content)
        and counted, because a hook must not take the agent down.
        """
        if not isinstance(event, HookEvent):
            event = {"event_id": str(uuid.uuid4()), "timestamp": datetime.now(UTC), **event}
        try:
            self.publish_nowait(event)
        except (ValidationError, BufferFullError) as exc:
            self.failed += 1
            log.warning("hook event not published: %s", exc)

    async def _send_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            try:
                # Enqueue the whole batch first so the producer can batch it; then await the acks.
                pending = []
                for key, value, fut in batch:
                    try:
                        pending.append((fut, await self._producer.send(self.topic, value=value, key=key)))
                    except Exception as exc:  # e.g. no metadata within the timeout: fail this one
                        self._fail(fut, exc)
                for fut, ack in pending:
                    await self._settle(fut, ack)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _fail(self, fut: asyncio.Future[None], exc: BaseException) -> None:
        self.failed += 1
        if not fut.done():
            fut.set_exception(StreamsError(f"broker did not acknowledge the event: {exc}"))

    async def _settle(self, fut: asyncio.Future[None], ack: Awaitable[Any]) -> None:
        try:
            await ack
        except Exception as exc:  # the producer already retried idempotently; report, don't crash
            self._fail(fut, exc)
            return
        self.sent += 1
        if not fut.done():
            fut.set_result(None)


async def budget_kills(
    bootstrap: str,
    user_id: str,
    run_id: str | None = None,
    *,
    topic: str = "budget.kills",
    from_beginning: bool = False,
) -> AsyncIterator[BudgetKill]:
    """Kills for one tenant (and optionally one run), for a daemon to stop what they name.

    A tenant-wide kill (``run_id`` None on the record) applies to every run of the tenant.
    """
    client = consumer(bootstrap, topic, auto_offset_reset="earliest" if from_beginning else "latest")
    async with broker_errors(bootstrap):
        await client.start()
    try:
        async for message in client:
            try:
                kill = serde.decode(BudgetKill, message.value)
            except StreamsError:
                continue  # not ours to judge: the kills topic is written by the cost stage only
            if kill.user_id == user_id and (run_id is None or kill.run_id in (None, run_id)):
                yield kill
    finally:
        await client.stop()


class HookBus:
    """A minimal in-process hook bus, in the shape daemons already use (``bus.on(name, fn)``)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[..., Awaitable[None]]]] = {}

    def on(self, name: str, handler: Callable[..., Awaitable[None]]) -> None:
        self._handlers.setdefault(name, []).append(handler)

    async def emit(self, name: str, event: Mapping[str, Any]) -> None:
        for handler in self._handlers.get(name, []):
            await handler({"event_type": name, **event})
