"""Faust wiring of data protection.

``register_forget`` runs inside the sanitize stage: its agent consumes ``deletion_requests``
(co-partitioned with ``raw``), so it writes the vault-keys and forgotten-users tables from an
event of the user's own partition. Its timers (retention, key rotation) have no current
partition, so they write nothing: they publish one command per user, keyed like the user's
events, and the agent does the work when the command comes back on the right partition.

``register_audit`` is the ``audit`` stage: sanitized partition ``p`` -> audit partition ``p``,
chain head of ``p`` in a table co-partitioned with ``sanitized``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from streams import serde
from streams.errors import PermanentError, StreamsError
from streams.metrics import EVENTS_IN, EVENTS_OUT, STAGE_ERRORS
from streams.models import DeletionRecord, HookEvent
from streams.stage import StageContext

log = logging.getLogger(__name__)
FORGET_STAGE = "protection"
AUDIT_STAGE = "audit"
AUDIT_CHAIN_TABLE = "audit-chain"
# Compacted topics of topics.yaml and what forget does with each. A new compacted topic
# must be added here on purpose: the worker refuses to start until someone decided.
COMPACTED_HANDLED = {
    "vault_keys": "shredded through the vault-keys table (tombstone)",
    "forgotten_users": "the suppression list itself: user id and deletion id only, kept on purpose",
    "cost_state": "tenant spend, run and event ids, no personal data: a financial record kept for billing",
    "audit_chain": "chain heads per partition (hash and offset): nothing about any user",
    "incident_rings": "detector counters by tenant, error code and model: counts, no payloads",
    "incident_tracker": "open incidents: fingerprints, counts and tenant ids, no payloads",
    "delivery_ledger": "which notifications were delivered: dedup keys and results, no payloads",
}
RETRIES = 3  # transient failures (metadata not settled, broker hiccup) before a dead letter


def _unattributed_partition(principal: str) -> int | None:
    """``_unattributed.p3`` -> 3: such keys live on the partition named, not the hashed one."""
    from streams.vault import UNATTRIBUTED

    prefix = f"{UNATTRIBUTED}.p"
    if principal.startswith(prefix) and principal[len(prefix) :].isdigit():
        return int(principal[len(prefix) :])
    return None


def register_forget(ctx: StageContext) -> None:
    from streams.protection.forget import (
        FORGOTTEN_TABLE,
        OP_FORGET,
        OP_RETENTION,
        OP_REWRAP,
        Command,
        decode_command,
        encode_command,
        forget_user,
    )
    from streams.protection.retention import load_policy, rewrap_user
    from streams.vault import MasterKeyError, RewrapError

    app, settings, topology = ctx.app, ctx.settings, ctx.topology
    raw_spec, requests_spec = topology["raw"], topology["deletion_requests"]
    if requests_spec.partitions != raw_spec.partitions:
        raise PermanentError("topics.yaml: deletion_requests must have as many partitions as raw (co-partitioned)")
    compacted = [key for key, spec in topology.topics.items() if "compact" in spec.cleanup_policy]
    unhandled = [key for key in compacted if key not in COMPACTED_HANDLED]
    if unhandled:
        raise PermanentError(f"topics.yaml: compacted topics {unhandled} not handled by forget; decide and add them")
    policy = load_policy(settings.retention_file)  # an invalid policy stops the worker at start-up
    keys_topic = topology["vault_keys"].name
    requests = ctx.topic("deletion_requests")
    # user_id -> {"forgotten_at", "deletion_id"}: the sanitize stage vaults nothing new for them.
    forgotten = ctx.json_table(
        FORGOTTEN_TABLE, changelog="forgotten_users", co_partitioned=["deletion_requests", "raw"]
    )

    async def keystore() -> Any:
        # The sanitize stage builds it once its models are loaded; it sets no event to wait on.
        while ctx.keystore is None:  # noqa: ASYNC110  # polling a field another module sets
            await asyncio.sleep(0.2)
        return ctx.keystore

    async def report(record: DeletionRecord) -> None:
        ack = await ctx.topic("deletions").send(key=record.user_id.encode(), value=serde.encode_avro(record))
        await ack  # the proof is on the broker before the request's offset is committed
        EVENTS_OUT.labels(stage=FORGET_STAGE, topic="deletions").inc()

    async def handle(command: Command) -> None:
        store = await keystore()
        if command.op == OP_FORGET:
            record = forget_user(store, forgotten, command, keys_topic=keys_topic)
            await report(record)
            log.info(
                "forget request done: %d item(s) removed, verified=%s",
                len(record.removed),
                record.verified,
                extra={"stage": FORGET_STAGE, "tenant": command.user_id, "event_id": record.deletion_id},
            )
        elif command.op == OP_RETENTION and command.cutoff is not None:
            destroyed = store.shred_older_than(command.user_id, command.cutoff)
            if destroyed:
                again = store.shred_older_than(command.user_id, command.cutoff)  # idempotent: proves none left
                await report(
                    DeletionRecord(
                        deletion_id=f"ret-{command.request_id}",
                        user_id=command.user_id,
                        requested_by=command.requested_by,
                        requested_at=command.requested_at,
                        completed_at=datetime.now(UTC),
                        removed=[f"{keys_topic}: {destroyed} data key(s) ended by {command.cutoff.isoformat()}"],
                        verified=again == 0,
                        detail=f"retention policy: {policy.days_for(command.user_id)} days",
                    )
                )
        elif command.op == OP_REWRAP:
            count = rewrap_user(store.provider, store.backend, command.user_id)  # the sanitize keystore's provider
            if count:
                log.info("re-wrapped %d data key(s)", count, extra={"stage": FORGET_STAGE, "tenant": command.user_id})

    @app.agent(requests, name="protection")
    async def protection(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            EVENTS_IN.labels(stage=FORGET_STAGE).inc()
            user_id: str | None = None
            try:
                command = decode_command(event.value)
                user_id = command.user_id
                if _unattributed_partition(user_id) not in (None, m.partition) or (
                    _unattributed_partition(user_id) is None and m.key != user_id.encode()
                ):
                    # On another partition the table writes would land in the wrong changelog partition.
                    raise PermanentError("deletion request is not on its user's partition (key must be the user id)")
                for attempt in range(1, RETRIES + 1):
                    try:
                        await handle(command)  # every op is safe to repeat (forget marks before it shreds)
                        break
                    except (StreamsError, RewrapError):
                        raise
                    except Exception:
                        if attempt == RETRIES:
                            raise
                        log.warning("protection command failed, retrying", extra={"stage": FORGET_STAGE})
                        await asyncio.sleep(attempt)
            except Exception as exc:  # an escaping error would restart the agent and skip the offset
                if not isinstance(exc, PermanentError | RewrapError):
                    STAGE_ERRORS.labels(stage=FORGET_STAGE).inc()
                    log.exception("protection command failed", extra={"stage": FORGET_STAGE, "offset": m.offset})
                await ctx.dead_letter(
                    FORGET_STAGE, exc, topic=m.topic, partition=m.partition, offset=m.offset, original=None,
                    user_id=user_id,
                )  # fmt: skip

    async def publish(command: Command) -> None:
        partition = _unattributed_partition(command.user_id)
        await requests.send(key=command.user_id.encode(), value=encode_command(command), partition=partition)

    def ready() -> Any:
        if ctx.keystore is None or not app.tables.recovery.completed.is_set():
            return None  # before recovery the table is partial; the next tick catches up
        return ctx.keystore

    @app.timer(interval=settings.retention_interval)
    async def retention_tick() -> None:
        store = ready()
        if store is None:
            return
        try:
            current = load_policy(settings.retention_file)  # picked up without a restart
        except StreamsError as exc:
            log.error("retention file rejected, the previous policy stays in force: %s", exc)
            current = policy
        now = datetime.now(UTC)
        users = list(store.users())
        for user in users:
            cutoff = current.cutoff_for(user, now)
            await publish(Command(OP_RETENTION, user, uuid.uuid4().hex, "retention-policy", now, cutoff))
        log.info("retention: commands sent", extra={"stage": FORGET_STAGE, "count": len(users)})

    @app.timer(interval=settings.rotation_interval)
    async def rotation_tick() -> None:
        store = ready()
        if store is None:
            return
        provider = store.provider  # the one the sanitize stage wraps new keys with
        try:
            provider.refresh()  # file and secrets-backend providers re-read in place
            current = provider.current().key_id
        except MasterKeyError as exc:
            log.error("master keyring refresh failed, cached keys stay in use: %s", type(exc).__name__)
            return
        stale = [
            user
            for user, envelope in store.backend.items()
            if any(isinstance(e, dict) and e.get("master_key_id") != current for e in envelope.get("keys", {}).values())
        ]
        for user in stale:
            now = datetime.now(UTC)
            await publish(Command(OP_REWRAP, user, uuid.uuid4().hex, "key-rotation", now))
        if stale:
            log.info("key rotation: re-wrap requested", extra={"stage": FORGET_STAGE, "count": len(stale)})


def register_audit(ctx: StageContext) -> None:
    from streams.protection.audit import AUDITED, GENESIS, audit_record

    app, topology = ctx.app, ctx.topology
    sanitized_spec = topology["sanitized"]
    if topology["audit"].partitions != sanitized_spec.partitions:
        raise PermanentError("topics.yaml: audit must have as many partitions as sanitized (one chain per partition)")
    # str(partition) -> {"head": hash, "offset": sanitized offset}; written from partition p only.
    heads = ctx.json_table(AUDIT_CHAIN_TABLE, changelog="audit_chain", co_partitioned=["sanitized"])
    audit_topic = ctx.topic("audit")

    @app.agent(ctx.topic("sanitized"), name="audit")
    async def audit(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            EVENTS_IN.labels(stage=AUDIT_STAGE).inc()
            hook = await ctx.decode_or_dead_letter(AUDIT_STAGE, HookEvent, event)
            if hook is None:
                continue
            if hook.event_type not in AUDITED:
                continue
            try:
                key = str(m.partition)
                head = heads.get(key)
                record = audit_record(hook, head["head"] if head else GENESIS)
                if record is None:
                    continue
                ack = await audit_topic.send(
                    key=hook.user_id.encode(), value=serde.encode_avro(record), partition=m.partition
                )
                await ack  # on the broker before the head moves: a crash re-sends, never skips
                heads[key] = {"head": record.record_hash, "offset": m.offset}
                EVENTS_OUT.labels(stage=AUDIT_STAGE, topic="audit").inc()
            except Exception as exc:  # an escaping error would restart the agent and skip the offset
                STAGE_ERRORS.labels(stage=AUDIT_STAGE).inc()
                log.exception("audit failed on a record", extra={"stage": AUDIT_STAGE, "offset": m.offset})
                await ctx.dead_letter(
                    AUDIT_STAGE, exc, topic=m.topic, partition=m.partition, offset=m.offset, original=None,
                    event_id=hook.event_id, user_id=hook.user_id,
                )  # fmt: skip
