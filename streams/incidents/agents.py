"""Faust wiring of the incidents stage: detect over windowed state, emit incidents, escalate.

1. ``signals``: sanitized events (keyed by tenant, many partitions) -> the detector
   signal topic, stripped of payload and free text, on ONE partition.
2. ``detect``: counts each signal into bucketed rings (a plain Table, not Faust's windowed
   tables); a timer ticks every ``tick_seconds``, evaluates the detectors and lets the
   tracker emit triggered / resolved incidents. With one partition, one worker owns all
   detector state, and timer writes (which have no current event) go to partition 0,
   where the changelog recovery expects them.
3. ``escalate``: incidents, budget alerts and budget kills -> Slack / PagerDuty / e-mail.
   Delivery is awaited inside the agent, so the offset moves only after the delivery
   ledger (a table co-partitioned with the source topic) recorded the outcome: a restart
   re-reads at most the record in flight and the ledger stops a second page.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

from streams import serde
from streams.errors import ConfigError
from streams.metrics import EVENTS_IN, EVENTS_OUT, STAGE_ERRORS
from streams.models import BudgetAlert, BudgetKill, HookEvent, Incident
from streams.stage import StageContext

log = logging.getLogger(__name__)
STAGE = "incidents"
DETECT_BATCH = 500  # signals per batch; ring writes are flushed once per batch
DETECT_WITHIN = 0.05  # seconds a partial batch waits (well under a detector tick)


def _signal(event: HookEvent) -> HookEvent:
    """Only what a detector reads: no payload, no free text (and so no PII of any kind)."""
    return event.model_copy(update={"payload": {}, "error_message": None})


def register(ctx: StageContext) -> None:
    from streams.incidents.adapters import build_adapters
    from streams.incidents.config import load_detectors_config
    from streams.incidents.detectors import Detectors
    from streams.incidents.dispatch import Dispatcher
    from streams.incidents.escalation import EscalationSecrets, load_escalations
    from streams.incidents.tracker import IncidentTracker
    from streams.incidents.writeback import WriteBack

    app, settings = ctx.app, ctx.settings
    # Broken configs stop the worker at start-up, with the file, line and reason.
    detectors_config = load_detectors_config(settings.detectors_file)
    escalations = load_escalations(settings.escalations_file)
    secrets = EscalationSecrets.from_env(os.environ)
    try:
        secrets.check(escalations)
    except ConfigError as exc:
        # A demo without Slack still detects; each skipped delivery is recorded and counted.
        log.warning("escalation not fully configured: %s", exc)
    detectors = Detectors(detectors_config)
    tracker = IncidentTracker(detectors_config.tracker, escalations.severities())

    signals_spec = ctx.topology["incident_signals"]
    if signals_spec.partitions != 1:
        raise ConfigError("topics.yaml: incident_signals must have exactly one partition")
    signals_topic = ctx.topic("incident_signals")
    # One partition, written with the partitioner: the tick writes them too, outside any event.
    rings = ctx.json_table("incident-rings", changelog="incident_rings", use_partitioner=True)
    open_incidents = ctx.json_table("incident-tracker", changelog="incident_tracker", use_partitioner=True)
    ledger = ctx.json_table(
        "delivery-ledger", changelog="delivery_ledger", co_partitioned=["incidents", "budget_alerts", "budget_kills"]
    )
    dispatcher = Dispatcher(escalations, build_adapters(secrets, escalations.delivery), ledger)

    @app.agent(ctx.topic("sanitized"), name="incident-signals")
    async def signals(stream: Any) -> None:
        async for event in stream.events():
            hook = await ctx.decode_or_dead_letter(STAGE, HookEvent, event)
            if hook is None:
                continue
            await signals_topic.send(key=b"signals", value=serde.encode_avro(_signal(hook)))

    @app.agent(signals_topic, name="incident-detect")
    async def detect(stream: Any) -> None:
        # The rings table is written with its partitioner (one partition), so a batch needs
        # no current event; the tick runs between batches and sees them flushed.
        async for values in stream.take(DETECT_BATCH, within=DETECT_WITHIN):
            batch = WriteBack(rings)
            now = datetime.now(UTC)
            for value in values:
                EVENTS_IN.labels(stage=STAGE).inc()
                try:
                    event = serde.decode(HookEvent, value)
                    skips = detectors.observe(batch, event, now=now)
                    for skip in skips:
                        dispatcher.metrics.skipped.labels(skip.detector, skip.reason).inc()
                except Exception:  # a detector bug must not stop detection of everything else
                    STAGE_ERRORS.labels(stage=STAGE).inc()
                    log.exception("detector failed on a signal", extra={"stage": STAGE})
            batch.flush()

    EVENTS_OUT.labels(stage=STAGE, topic="incidents")  # at 0 from the start, so increase() sees the first one

    @app.timer(interval=float(detectors_config.tick_seconds))
    async def tick() -> None:
        # Every worker runs the timer; only the owner of the signal partition holds the state.
        if 0 not in ctx.active_partitions("incident_signals"):
            return
        now = datetime.now(UTC)
        for incident in tracker.update(open_incidents, detectors.tick(rings, now), now):
            await ctx.send("incidents", incident, incident.fingerprint)
            EVENTS_OUT.labels(stage=STAGE, topic="incidents").inc()
            dispatcher.metrics.incidents.labels(incident.incident_type, incident.severity, incident.status).inc()

    async def _escalate(notification: Any) -> None:
        if notification is None:
            return
        try:
            await dispatcher.deliver(notification)
        except Exception:  # delivery problems are recorded per adapter; never stop the stream
            STAGE_ERRORS.labels(stage="escalate").inc()
            log.exception("escalation failed", extra={"stage": "escalate"})

    def escalator(topic_key: str, record_type: Any, notification: Any) -> None:
        @app.agent(ctx.topic(topic_key), name=f"escalate-{topic_key}")
        async def escalate(stream: Any) -> None:
            async for event in stream.events():
                record = await ctx.decode_or_dead_letter("escalate", record_type, event)
                if record is not None:
                    await _escalate(notification(record))

    escalator("incidents", Incident, dispatcher.for_incident)
    escalator("budget_alerts", BudgetAlert, dispatcher.for_budget)
    escalator("budget_kills", BudgetKill, dispatcher.for_budget)
