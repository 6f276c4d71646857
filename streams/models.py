"""Typed records that cross a topic. Each mirrors one Avro schema in ``schemas/``.

``tests/unit/test_contract.py`` fails when a model and its schema drift apart. Money is
``Decimal`` here and Avro ``decimal(18, 9)`` on the wire: never a float.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

MONEY_SCALE = 9
MONEY_MAX = Decimal("999999999.999999999")
_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


def _to_money(value: Any) -> Decimal:
    if isinstance(value, bool | float):
        # A float has already lost the exact amount; make the caller send a string.
        raise ValueError("must be a decimal string or integer, not a float (floats are inexact)")
    if isinstance(value, int):
        value = Decimal(value)
    elif isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("is not a decimal number") from None
    if not isinstance(value, Decimal):
        raise ValueError("must be a decimal string")
    if not value.is_finite():
        raise ValueError("must be a finite number")
    if value < 0:
        raise ValueError("must not be negative")
    if value > MONEY_MAX:
        raise ValueError(f"exceeds the maximum of {MONEY_MAX}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_SCALE and value != value.quantize(_QUANTUM):
        raise ValueError(f"has more than {MONEY_SCALE} decimal places")
    return value.quantize(_QUANTUM)


def _to_utc(value: Any) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("is not an ISO 8601 timestamp") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("must be an ISO 8601 string with a time zone, not a number")
    if not isinstance(value, datetime):
        raise ValueError("must be an ISO 8601 timestamp")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone (for example 2026-11-27T20:01:51Z)")
    return value.astimezone(UTC)


def format_money(value: Decimal) -> str:
    """Exact decimal string, fixed point, without trailing zeros past the micro-dollar."""
    text = format(value.quantize(_QUANTUM), "f")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) < 6:
        frac = frac.ljust(6, "0")
    return f"{whole}.{frac}"


def format_ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


Money = Annotated[Decimal, BeforeValidator(_to_money), PlainSerializer(format_money, when_used="json")]
Timestamp = Annotated[datetime, BeforeValidator(_to_utc), PlainSerializer(format_ts, when_used="json")]
Ident = Annotated[str, Field(min_length=1, max_length=256)]


class Record(BaseModel):
    """Base of every wire record: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")
    avro_name: ClassVar[str]

    def to_avro(self) -> dict[str, Any]:
        """The value fastavro writes: Decimal and datetime map to their logical types."""
        return self.model_dump(mode="python")

    @classmethod
    def from_avro(cls, data: dict[str, Any]) -> Any:
        return cls.model_validate(data)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class EventType(StrEnum):
    PRE_AGENT_CALL = "pre_agent_call"
    POST_AGENT_CALL = "post_agent_call"
    TOOL_CALL = "tool_call"
    MEMORY_ACCESS = "memory_access"
    AGENT_ERROR = "agent_error"
    SWARM_TICK_COMPLETE = "swarm_tick_complete"


_MAX_DEPTH = 64


def _plain_json(value: Any, depth: int) -> Any:
    """Payload values as plain JSON types. Payload numbers are not money: a JSON decimal
    becomes an int or a float (money travels in ``cost_usd``, never in the payload)."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"is nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("has a non-string key")
            out[key] = _plain_json(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_plain_json(item, depth + 1) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "E" not in str(value) else float(value)
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise ValueError(f"holds a {type(value).__name__}, which is not a JSON type")


class HookEvent(Record):
    """What an agent daemon publishes for one hook. ``payload`` is free-form JSON."""

    avro_name: ClassVar[str] = "streams.HookEvent"
    # The fields whose string values are free text and may hold PII.
    FREE_TEXT_FIELDS: ClassVar[tuple[str, ...]] = ("payload", "error_message")

    event_id: Ident
    event_type: EventType
    user_id: Ident
    run_id: Ident | None = None
    timestamp: Timestamp
    source: Annotated[str, Field(min_length=1, max_length=512)]
    model: Annotated[str, Field(max_length=256)] | None = None
    cost_usd: Money | None = None
    latency_ms: Annotated[int, Field(ge=0, le=2**53)] | None = None
    input_tokens: Annotated[int, Field(ge=0, le=2**53)] | None = None
    output_tokens: Annotated[int, Field(ge=0, le=2**53)] | None = None
    error_code: Annotated[str, Field(max_length=256)] | None = None
    error_message: str | None = None
    region: Annotated[str, Field(max_length=128)] | None = None
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("latency_ms", "input_tokens", "output_tokens", mode="before")
    @classmethod
    def _no_float_counts(cls, value: Any) -> Any:
        if isinstance(value, float | Decimal) and value != int(value):
            raise ValueError("must be a whole number")
        return int(value) if isinstance(value, float | Decimal) else value

    @field_validator("payload", mode="before")
    @classmethod
    def _json_payload(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        return _plain_json(value, 0)

    def to_avro(self) -> dict[str, Any]:
        data = super().to_avro()
        data["event_type"] = self.event_type.value
        data["payload"] = json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False, default=str)
        return data

    @classmethod
    def from_avro(cls, data: dict[str, Any]) -> HookEvent:
        data = dict(data)
        data["payload"] = json.loads(data.get("payload") or "{}", parse_float=Decimal)
        return cls.model_validate(data)


class DeadLetter(Record):
    """A record a stage could not process, with the reason. The original is only kept encrypted."""

    avro_name: ClassVar[str] = "streams.DeadLetter"

    dlq_id: Ident
    stage: Ident
    reason: str
    error_type: Ident
    source_topic: Ident
    source_partition: int
    source_offset: int
    received_at: Timestamp
    event_id: Ident | None = None
    user_id: Ident | None = None
    # AES-GCM ciphertext of the original bytes under the user's (or the unattributed) data key.
    original_key_id: Ident | None = None
    original_nonce: bytes | None = None
    original_ciphertext: bytes | None = None


class VaultRecord(Record):
    """The originals a sanitizer replaced in one event, encrypted under the user's data key."""

    avro_name: ClassVar[str] = "streams.VaultRecord"

    event_id: Ident
    user_id: Ident
    key_id: Ident
    algorithm: Literal["AES-256-GCM"] = "AES-256-GCM"
    nonce: bytes
    ciphertext: bytes
    entity_count: int = Field(ge=0)
    created_at: Timestamp


