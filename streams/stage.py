"""What every stage's Faust wiring shares: topics by key, typed sends, dead letters."""

from __future__ import annotations

import contextlib
import logging
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from streams import serde
from streams.errors import ConfigError, StreamsError
from streams.metrics import DEAD_LETTERS
from streams.models import DeadLetter, Record
from streams.settings import Settings
from streams.topology import Topology

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Record)


@contextlib.contextmanager
def processing(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event while a batch is handled one event at a time.

    Faust sends a table write to the changelog partition of the current event, which only its
    one-at-a-time iteration sets (a context variable); ``take_events`` batches leave it unset.
    Every table write must happen inside this block for the event it belongs to."""
    from faust.streams import _current_event  # Faust has no public setter for it

    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


@dataclass
class StageContext:
    app: Any  # faust.App (untyped library)
    settings: Settings
    topology: Topology
    _topics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)  # for web views: name -> faust Table
    keystore: Any = None  # streams.vault KeyStore, set by the sanitize stage when it owns the keys

    def topic(self, key: str) -> Any:
        """The Faust topic for a topics.yaml key, raw bytes in and out (serde does the codec)."""
        if key not in self._topics:
            spec = self.topology[key]
            self._topics[key] = self.app.topic(
                spec.name,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=spec.partitions,
                retention=None,
                # topics.yaml is the source of truth: `streams topics apply` creates them.
                internal=False,
            )
        return self._topics[key]

    def json_table(self, name: str, *, changelog: str, co_partitioned: Sequence[str] = (), **options: Any) -> Any:
        """A Faust table of JSON values (plain dicts), recovered from its changelog.

        ``changelog`` is the topics.yaml key of its changelog topic: `streams topics apply`
        creates it before any worker starts (one Faust creates at start-up can be missing from
        the first assignment). Faust writes to the changelog partition of the current event and
        a worker reads the partitions it was assigned, so the topics whose events write or read
        the table (``co_partitioned``) must have as many partitions; checked here.
        Values must be plain JSON: Faust's typed values (value_type=dict) fail to recover.
        """
        import faust

        spec = self.topology[changelog]
        for source in co_partitioned:
            if self.topology[source].partitions != spec.partitions:
                raise ConfigError(
                    f"topics.yaml: {changelog} must have as many partitions as {source} "
                    f"(the {name} table is co-partitioned with it)"
                )
        schema: Any = faust.Schema(key_serializer="json", value_serializer="json")
        topic = self.app.topic(spec.name, schema=schema, partitions=spec.partitions, compacting=True, internal=False)
        table = self.app.Table(
            name, default=None, partitions=spec.partitions, schema=schema, changelog_topic=topic, **options
        )
        self.tables[name] = table
        return table

    def active_partitions(self, key: str) -> set[int]:
        """The partitions of a topics.yaml topic this worker consumes now (empty when none)."""
        name = self.topology[key].name
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == name}

    def owned_cost_states(self) -> dict[str, Any] | None:
        """The cost table's tenant states of the partitions this worker owns, or None when
        the cost stage does not run here. See ``streams.cost.chargeback.owned_states``."""
        from streams.cost.chargeback import owned_states

        states = self.tables.get("cost-state")
        if states is None:
            return None
        spec = self.topology["sanitized"]
        return owned_states(dict(states.items()), self.active_partitions("sanitized"), spec.partitions)

    async def send(self, key: str, record: Record, kafka_key: str) -> None:
        await self.topic(key).send(key=kafka_key.encode(), value=serde.encode_avro(record))

    async def decode_or_dead_letter(self, stage: str, record_type: type[R], event: Any) -> R | None:
        """The Faust event's value as ``record_type``, or None after dead-lettering it.

        For stages after sanitize: the value is already sanitized, so no original is kept
        (the dead letter names the topic, partition and offset where it stays readable).
        """
        try:
            return serde.decode(record_type, event.value)
        except StreamsError as exc:
            m = event.message
            await self.dead_letter(stage, exc, topic=m.topic, partition=m.partition, offset=m.offset, original=None)
            return None

    async def dead_letter(
        self,
        stage: str,
        exc: BaseException,
        *,
        topic: str,
        partition: int,
        offset: int,
        original: bytes | None,
        event_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Park a bad record with the reason; the original only encrypted (or not at all).

        Stages after sanitize pass ``original=None``: the record stays readable, sanitized,
        at the source topic/partition/offset the dead letter names.
        """
        key_id = nonce = ciphertext = None
        reason = str(exc) if isinstance(exc, StreamsError) else f"unexpected {type(exc).__name__}"
        if original is not None and self.keystore is not None:
            from streams.vault import UNATTRIBUTED, seal_dead_letter

            # Keys live in a table co-partitioned with the source topic: an unknown user's
            # key must belong to this partition too, or recovery could mix two of them.
            principal = user_id or f"{UNATTRIBUTED}.p{partition}"
            try:
                key_id, nonce, ciphertext = seal_dead_letter(self.keystore, principal, original)
                user_id = principal  # open_dead_letter reads the principal from this field
            except StreamsError as seal_error:
                # The vault itself is failing (e.g. a wrong master key). Dead-letter anyway,
                # without the original (never in the clear), rather than crash-loop the stage.
                reason = f"{reason}; original not kept: {type(seal_error).__name__}"
        record = DeadLetter(
            dlq_id=str(uuid.uuid4()),
            stage=stage,
            reason=reason[:2000],
            error_type=type(exc).__name__,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            received_at=datetime.now(UTC),
            event_id=event_id,
            user_id=user_id,
            original_key_id=key_id,
            original_nonce=nonce,
            original_ciphertext=ciphertext,
        )
        DEAD_LETTERS.labels(stage=stage, error_type=type(exc).__name__).inc()
        log.warning(
            "dead-lettered a record: %s",
            reason[:300],
            extra={"stage": stage, "topic": topic, "partition": partition, "offset": offset},
        )
        await self.send("dlq", record, user_id or "_unattributed")
