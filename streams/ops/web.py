"""Faust wiring of the operations endpoints: ``/health``, ``/ready`` and the tick timer that
feeds them and refreshes the consumer-lag gauge. Called from ``create_app``."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from streams.metrics import HEALTH_FAILURES, READY
from streams.ops.health import Health, Tick
from streams.ops.lag import LagGauge, TopicPartition, compute_lag
from streams.stage import StageContext

log = logging.getLogger(__name__)


def register(ctx: StageContext) -> None:
    app, settings = ctx.app, ctx.settings
    interval = settings.health_interval
    health = Health()
    lag_gauge = LagGauge()
    metadata = _MetadataProbe(settings.bootstrap_servers, timeout=max(interval, 5.0))

    async def tick() -> None:
        try:
            result = await metadata.check(_expected_topics(ctx))
            result = Tick(_consumer_alive(app), result.broker_ok, result.missing_topics, result.error)
            health.record(result)
            HEALTH_FAILURES.set(health.consecutive_failures)
            readiness()  # keeps the streams_ready gauge current without anyone polling /ready
            if not result.ok:
                log.warning("health tick failed: %s", "; ".join(health.liveness().reasons) or result.error or "")
        except Exception as exc:  # a timer that raises stops ticking, and liveness would go stale
            health.record(Tick(consumer_alive=False, broker_ok=False, error=type(exc).__name__))
            log.exception("health tick crashed")
        try:
            await _update_lag(app, lag_gauge, limit_s=max(interval, 5.0))
        except Exception:  # lag is best effort: a failed refresh must not stop the timer
            log.warning("consumer lag refresh failed", exc_info=True)
        if "cost-state" in ctx.tables and app.tables.recovery.completed.is_set():  # partial before recovery
            try:
                from streams.cost.budgets import BudgetBook
                from streams.ops import budget

                owned = ctx.owned_cost_states() or {}  # summed across workers: each tenant once
                budget.export(owned, BudgetBook(settings.budgets_file).config, datetime.now(UTC))
            except Exception:  # metrics are best effort; the cost stage reports a bad budgets file itself
                log.warning("budget metrics refresh failed", exc_info=True)

    def readiness() -> Any:
        verdict = health.readiness(
            stages_started=_stages_started(app),
            tables_recovered=app.tables.recovery.completed.is_set(),
            rebalancing=bool(app.rebalancing),
        )
        READY.set(1 if verdict.ok else 0)
        return verdict

    async def health_page(web: Any, request: Any) -> Any:
        verdict = health.liveness()
        return web.json(verdict.as_json(), status=200 if verdict.ok else 503)

    async def ready_page(web: Any, request: Any) -> Any:
        verdict = readiness()
        return web.json(verdict.as_json(), status=200 if verdict.ok else 503)

    async def close_probe(*args: Any, **kwargs: Any) -> None:
        await metadata.close()

    # Call form, not decorator form: Faust's decorators are untyped (see pyproject's mypy overrides).
    app.timer(interval=interval)(tick)
    app.page("/health")(health_page)
    app.page("/ready")(ready_page)
    app.on_before_shutdown.connect(close_probe)


class _MetadataProbe:
    """A small Kafka client of its own: the broker answers metadata, and which topics exist.

    Separate from Faust's consumer so a check can never disturb consumption or its group.
    """

    def __init__(self, bootstrap: str, timeout: float) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._client: Any = None

    async def check(self, expected: set[str]) -> Tick:
        try:
            topics = await asyncio.wait_for(self._topics(), self.timeout)
        except Exception as exc:  # any failure means "the broker did not answer"
            await self.close()  # start over with a fresh client next tick
            return Tick(consumer_alive=True, broker_ok=False, error=type(exc).__name__)
        return Tick(consumer_alive=True, broker_ok=True, missing_topics=tuple(sorted(expected - topics)))

    async def _topics(self) -> set[str]:
        from aiokafka.client import AIOKafkaClient

        if self._client is None:
            client = AIOKafkaClient(bootstrap_servers=self.bootstrap, client_id="streams-health")
            try:
                await client.bootstrap()
            except BaseException:
                await client.close()
                raise
            self._client = client
        cluster = await self._client.fetch_all_metadata()
        return set(cluster.topics())

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception:  # closing a client whose broker vanished may fail; nothing to keep
                log.debug("closing the health client failed", exc_info=True)


def _expected_topics(ctx: StageContext) -> set[str]:
    # The topics this worker's stages declared (sources, sinks and table changelogs).
    declared = {ctx.topology[key].name for key in ctx._topics}
    return declared | {table.changelog_topic.get_topic_name() for table in ctx.tables.values()}


def _source_topics(app: Any) -> set[str]:
    out: set[str] = set()
    for agent in app.agents.values():
        out.update(getattr(agent.channel, "topics", ()) or ())
    return out


def _consumer_alive(app: Any) -> bool:
    consumer = app.consumer
    if app.crashed or consumer.crashed or consumer.should_stop or not consumer.started:
        return False
    thread = getattr(consumer, "_thread", None)  # the aiokafka consumer runs in its own thread
    return thread is None or (not thread.crashed and not thread.should_stop)


def _stages_started(app: Any) -> bool:
    agents = list(app.agents.values())
    return bool(agents) and all(a.started and not a.crashed and not a.should_stop for a in agents)


async def _update_lag(app: Any, gauge: LagGauge, limit_s: float) -> None:
    consumer = app.consumer
    sources = _source_topics(app)
    tps = [tp for tp in consumer.assignment() if tp.topic in sources]
    if not tps:
        gauge.update({}, sources)
        return
    highwaters = await asyncio.wait_for(consumer.highwaters(*tps), limit_s)
    # Faust's own record of what it committed (Kafka semantics: the next offset to read).
    committed_raw = consumer._committed_offset
    committed: dict[TopicPartition, int | None] = {(tp.topic, tp.partition): committed_raw.get(tp) for tp in tps}
    positions: dict[TopicPartition, int | None] = {}
    for tp in tps:
        if committed[(tp.topic, tp.partition)] is None:
            positions[(tp.topic, tp.partition)] = await asyncio.wait_for(consumer.position(tp), limit_s)
    high = {(tp.topic, tp.partition): int(offset) for tp, offset in highwaters.items() if offset is not None}
    gauge.update(compute_lag(high, committed, positions), sources)
