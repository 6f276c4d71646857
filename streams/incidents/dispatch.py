"""Routes notifications to adapters without ever making detection wait, at most once each.

The delivery ledger is a ``MutableMapping[str, dict]`` (a Faust Table in production, a
dict in tests) keyed by ``Notification.ledger_key(adapter)`` = (dedup key, action,
notification id, adapter). Before sending, the dispatcher looks the key up and skips
what was already delivered or rejected; it records "delivered" only after the adapter
reported success. A restarted worker that reads the same records again therefore does
not page twice. "failed" (retries exhausted) is recorded for the why, and is retried
when the same notification comes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

from streams.incidents.adapters import Adapter, DeliveryResult
from streams.incidents.escalation import EscalationConfig, Notification
from streams.incidents.metrics import IncidentMetrics, get_metrics
from streams.models import BudgetAlert, BudgetKill, Incident, format_ts

log = logging.getLogger(__name__)
Ledger = MutableMapping[str, Any]
_FINAL = ("delivered", "rejected")


class Dispatcher:
    """Delivers through the adapters a notification's route names.

    Two ways in: ``await deliver(n)`` (delivers now; use it inside an escalation agent so
    the consumer offset only moves on after delivery) or ``submit(n)`` (puts it on a
    bounded queue served by a background task; never blocks, refuses when full).
    """

    def __init__(
        self,
        config: EscalationConfig,
        adapters: Mapping[str, Adapter],
        ledger: Ledger,
        *,
        metrics: IncidentMetrics | None = None,
    ) -> None:
        self.config = config
        self.adapters = dict(adapters)
        self.ledger = ledger
        self._metrics = metrics
        self._queue: asyncio.Queue[Notification] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._inflight: set[str] = set()

    @property
    def metrics(self) -> IncidentMetrics:
        if self._metrics is None:
            self._metrics = get_metrics()
        return self._metrics

    # ------------------------------------------------------------------ records in

    def for_incident(self, incident: Incident) -> Notification:
        return Notification.from_incident(incident)

    def for_budget(self, record: BudgetAlert | BudgetKill) -> Notification | None:
        """The notification for a budget record, or None when escalations.yaml has no route."""
        kind = "budget_alert" if isinstance(record, BudgetAlert) else "budget_kill"
        route = self.config.escalations.get(kind)
        if route is None:
            return None
        if isinstance(record, BudgetAlert):
            return Notification.from_budget_alert(record, route)
        return Notification.from_budget_kill(record, route)

    def adapters_for(self, n: Notification) -> list[str]:
        route = self.config.route(n.kind)
        return list(route.adapters) if route else []

    # --------------------------------------------------------------------- deliver

    async def deliver(self, n: Notification) -> list[DeliveryResult]:
        """Send ``n`` through each routed adapter not yet done in the ledger, concurrently."""
        names = self.adapters_for(n)
        results = await asyncio.gather(*(self._deliver_one(n, name) for name in names))
        return list(results)

    async def _deliver_one(self, n: Notification, name: str) -> DeliveryResult:
        key = n.ledger_key(name)
        done = self.ledger.get(key)
        if (isinstance(done, dict) and done.get("outcome") in _FINAL) or key in self._inflight:
            self.metrics.deliveries.labels(name, "duplicate").inc()
            return DeliveryResult(name, "duplicate", 0, reason="already in the delivery ledger")
        adapter = self.adapters.get(name)
        if adapter is None:
            result = DeliveryResult(name, "rejected", 0, reason=f"adapter {name} is not configured")
        else:
            self._inflight.add(key)
            started = time.monotonic()
            try:
                result = await adapter.send(n)
            finally:
                self._inflight.discard(key)
            self.metrics.delivery_seconds.labels(name).observe(time.monotonic() - started)
        self.ledger[key] = result.to_json() | {"at": format_ts(datetime.now(UTC))}
        self.metrics.deliveries.labels(name, result.outcome).inc()
        if result.outcome != "delivered":
            # The dedup key is a hash or a budget id: safe to log; never the URL or key.
            log.warning("%s not delivered via %s: %s", n.dedup_key, name, result.reason)
        return result

    # ------------------------------------------------------------------ the queue

    async def start(self) -> None:
        """Start the background task that serves ``submit``. Call from inside the event loop."""
        if self._worker is None:
            self._queue = asyncio.Queue(maxsize=self.config.delivery.queue_size)
            self._worker = asyncio.create_task(self._run(), name="incident-dispatcher")

    def submit(self, n: Notification) -> bool:
        """Queue ``n`` for delivery without waiting; False when the queue is full (counted)."""
        if self._queue is None:
            raise RuntimeError("Dispatcher.start() has not been awaited")
        try:
            self._queue.put_nowait(n)
        except asyncio.QueueFull:
            self.metrics.queue_dropped.inc()
            log.error("escalation queue full; dropped a %s notification for %s", n.kind, n.dedup_key)
            return False
        return True

    async def join(self) -> None:
        """Wait until everything submitted so far is delivered or given up."""
        if self._queue is not None:
            await self._queue.join()

    async def stop(self, *, drain_seconds: float = 5.0) -> None:
        """Drain the queue for at most ``drain_seconds``, then stop and close the adapters."""
        if self._worker is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.join(), drain_seconds)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for adapter in self.adapters.values():
            await adapter.aclose()

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            n = await self._queue.get()
            try:
                await self.deliver(n)
            except Exception:  # the loop must survive a bug in one delivery
                log.exception("delivery of a %s notification crashed", n.kind)
            finally:
                self._queue.task_done()
