"""The audit trail: one :class:`AuditRecord` per sanitized tool call and memory access,
hash-chained per partition of the ``audit`` topic.

``record_hash = sha256(prev_hash + canonical(record))`` where the canonical form is the
record's JSON without the two hash fields, keys sorted, no spaces; the first record of a
partition chains to :data:`GENESIS`. The audit stage writes audit partition ``p`` only from
sanitized partition ``p``, and keeps the chain head of ``p`` in a table whose changelog
partition is ``p`` too, so one worker owns each chain and a replacement recovers its head.

At-least-once: after a crash the stage may process an event again from a stale head and
append an exact copy of a record already written (same id, same prev_hash, same hash).
:func:`verify_chain` skips such a copy; anything else that does not link is a broken chain.
Resources come from the *sanitized* payload: PII in them is already replaced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.models import AuditRecord, EventType, HookEvent

GENESIS = "0" * 64
AUDITED = (EventType.TOOL_CALL, EventType.MEMORY_ACCESS)
_MAX_RESOURCE = 512


def canonical(record: AuditRecord) -> bytes:
    fields = record.model_dump(mode="json", exclude={"prev_hash", "record_hash"})
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def link_hash(prev_hash: str, record: AuditRecord) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(record)).hexdigest()


def _text(value: object) -> str | None:
    return value[:_MAX_RESOURCE] if isinstance(value, str) and value else None


def audit_record(hook: HookEvent, prev_hash: str) -> AuditRecord | None:
    """The audit record of a sanitized event chained after ``prev_hash``; None if not audited."""
    payload = hook.payload
    if hook.event_type == EventType.TOOL_CALL:
        resource = _text(payload.get("tool")) or _text(payload.get("tool_name")) or _text(payload.get("name"))
        action = "tool_call"
    elif hook.event_type == EventType.MEMORY_ACCESS:
        resource = _text(payload.get("key")) or _text(payload.get("memory_key")) or _text(payload.get("namespace"))
        op = _text(payload.get("op")) or _text(payload.get("action"))
        action = f"memory_{op}"[:64] if op else "memory_access"
    else:
        return None
    record = AuditRecord(
        audit_id=f"aud-{hook.event_id}",  # deterministic: a reprocessed event gives an identical copy
        event_id=hook.event_id,
        tenant=hook.user_id,
        actor=hook.source,
        action=action,
        resource=resource or "unknown",
        timestamp=hook.timestamp,
        prev_hash=prev_hash,
        record_hash="",
    )
    return record.model_copy(update={"record_hash": link_hash(prev_hash, record)})


@dataclass
class ChainReport:
    partition: int
    records: int = 0
    duplicates: int = 0
    head: str = GENESIS
    broken_offset: int | None = None
    broken_reason: str | None = None
    seen: set[str] = field(default_factory=set, repr=False)

    @property
    def ok(self) -> bool:
        return self.broken_offset is None


def verify_chain(partition: int, records: Iterable[tuple[int, AuditRecord]]) -> ChainReport:
    """Check one partition's chain in offset order; stops at the first broken link."""
    report = ChainReport(partition)
    for offset, record in records:
        if link_hash(record.prev_hash, record) != record.record_hash:
            report.broken_offset, report.broken_reason = offset, "record_hash does not match the record (altered)"
            return report
        if record.record_hash in report.seen:
            report.duplicates += 1  # an exact re-send after a crash, see the module docstring
            continue
        if record.prev_hash != report.head:
            report.broken_offset = offset
            report.broken_reason = "prev_hash is not the hash of the previous record (inserted, removed or reordered)"
            return report
        report.seen.add(record.record_hash)
        report.head = record.record_hash
        report.records += 1
    return report