class LedgerKind(StrEnum):
    CHARGE = "charge"
    ADJUSTMENT = "adjustment"


class CostLedgerEntry(Record):
    """One counted cost, append-only. ``adjustment`` marks an event later than the grace."""

    avro_name: ClassVar[str] = "streams.CostLedgerEntry"

    event_id: Ident
    user_id: Ident
    run_id: Ident | None = None
    model: str | None = None
    cost_usd: Money
    timestamp: Timestamp
    counted_at: Timestamp
    kind: LedgerKind = LedgerKind.CHARGE
    period_day: str
    period_month: str

    def to_avro(self) -> dict[str, Any]:
        data = super().to_avro()
        data["kind"] = self.kind.value
        return data


class BudgetPeriod(StrEnum):
    MONTHLY = "monthly"
    DAILY = "daily"
    PER_RUN = "per_run"


class BudgetAlert(Record):
    """Spend crossed a threshold of a budget. Once per (tenant, period, threshold)."""

    avro_name: ClassVar[str] = "streams.BudgetAlert"

    alert_id: Ident
    user_id: Ident
    run_id: Ident | None = None
    period: BudgetPeriod
    period_key: Ident
    threshold_pct: int = Field(ge=1, le=1000)
    limit_usd: Money
    spent_usd: Money
    hard_kill: bool
    event_id: Ident
    timestamp: Timestamp

    def to_avro(self) -> dict[str, Any]:
        data = super().to_avro()
        data["period"] = self.period.value
        return data


class BudgetKill(Record):
    """A hard budget is exhausted: the daemon must stop this run (or all of the tenant's runs)."""

    avro_name: ClassVar[str] = "streams.BudgetKill"

    kill_id: Ident
    user_id: Ident
    run_id: Ident | None = None
    period: BudgetPeriod
    period_key: Ident
    limit_usd: Money
    spent_usd: Money
    reason: str
    event_ids: list[str]
    timestamp: Timestamp

    def to_avro(self) -> dict[str, Any]:
        data = super().to_avro()
        data["period"] = self.period.value
        return data


class IncidentEvidence(Record):
    avro_name: ClassVar[str] = "streams.IncidentEvidence"

    tenant: str | None = None
    model: str | None = None
    region: str | None = None
    error_code: str | None = None
    observed: str
    threshold: str


class Incident(Record):
    """One problem, deduplicated by fingerprint: triggered while it holds, then resolved."""

    avro_name: ClassVar[str] = "streams.Incident"

    fingerprint: Ident
    incident_type: Ident
    severity: Literal["low", "medium", "high", "critical"]
    status: Literal["triggered", "resolved"]
    first_seen: Timestamp
    last_seen: Timestamp
    count: int = Field(ge=0)
    summary: str
    evidence: IncidentEvidence
    runbook: str
    emitted_at: Timestamp


class AuditRecord(Record):
    """Who touched what. ``record_hash`` chains to the previous record of the partition."""

    avro_name: ClassVar[str] = "streams.AuditRecord"

    audit_id: Ident
    event_id: Ident
    tenant: Ident
    actor: str
    action: str
    resource: str
    timestamp: Timestamp
    prev_hash: str
    record_hash: str


class DeletionRecord(Record):
    """Proof of a right-to-delete request: who asked, what was removed, and whether it verified."""

    avro_name: ClassVar[str] = "streams.DeletionRecord"

    deletion_id: Ident
    user_id: Ident
    requested_by: str
    requested_at: Timestamp
    completed_at: Timestamp
    removed: list[str]
    verified: bool
    detail: str


RECORD_TYPES: tuple[type[Record], ...] = (
    HookEvent,
    DeadLetter,
    VaultRecord,
    CostLedgerEntry,
    BudgetAlert,
    BudgetKill,
    Incident,
    AuditRecord,
    DeletionRecord,
)
