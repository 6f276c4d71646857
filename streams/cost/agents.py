"""Faust wiring of the cost stage: sanitized events -> per-tenant spend table, cost ledger,
budget alerts and kills.

Order matters for crashes: the ledger, alert and kill records are sent and *acknowledged*
before the tenant's state is written. A crash before the state write makes the event
count again on restart, which re-emits the same records with the same deterministic ids
(at-least-once; consumers dedupe by id); a crash after it finds the event id in the state
and emits nothing. A kill is never lost.

The tenant's event ids and runs live in keys of their own in the same table, written just
before the state (``streams.cost.tables``): each event reads and writes a bounded state and
a few small keys, however many events the tenant has.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from streams import serde
from streams.errors import PermanentError
from streams.metrics import EVENTS_IN, EVENTS_OUT, STAGE_ERRORS
from streams.models import HookEvent, Record
from streams.stage import StageContext

log = logging.getLogger(__name__)
STAGE = "cost"
BUDGET_RELOAD_SECONDS = 5.0


def register(ctx: StageContext) -> None:
    from streams.cost.budgets import BudgetBook
    from streams.cost.spend import Status
    from streams.cost.tables import TenantTables

    app, settings = ctx.app, ctx.settings
    book = BudgetBook(settings.budgets_file)  # an invalid file stops the worker at start-up
    # user_id -> the tenant's spend state (JSON, money in integer nano-USD), and the tenant's
    # event ids and runs under keys starting with NUL (streams.cost.tables).
    states = ctx.json_table("cost-state", changelog="cost_state", co_partitioned=["sanitized"])

    async def emit(topic_key: str, record: Record, key: str) -> None:
        ack = await ctx.topic(topic_key).send(key=key.encode(), value=serde.encode_avro(record))
        await ack  # acknowledged by the broker before the state moves on
        EVENTS_OUT.labels(stage=STAGE, topic=topic_key).inc()

    for topic_key in ("ledger", "budget_alerts", "budget_kills"):
        EVENTS_OUT.labels(stage=STAGE, topic=topic_key)  # at 0 from the start, so increase() sees the first one

    @app.agent(ctx.topic("sanitized"), name="cost")
    async def cost(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            EVENTS_IN.labels(stage=STAGE).inc()
            hook = await ctx.decode_or_dead_letter(STAGE, HookEvent, event)
            if hook is None:
                continue
            try:
                await count(hook, m)
            except Exception as exc:  # an escaping error would restart the agent and skip the offset
                STAGE_ERRORS.labels(stage=STAGE).inc()
                log.exception("cost accounting failed on a record", extra={"stage": STAGE, "offset": m.offset})
                await ctx.dead_letter(
                    STAGE, exc, topic=m.topic, partition=m.partition, offset=m.offset, original=None,
                    event_id=hook.event_id, user_id=hook.user_id,
                )  # fmt: skip

    async def count(hook: HookEvent, m: Any) -> None:
        # The record's own timestamp, not the wall clock: a replay then classifies every
        # event (on time, late, future) exactly as this did.
        now = datetime.fromtimestamp(m.timestamp, UTC)  # Faust gives seconds (aiokafka gives ms)
        # A state stored by an earlier version (ids inside) is first moved into keys: no total changes.
        tenant = TenantTables.open(states, hook.user_id)
        outcome = tenant.ledger.apply(hook, book.config, now)
        if outcome.status in (Status.DUPLICATE, Status.IGNORED):
            return
        if outcome.status is Status.REJECTED and outcome.rejection is not None:
            await ctx.dead_letter(
                STAGE, PermanentError(outcome.rejection.reason), topic=m.topic, partition=m.partition,
                offset=m.offset, original=None, event_id=hook.event_id, user_id=hook.user_id,
            )  # fmt: skip
        if outcome.ledger is not None:
            await emit("ledger", outcome.ledger, hook.user_id)
        for alert in outcome.alerts:
            await emit("budget_alerts", alert, hook.user_id)
        for kill in outcome.kills:
            await emit("budget_kills", kill, hook.user_id)
            log.warning("budget kill emitted", extra={"stage": STAGE, "tenant": hook.user_id})
        tenant.commit()  # the event's keys, then the state: after every record above is acknowledged

    @app.timer(interval=BUDGET_RELOAD_SECONDS)
    async def reload_budgets() -> None:
        result = book.reload_if_changed()
        if result.error is not None:
            log.error("budgets file rejected, previous budgets stay in force: %s", result.error)
        elif result.changed:
            log.info("budgets reloaded from %s", settings.budgets_file)
