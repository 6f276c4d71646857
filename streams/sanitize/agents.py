"""Faust wiring of the sanitize stage: raw intake -> sanitized (+ vault, + dead letters).

Thin on purpose: decoding is ``streams.serde``, the PII rules are the engine in this
package, encryption is ``streams.vault``. Records come in ``take_events`` batches so the
NER model runs once per batch (spaCy's per-call overhead dominated one-record calls), then
each record is vaulted and sent in order inside ``processing(event)``: a Faust table write
goes to the changelog partition of the *current* event, so a user's data key always lands on
the user's own partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from streams import serde
from streams.errors import PermanentError
from streams.metrics import EVENTS_IN, EVENTS_OUT, REKEYED, STAGE_ERRORS, STAGE_SECONDS
from streams.models import HookEvent
from streams.stage import StageContext, processing

log = logging.getLogger(__name__)
STAGE = "sanitize"
BATCH = 64  # records per NER batch
BATCH_WITHIN = 0.02  # seconds a partial batch waits for more records (added latency at low rates)


def register(ctx: StageContext) -> None:
    from streams.protection.forget import FORGOTTEN_TABLE, is_forgotten
    from streams.sanitize.engine import Sanitizer
    from streams.vault import KeyStore, provider_from_settings, seal_findings

    app, settings = ctx.app, ctx.settings
    raw = ctx.topic("raw")
    # user_id -> wrapped data keys; its changelog is the compacted vault_keys topic, so a
    # replacement worker recovers the keys and a tombstone shreds a user everywhere.
    key_table = ctx.json_table("vault-keys", changelog="vault_keys", co_partitioned=["raw"])
    state: dict[str, Any] = {}
    loaded = asyncio.Event()

    @app.task
    async def _load() -> None:
        # Heavy models load when the worker starts, never at import time, and off the event
        # loop (presidio and spaCy take seconds) so Faust keeps serving while they load.
        engine = Sanitizer(settings.ner_model)
        await asyncio.to_thread(engine.warm_up)
        state["engine"] = engine
        ctx.keystore = KeyStore(provider_from_settings(settings), backend=key_table)
        loaded.set()

    @app.agent(raw, name="sanitize")
    async def sanitize(stream: Any) -> None:
        # Records that arrive before the engine is ready wait for it: never dead-letter them.
        await loaded.wait()
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN):
            started = time.perf_counter()
            await handle_batch(events)
            per_record = (time.perf_counter() - started) / len(events)
            histogram = STAGE_SECONDS.labels(stage=STAGE)
            for _ in events:  # one observation per record, as the histogram's other stages do
                histogram.observe(per_record)

    async def handle_batch(events: list[Any]) -> None:
        ready: list[tuple[Any, HookEvent]] = []
        for event in events:
            EVENTS_IN.labels(stage=STAGE).inc()
            hook: HookEvent | None = None
            try:
                hook = serde.decode(HookEvent, event.value, max_bytes=settings.max_event_bytes)
                if event.message.key != hook.user_id.encode():
                    # Every stage relies on user_id keys (ordering, co-partitioned tables):
                    # re-key once through the intake topic rather than process out of place.
                    await raw.send(key=hook.user_id.encode(), value=event.value)
                    REKEYED.inc()
                    continue
                ready.append((event, hook))
            except Exception as exc:  # one bad record must not stop the stage or skip silently
                with processing(event):  # the dead letter vaults the original: a table write
                    await failed(event, hook, exc)
        if not ready:
            return
        engine = state["engine"]
        try:
            results = engine.sanitize_events([hook for _, hook in ready])
        except Exception:  # find the record that breaks the batch: each is sanitized alone below
            log.warning("a batch failed to sanitize; retrying its records one by one", extra={"stage": STAGE})
            results = None
        for n, (event, hook) in enumerate(ready):
            with processing(event):
                try:
                    clean, findings = results[n] if results is not None else engine.sanitize_event(hook)
                    # A forgotten user's originals are never vaulted again (a new key would undo the shred).
                    if findings and not is_forgotten(ctx.tables.get(FORGOTTEN_TABLE), hook.user_id):
                        originals = [
                            {
                                "path": f.path,
                                "entity_type": f.entity_type,
                                "start": f.start,
                                "end": f.end,
                                "text": f.text,
                            }
                            for f in findings
                        ]
                        record = seal_findings(ctx.keystore, hook.user_id, hook.event_id, originals, at=hook.timestamp)
                        await ctx.send("vault", record, hook.user_id)
                        EVENTS_OUT.labels(stage=STAGE, topic="vault").inc()
                    await ctx.send("sanitized", clean, hook.user_id)
                    EVENTS_OUT.labels(stage=STAGE, topic="sanitized").inc()
                except Exception as exc:
                    await failed(event, hook, exc)

    async def failed(event: Any, hook: HookEvent | None, exc: Exception) -> None:
        message = event.message
        if not isinstance(exc, PermanentError):
            STAGE_ERRORS.labels(stage=STAGE).inc()
            log.exception("sanitize failed on a record", extra={"stage": STAGE, "offset": message.offset})
        await ctx.dead_letter(
            STAGE,
            exc,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            original=None if hook and is_forgotten(ctx.tables.get(FORGOTTEN_TABLE), hook.user_id) else event.value,
            event_id=hook.event_id if hook else None,
            user_id=hook.user_id if hook else None,
        )
