"""One tenant's spend: a JSON state and ``apply(state, event, config, now) -> Outcome``.

The Faust agent keeps one state per tenant (``user_id`` is the Kafka key, so a tenant's
events and state live on one partition) and calls ``apply`` for each sanitized event with
``now`` = the record's timestamp on the sanitized topic. Using the record timestamp, not
the wall clock, makes the outcome a function of the topic alone, so a replay of the same
records classifies every event exactly as the live path did.

Money is integer nano-USD in the state (JSON ints are exact) and ``Decimal`` on records.

Which events count: every event with a ``cost_usd``; a ``post_agent_call`` without one is
dead-lettered (``missing_cost``); other events without a cost are ignored. The cost is in
USD. A daemon may say otherwise with ``payload["currency"]``: anything but ``"USD"``
(case-insensitive) is dead-lettered as ``unsupported_currency``, since nothing here
converts currencies. A dead-lettered event is counted in ``rejected`` and never added to
a total.

Periods and lateness. A day or month (in the tenant's time zone, by event time) accepts
events until ``grace`` after its end. An event whose month still accepts it is a
``charge``: it is added to its day, month and run totals. Otherwise it is an
``adjustment``: recorded in the ledger and in separate adjustment totals of its day and
month (chargeback shows them apart), never in the live spend, and it fires no budget.
Budgets are judged only for periods that still accept events: a daily budget ignores a
charge that arrives after its day's grace (the day's total still counts it).

Idempotence. Every event id that changed the state (charged, adjusted or rejected) is
remembered in a bucket of its *arrival* day (UTC) and forgotten ``dedupe_window`` after
that day ends. Safe because duplicates come from publisher retries and from reprocessing
after a restart or rebalance, which arrive within minutes of the first copy; the window
(default 7 days) bounds that delay. Keying the buckets by arrival, not by event period,
matters: forgetting a period's ids when the period closes would let a late duplicate of a
counted charge slip through the adjustment path and count twice. A duplicate returns no
records and leaves the state as it was; the first copy of an id wins. ``apply`` keeps the ids
(and the runs) in the state's JSON; the live agent keeps them in keys of their own in the
same table, so its state stays small (``streams.cost.seen``, ``streams.cost.tables``).

Budgets. An alert fires once per (tenant, budget, period key, threshold, limit) when the
period's spend reaches ``limit * threshold / 100``; one event that crosses several
thresholds fires each. A hard budget emits one kill per (tenant, budget, period key,
limit) when spend reaches the limit; a per-run kill names the run and its latest event
ids, a daily or monthly kill has no run (stop all of the tenant's runs). A soft budget
never kills. Ids are deterministic so consumers dedupe. A changed limit re-arms alerts and
kills for the new limit; the spend itself is per calendar period, so a budget change never
resets or double-counts it.

Overshoot. A hard cap is enforced after the fact: the event that crosses the limit is
counted in full, and calls already in flight when the kill is emitted (or started before
the daemon acts on it) are counted too. Spend can end above the limit by the cost of the
concurrent calls of the tenant or run plus the kill's delivery latency; daemons that need
a firmer cap should stop at an earlier threshold alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pydantic

from streams.cost.budgets import Budget, BudgetsConfig, TenantBudgets
from streams.cost.periods import day_bounds, day_key, month_bounds, month_key
from streams.cost.seen import PER_RUN, MemoryRuns, MemorySeenIds, RunBook, RunSpend, SeenIds
from streams.models import (
    MONEY_MAX,
    MONEY_SCALE,
    BudgetAlert,
    BudgetKill,
    BudgetPeriod,
    CostLedgerEntry,
    EventType,
    HookEvent,
    LedgerKind,
    format_money,
)

STATE_VERSION = 1
TABLE_FIELD = "tables"  # in a state whose ids and runs live in table keys (streams.cost.tables)
NANO = 10**MONEY_SCALE
RECENT_RUN_EVENTS = 16  # event ids a per-run kill carries (the latest of the run)
# Earlier timestamps are not plausible for agent events, and year-1 dates overflow the
# conversion to UTC-12.
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_ID = 256


class Status(StrEnum):
    COUNTED = "counted"  # a charge in its live period
    ADJUSTED = "adjusted"  # later than the grace: an adjustment entry
    DUPLICATE = "duplicate"  # event id already seen: nothing emitted, state unchanged
    IGNORED = "ignored"  # carries no cost and needs none: state unchanged
    REJECTED = "rejected"  # dead-letter it with ``Outcome.rejection``


class RejectReason(StrEnum):
    MISSING_COST = "missing_cost"
    INVALID_COST = "invalid_cost"
    UNSUPPORTED_CURRENCY = "unsupported_currency"
    MISSING_USER_ID = "missing_user_id"
    MISSING_RUN_ID = "missing_run_id"
    FUTURE_TIMESTAMP = "future_timestamp"
    INVALID_TIMESTAMP = "invalid_timestamp"
    INVALID_EVENT = "invalid_event"


@dataclass(frozen=True)
class Rejection:
    code: RejectReason
    message: str

    @property
    def reason(self) -> str:
        """The text for ``DeadLetter.reason``."""
        return f"{self.code.value}: {self.message}"


@dataclass(frozen=True)
class Outcome:
    status: Status
    state: dict[str, Any]
    ledger: CostLedgerEntry | None = None
    alerts: tuple[BudgetAlert, ...] = ()
    kills: tuple[BudgetKill, ...] = ()
    rejection: Rejection | None = None


def to_nano(value: Decimal) -> int:
    """Exact: ``Decimal("0.0123")`` -> 12300000. Raises if not a whole number of nano-USD."""
    scaled = value.scaleb(MONEY_SCALE)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {MONEY_SCALE} decimal places")
    return int(scaled)


def from_nano(value: int) -> Decimal:
    return Decimal(value).scaleb(-MONEY_SCALE)


@dataclass
class Totals:
    """Charges and adjustments of one day or month, in nano-USD with event counts."""

    charged: int = 0
    charges: int = 0
    adjusted: int = 0
    adjustments: int = 0

    def to_json(self) -> dict[str, int]:
        return {"c": self.charged, "n": self.charges, "ac": self.adjusted, "an": self.adjustments}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Totals:
        return cls(int(data["c"]), int(data["n"]), int(data["ac"]), int(data["an"]))

    def add(self, nano: int, kind: LedgerKind) -> None:
        if kind is LedgerKind.CHARGE:
            self.charged += nano
            self.charges += 1
        else:
            self.adjusted += nano
            self.adjustments += 1


def _as_utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now needs a time zone")
    return now.astimezone(UTC)


def _id_part(text: str) -> str:
    # "|" separates the parts of a record id; escape it inside user and run ids.
    return text.replace("%", "%25").replace("|", "%7C")


def record_id(*parts: str) -> str:
    """A deterministic id; hashed when too long for an ``Ident`` (256 characters)."""
    text = "|".join(_id_part(p) for p in parts)
    if len(text) <= _MAX_ID:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def validate(event: HookEvent, tenant: TenantBudgets, config: BudgetsConfig, now: datetime) -> Rejection | None:
    """Why a cost event cannot be counted, or ``None``. ``now`` is its arrival time."""
    return _cost_problem(event) or _time_problem(event, config, now) or _run_problem(event, tenant)


def _cost_problem(event: HookEvent) -> Rejection | None:
    cost = event.cost_usd
    if cost is None:
        return Rejection(RejectReason.MISSING_COST, f"{event.event_type.value} without cost_usd")
    # HookEvent validates cost_usd; these guard instances built without validation.
    if not isinstance(cost, Decimal) or not cost.is_finite() or cost < 0 or cost > MONEY_MAX:
        return Rejection(RejectReason.INVALID_COST, f"cost_usd {cost!s} is not in [0, {MONEY_MAX}] USD")
    if cost.scaleb(MONEY_SCALE) != cost.scaleb(MONEY_SCALE).to_integral_value():
        return Rejection(RejectReason.INVALID_COST, f"cost_usd {cost} has over {MONEY_SCALE} decimal places")
    currency = event.payload.get("currency")
    if currency is not None and (not isinstance(currency, str) or currency.strip().upper() != "USD"):
        return Rejection(
            RejectReason.UNSUPPORTED_CURRENCY, f"payload currency {currency!r}: only USD costs are accounted"
        )
    return None


def _time_problem(event: HookEvent, config: BudgetsConfig, now: datetime) -> Rejection | None:
    if event.timestamp > now + config.accounting.max_future_skew:
        return Rejection(
            RejectReason.FUTURE_TIMESTAMP,
            f"timestamp {event.timestamp.isoformat()} is more than "
            f"{config.accounting.max_future_skew_seconds}s after its arrival {now.isoformat()}",
        )
    if event.timestamp < EARLIEST_EVENT:
        return Rejection(RejectReason.INVALID_TIMESTAMP, f"timestamp {event.timestamp.isoformat()} is before 2000")
    return None


def _run_problem(event: HookEvent, tenant: TenantBudgets) -> Rejection | None:
    if not event.run_id and tenant.has(BudgetPeriod.PER_RUN):
        return Rejection(RejectReason.MISSING_RUN_ID, "the tenant has a per-run budget and the event has none")
    return None


_FIELD_REASONS = {
    "cost_usd": RejectReason.INVALID_COST,
    "user_id": RejectReason.MISSING_USER_ID,
    "run_id": RejectReason.MISSING_RUN_ID,
    "timestamp": RejectReason.INVALID_TIMESTAMP,
}


def parse_event(data: Mapping[str, Any]) -> HookEvent | Rejection:
    """A decoded JSON object as a ``HookEvent``, or why not (negative or non-numeric cost,
    missing user_id, bad timestamp...). The first problem picks the code; all are listed."""
    try:
        return HookEvent.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        first = str(errors[0]["loc"][0]) if errors and errors[0]["loc"] else ""
        message = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg'].removeprefix('Value error, ')}"
            for err in errors
        )
        return Rejection(_FIELD_REASONS.get(first, RejectReason.INVALID_EVENT), message)


def _carries_cost(event: HookEvent) -> bool:
    return event.cost_usd is not None or event.event_type is EventType.POST_AGENT_CALL


class TenantLedger:
    """The mutable form of one tenant's state. ``apply()`` below is the pure wrapper.

    The event ids (``seen``) and runs are behind the protocols of ``streams.cost.seen``: in
    memory and in the state's JSON by default, in table keys of their own for the live
    agent (``streams.cost.tables``)."""

    def __init__(self, seen: SeenIds | None = None, runs: RunBook | None = None) -> None:
        self.months: dict[str, Totals] = {}
        self.days: dict[str, Totals] = {}
        self.seen: SeenIds = seen if seen is not None else MemorySeenIds()  # ids by arrival day (UTC)
        self.runs: RunBook = runs if runs is not None else MemoryRuns()
        # period kind -> period key -> budget name -> fired marks ("80@100.000000", "kill@...");
        # daily and monthly budgets (a run's marks are kept with the run).
        self.fired: dict[str, dict[str, dict[str, list[str]]]] = {}
        self.rejected: dict[str, int] = {}
        self.pruned_hour = 0  # epoch hour of the last prune: prune at most hourly
        # The latest arrival time seen (epoch seconds). Record timestamps are set by many
        # producers and need not increase; budgets are judged against this high-water mark so
        # a period whose fired marks were pruned is never judged (and alerted) again.
        self.high_water = 0

    # -- JSON (what a Faust table stores) ---------------------------------------------
    @classmethod
    def from_json(
        cls, data: Mapping[str, Any] | None, *, seen: SeenIds | None = None, runs: RunBook | None = None
    ) -> TenantLedger:
        """The ledger of a stored state. Ids and runs come from the state's JSON unless
        ``seen`` / ``runs`` are given (then the state's own fields are not read)."""
        ledger = cls(seen, runs)
        if not data:
            return ledger
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"cost state version {data.get('v')!r} is not {STATE_VERSION}")
        ledger.months = {k: Totals.from_json(v) for k, v in data["months"].items()}
        ledger.days = {k: Totals.from_json(v) for k, v in data["days"].items()}
        fired = data["fired"]
        if seen is None:
            ledger.seen = MemorySeenIds.from_json(data["seen"])
        if runs is None:
            ledger.runs = MemoryRuns.from_json(data["runs"], fired.get(PER_RUN))
        ledger.fired = {
            kind: {key: {name: list(marks) for name, marks in names.items()} for key, names in keys.items()}
            for kind, keys in fired.items()
            if kind != PER_RUN
        }
        ledger.rejected = {k: int(v) for k, v in data["rejected"].items()}
        ledger.pruned_hour = int(data["pruned"])
        ledger.high_water = int(data.get("hw", 0))
        return ledger

    def to_json(self) -> dict[str, Any]:
        runs, per_run = self.runs.to_json()
        fired: dict[str, Any] = {
            kind: {key: {name: list(m) for name, m in names.items()} for key, names in keys.items()}
            for kind, keys in self.fired.items()
        }
        if per_run is not None:
            fired[PER_RUN] = per_run
        return {
            "v": STATE_VERSION,
            "months": {k: v.to_json() for k, v in self.months.items()},
            "days": {k: v.to_json() for k, v in self.days.items()},
            "runs": runs,
            "seen": self.seen.to_json(),
            "fired": fired,
            "rejected": dict(self.rejected),
            "pruned": self.pruned_hour,
            "hw": self.high_water,
        }

    # -- the accounting ---------------------------------------------------------------
    def apply(self, event: HookEvent, config: BudgetsConfig, now: datetime, *, prune: bool = True) -> Outcome:
        """Count ``event`` in place. The returned ``Outcome.state`` is empty: use
        ``to_json()`` (the pure ``apply()`` fills it). ``prune=False`` keeps everything,
        for a bounded replay whose ``now`` values are not in order."""
        now = _as_utc(now)
        if not _carries_cost(event):
            return Outcome(Status.IGNORED, {})
        if event.event_id in self.seen:
            return Outcome(Status.DUPLICATE, {})
        tenant = config.for_tenant(event.user_id)
        if prune:
            self._prune(now, config, tenant)
        self.high_water = max(self.high_water, int(now.timestamp()))
        self.seen.add(event.event_id, now.date().isoformat())
        rejection = validate(event, tenant, config, now)
        if rejection is not None:
            self.rejected[rejection.code.value] = self.rejected.get(rejection.code.value, 0) + 1
            return Outcome(Status.REJECTED, {}, rejection=rejection)
        assert event.cost_usd is not None  # validate() rejected a missing cost
        tz, grace = tenant.tz, config.accounting.grace
        day, month = day_key(event.timestamp, tz), month_key(event.timestamp, tz)
        nano = to_nano(event.cost_usd)
        late = now >= month_bounds(month, tz)[1] + grace
        kind = LedgerKind.ADJUSTMENT if late else LedgerKind.CHARGE
        self.days.setdefault(day, Totals()).add(nano, kind)
        self.months.setdefault(month, Totals()).add(nano, kind)
        entry = CostLedgerEntry(
            event_id=event.event_id,
            user_id=event.user_id,
            run_id=event.run_id,
            model=event.model,
            cost_usd=event.cost_usd,
            timestamp=event.timestamp,
            counted_at=now,
            kind=kind,
            period_day=day,
            period_month=month,
        )
        if late:
            return Outcome(Status.ADJUSTED, {}, ledger=entry)
        run: RunSpend | None = None
        if event.run_id:
            run = self.runs.get(event.run_id)
            if run is None:
                run = RunSpend()
            run.charged += nano
            run.charges += 1
            run.last_arrival = int(now.timestamp())
            run.recent = [*run.recent, event.event_id][-RECENT_RUN_EVENTS:]
        # Judged by the high-water arrival time, not this record's: once a period's grace is
        # over (and its fired marks may be pruned), no later record re-opens its budget.
        judged_at = datetime.fromtimestamp(self.high_water, UTC)
        day_live = judged_at < day_bounds(day, tz)[1] + grace
        month_live = judged_at < month_bounds(month, tz)[1] + grace
        alerts: list[BudgetAlert] = []
        kills: list[BudgetKill] = []
        for budget in tenant.budgets:
            if (budget.period is BudgetPeriod.DAILY and not day_live) or (
                budget.period is BudgetPeriod.MONTHLY and not month_live
            ):
                continue  # the period's grace is over: its budget is closed
            key = {BudgetPeriod.DAILY: day, BudgetPeriod.MONTHLY: month}.get(budget.period, event.run_id)
            assert key is not None  # validate() rejected a per-run budget without a run
            fired_alerts, fired_kill = self._judge(event, budget, key, run, now=now)
            alerts.extend(fired_alerts)
            kills.extend(fired_kill)
        if run is not None:
            assert event.run_id is not None
            self.runs.put(event.run_id, run)  # after judging: the run's fired marks are stored with it
        return Outcome(Status.COUNTED, {}, ledger=entry, alerts=tuple(alerts), kills=tuple(kills))

    def _judge(
        self, event: HookEvent, budget: Budget, key: str, run: RunSpend | None, *, now: datetime
    ) -> tuple[list[BudgetAlert], list[BudgetKill]]:
        """The alerts and kill this budget owes for period ``key``, each at most once.
        ``run`` is the event's run (``key`` names it for a per-run budget)."""
        alerts: list[BudgetAlert] = []
        kills: list[BudgetKill] = []
        limit = to_nano(budget.limit_usd)
        limit_text = format_money(budget.limit_usd)
        if budget.period is BudgetPeriod.PER_RUN:
            assert run is not None  # validate() rejected a per-run budget without a run
            spent, marks, run_id = run.charged, run.fired.setdefault(budget.name, []), key
        else:
            spent = (self.days if budget.period is BudgetPeriod.DAILY else self.months)[key].charged
            marks = self.fired.setdefault(budget.period.value, {}).setdefault(key, {}).setdefault(budget.name, [])
            run_id = None
        for pct in budget.thresholds:
            mark = f"{pct}@{limit_text}"
            # Integer cross-multiplication: exact, no division.
            if spent * 100 >= limit * pct and mark not in marks:
                marks.append(mark)
                alerts.append(
                    BudgetAlert(
                        alert_id=record_id(event.user_id, budget.name, key, str(pct), limit_text),
                        user_id=event.user_id,
                        run_id=run_id,
                        period=budget.period,
                        period_key=key,
                        threshold_pct=pct,
                        limit_usd=budget.limit_usd,
                        spent_usd=from_nano(spent),
                        hard_kill=budget.hard_kill,
                        event_id=event.event_id,
                        timestamp=now,
                    )
                )
        mark = f"kill@{limit_text}"
        if budget.hard_kill and spent >= limit and mark not in marks:
            marks.append(mark)
            event_ids = list(run.recent) if run is not None and run_id is not None else [event.event_id]
            kills.append(
                BudgetKill(
                    kill_id=record_id(event.user_id, budget.name, key, "kill", limit_text),
                    user_id=event.user_id,
                    run_id=run_id,
                    period=budget.period,
                    period_key=key,
                    limit_usd=budget.limit_usd,
                    spent_usd=from_nano(spent),
                    reason=(
                        f"hard budget {budget.name!r} ({budget.period.value} {key}) exhausted: "
                        f"spent {format_money(from_nano(spent))} of {limit_text} USD"
                    ),
                    event_ids=event_ids,
                    timestamp=now,
                )
            )

        return alerts, kills

    # -- bounding the state ------------------------------------------------------------
    def _prune(self, now: datetime, config: BudgetsConfig, tenant: TenantBudgets) -> None:
        hour = int(now.timestamp()) // 3600
        if hour <= self.pruned_hour:
            return
        self.pruned_hour = hour
        acct, tz = config.accounting, tenant.tz
        # An arrival day's ids are forgotten once ``now >= its end + dedupe_window``: that is
        # every day up to the date of ``now - dedupe_window - 1 day``.
        self.seen.expire((now - acct.dedupe_window - timedelta(days=1)).date().isoformat())
        for day in list(self.days):
            day_end = day_bounds(day, tz)[1]
            month_end = month_bounds(day[:7], tz)[1]
            # Only once its month is closed too, so a late charge never re-creates a day.
            if now >= day_end + timedelta(days=acct.keep_days) and now >= month_end + acct.grace:
                del self.days[day]
        self.runs.expire(int(now.timestamp()) - acct.run_idle_days * 86400)  # with their fired marks
        closed = {
            BudgetPeriod.DAILY.value: lambda key: now >= day_bounds(key, tz)[1] + acct.grace,
            BudgetPeriod.MONTHLY.value: lambda key: now >= month_bounds(key, tz)[1] + acct.grace,
        }
        for kind, keys in self.fired.items():
            is_closed = closed.get(kind)
            if is_closed is None:
                continue
            for key in [k for k in keys if is_closed(k)]:
                del keys[key]


def apply(state: Mapping[str, Any] | None, event: HookEvent, config: BudgetsConfig, now: datetime) -> Outcome:
    """Pure: count ``event`` against a tenant's ``state`` (``None`` for a new tenant) at
    arrival time ``now``. The input is not modified; store ``Outcome.state``."""
    if state and TABLE_FIELD in state:
        raise ValueError("this cost state keeps its ids and runs in table keys: use streams.cost.tables")
    ledger = TenantLedger.from_json(state)
    outcome = ledger.apply(event, config, now)
    # A duplicate or ignored event changed nothing: this is the input state, re-encoded.
    return Outcome(outcome.status, ledger.to_json(), outcome.ledger, outcome.alerts, outcome.kills, outcome.rejection)
