"""Chargeback: per-tenant totals of a month or a day, from live state, ledger or replay.

A period is tenant-local (``"2026-11"`` is November in each tenant's own time zone, the
same keys as ``CostLedgerEntry.period_month``). Charges and adjustments (costs that
arrived after the period's grace) are reported apart; ``total`` is their sum, which is the
exact sum of every valid cost with an event time in the period.

Three sources give the same numbers for the same events:

- ``report_from_states``: the live per-tenant states (the Faust table's values; its other
  entries, a tenant's ids and runs, are skipped).
- ``report_from_ledger``: the ``cost.ledger`` topic (deduplicated by event id).
- ``Replay``: sanitized events in any order with duplicates, through the same
  ``TenantLedger.apply`` as the live path. Pass each event's topic timestamp as
  ``received_at`` and the charge/adjustment split (and future-timestamp rejections) equal
  the live ones too; without it every event counts as on time.

Day totals in a live state are kept for ``accounting.keep_days`` after the day; older days
come from the ledger or a replay. Months are kept.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from aiokafka.partitioner import DefaultPartitioner

from streams.cost.budgets import BudgetsConfig
from streams.cost.periods import parse_report_period
from streams.cost.spend import Rejection, Status, TenantLedger, Totals, from_nano, parse_event, to_nano
from streams.cost.tables import tenant_of
from streams.models import BudgetPeriod, CostLedgerEntry, HookEvent, LedgerKind, format_money

ReportFormat = Literal["table", "csv", "json"]
FORMATS: tuple[ReportFormat, ...] = ("table", "csv", "json")


@dataclass(frozen=True)
class ChargebackRow:
    user_id: str
    period: str
    charged_usd: Decimal
    charges: int
    adjusted_usd: Decimal
    adjustments: int

    @property
    def total_usd(self) -> Decimal:
        return self.charged_usd + self.adjusted_usd

    @property
    def events(self) -> int:
        return self.charges + self.adjustments

    def as_json(self) -> dict[str, str | int]:
        """Amounts as exact decimal strings (JSON numbers would invite floats), counts as ints."""
        return {
            "user_id": self.user_id,
            "period": self.period,
            "charged_usd": format_money(self.charged_usd),
            "charges": self.charges,
            "adjusted_usd": format_money(self.adjusted_usd),
            "adjustments": self.adjustments,
            "total_usd": format_money(self.total_usd),
            "events": self.events,
        }

    def cells(self) -> list[str]:
        data = self.as_json()
        return [str(data[c]) for c in _COLUMNS]


def _row(user_id: str, period: str, totals: Totals) -> ChargebackRow:
    return ChargebackRow(
        user_id, period, from_nano(totals.charged), totals.charges, from_nano(totals.adjusted), totals.adjustments
    )


def _rows(totals: Mapping[str, Totals], period: str, user_id: str | None) -> list[ChargebackRow]:
    return [
        _row(user, period, t)
        for user, t in sorted(totals.items())
        if (user_id is None or user == user_id) and (t.charges or t.adjustments)
    ]


def report_from_states(
    states: Mapping[str, Mapping[str, Any]], period: str, user_id: str | None = None
) -> list[ChargebackRow]:
    """Rows for ``period`` (``"2026-11"`` or ``"2026-11-27"``) from ``{user_id: state}``
    (the cost table's items: entries that are not a tenant's state are skipped)."""
    kind, key = parse_report_period(period)
    totals: dict[str, Totals] = {}
    for entry, state in states.items():
        user = tenant_of(entry, state)
        if user is None:
            continue
        ledger = TenantLedger.from_json(state)
        table = ledger.months if kind is BudgetPeriod.MONTHLY else ledger.days
        if key in table:
            totals[user] = table[key]
    return _rows(totals, key, user_id)


def owned_states(states: Mapping[str, Any], partitions: Collection[int], total: int) -> dict[str, Any]:
    """The tenant states of ``partitions`` (of ``total``) of the cost stage's source topic.

    A Faust table in the memory store keeps the rows of partitions taken from it in a
    rebalance, frozen from that moment; a view must report only the partitions this worker
    consumes now, or two workers report one tenant with different totals. A tenant's
    partition is where its records go: the Kafka key is its user_id, default partitioner."""
    everything = list(range(total))
    wanted = set(partitions)
    partition_of = DefaultPartitioner()
    return {
        key: state
        for key, state in states.items()
        if (user := tenant_of(key, state)) is not None and partition_of(user.encode(), everything, everything) in wanted
    }


def report_from_ledger(
    entries: Iterable[CostLedgerEntry], period: str, user_id: str | None = None
) -> list[ChargebackRow]:
    """Rows from ledger entries. An entry repeated on the topic (the agent is at-least-once)
    counts once per (user_id, event_id)."""
    kind, key = parse_report_period(period)
    totals: dict[str, Totals] = {}
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        entry_key = entry.period_month if kind is BudgetPeriod.MONTHLY else entry.period_day
        ident = (entry.user_id, entry.event_id)
        if entry_key != key or ident in seen:
            continue
        seen.add(ident)
        totals.setdefault(entry.user_id, Totals()).add(to_nano(entry.cost_usd), LedgerKind(entry.kind))
    return _rows(totals, key, user_id)


class Replay:
    """Rebuilds tenant states from sanitized events, through the live accounting code.

    ``add`` takes events in any order and with duplicates. Nothing is pruned (a replay is
    bounded and its ``received_at`` values need not be in order), so an id is counted once
    however far apart its copies are."""

    def __init__(self, config: BudgetsConfig) -> None:
        self.config = config
        self.ledgers: dict[str, TenantLedger] = {}
        self.statuses: Counter[Status] = Counter()
        self.rejected: Counter[str] = Counter()  # reason code -> events
        self.unattributed: Counter[str] = Counter()  # rejected before a user_id was known

    def add(self, event: HookEvent | Mapping[str, Any], received_at: datetime | None = None) -> Status:
        if not isinstance(event, HookEvent):
            parsed = parse_event(event)
            if isinstance(parsed, Rejection):
                return self._reject_unparsed(event, parsed)
            event = parsed
        ledger = self.ledgers.setdefault(event.user_id, TenantLedger())
        now = received_at if received_at is not None else event.timestamp
        outcome = ledger.apply(event, self.config, now, prune=False)
        self.statuses[outcome.status] += 1
        if outcome.rejection is not None:
            self.rejected[outcome.rejection.code.value] += 1
        return outcome.status

    def _reject_unparsed(self, data: Mapping[str, Any], rejection: Rejection) -> Status:
        # An unparsable record has no trusted id to dedupe by: each copy is one dead letter.
        self.statuses[Status.REJECTED] += 1
        self.rejected[rejection.code.value] += 1
        user = data.get("user_id")
        if not isinstance(user, str) or not user:
            self.unattributed[rejection.code.value] += 1
        return Status.REJECTED

    def states(self) -> dict[str, dict[str, Any]]:
        return {user: ledger.to_json() for user, ledger in self.ledgers.items()}

    def report(self, period: str, user_id: str | None = None) -> list[ChargebackRow]:
        return report_from_states(self.states(), period, user_id)


_COLUMNS = ("user_id", "period", "charged_usd", "charges", "adjusted_usd", "adjustments", "total_usd", "events")


def _grand_total(rows: list[ChargebackRow], period: str) -> ChargebackRow:
    return ChargebackRow(
        "TOTAL",
        period,
        sum((r.charged_usd for r in rows), Decimal(0)),
        sum(r.charges for r in rows),
        sum((r.adjusted_usd for r in rows), Decimal(0)),
        sum(r.adjustments for r in rows),
    )


def format_report(rows: list[ChargebackRow], period: str, fmt: ReportFormat = "table") -> str:
    """The report as text; every amount is an exact decimal string in USD."""
    total = _grand_total(rows, period)
    if fmt == "json":
        doc = {
            "period": period,
            "currency": "USD",
            "tenants": [r.as_json() for r in rows],
            "total": {k: v for k, v in total.as_json().items() if k not in ("user_id", "period")},
        }
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_COLUMNS)
        writer.writerows(r.cells() for r in rows)
        return buffer.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    lines = [list(_COLUMNS), *(r.cells() for r in rows), total.cells()]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_COLUMNS))]
    text = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.insert(-1, text[1])
    return "\n".join(line.rstrip() for line in text) + "\n"
