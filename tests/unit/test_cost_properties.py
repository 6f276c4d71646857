"""Properties: order, duplicates, restarts and replay never change a total.

Each generated event has an arrival time (its record timestamp on the sanitized topic).
The live path is ``apply`` per event with per-tenant states kept as JSON (a restart is a
``json.dumps``/``json.loads`` of every state, as a Faust table restores it). The expected
totals are computed here independently: the exact ``Decimal`` sum of each valid event id's
cost by tenant-local month.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.cost.budgets import parse_budgets
from streams.cost.chargeback import Replay, report_from_ledger, report_from_states
from streams.cost.spend import Status, apply
from streams.models import CostLedgerEntry, HookEvent

ZONES = {
    "ny": "America/New_York",  # DST ends 2026-11-01
    "kiri": "Pacific/Kiritimati",  # UTC+14
    "m12": "Etc/GMT+12",  # UTC-12
    "ber": "Europe/Berlin",
}
CONFIG = parse_budgets(
    """
accounting: {grace_hours: 48, dedupe_window_hours: 240, max_future_skew_seconds: 300}
tenants:
  ny:
    timezone: America/New_York
    budgets:
      - {name: run-cap, period: per_run, limit_usd: "2", hard_kill: true}
      - {name: monthly, period: monthly, limit_usd: "20"}
  kiri:
    timezone: Pacific/Kiritimati
    budgets: [{period: monthly, limit_usd: "4", hard_kill: true}]
  m12:
    timezone: Etc/GMT+12
    budgets: [{period: daily, limit_usd: "2", hard_kill: true, thresholds: [50, 80, 100]}]
  ber:
    timezone: Europe/Berlin
    budgets: []
""",
    "properties",
)
# Around a month end, the US DST change, and both extreme offsets.
START = datetime(2026, 10, 30, 0, 0, tzinfo=UTC)
BAD_KINDS = ("future", "eur", "no_run", "no_cost")


@dataclass(frozen=True)
class Arrival:
    event: HookEvent
    received_at: datetime
    valid: bool


@st.composite
def arrivals(draw: st.DrawFn) -> list[Arrival]:
    """Unique events, then retried copies of some, all arriving within the dedupe window."""
    count = draw(st.integers(min_value=1, max_value=30))
    out: list[Arrival] = []
    for i in range(count):
        user = draw(st.sampled_from(sorted(ZONES)))
        ts = START + timedelta(seconds=draw(st.integers(0, 4 * 86400)))
        # Mostly prompt, some beyond the 48 h grace (adjustments when the month has closed).
        delay = timedelta(seconds=draw(st.one_of(st.integers(0, 600), st.integers(0, 4 * 86400))))
        nano = draw(st.one_of(st.integers(0, 10**9), st.integers(0, 5 * 10**9), st.just(1)))
        bad = draw(st.sampled_from([None] * 8 + list(BAD_KINDS)))
        run = draw(st.sampled_from(["r1", "r2", "r3"]))
        cost: Decimal | None = Decimal(nano).scaleb(-9)
        payload: dict[str, Any] = {}
        if bad == "future":
            ts = ts + delay + timedelta(days=1)
        elif bad == "eur":
            payload = {"currency": "EUR"}
        elif bad == "no_run":
            user = "ny"  # the tenant with a per-run budget
        elif bad == "no_cost":
            cost = None
        event = HookEvent(
            event_id=f"ev-{i}",
            event_type="post_agent_call",
            user_id=user,
            run_id=None if bad == "no_run" else run,
            timestamp=ts,
            source="prop@host",
            cost_usd=cost,
            payload=payload,
        )
        out.append(Arrival(event, ts + delay if bad != "future" else ts - timedelta(days=1), bad is None))
    retried = draw(st.lists(st.sampled_from(out), max_size=15))
    for original in retried:
        retry = timedelta(seconds=draw(st.integers(1, 120)))
        out.append(Arrival(original.event, original.received_at + retry, original.valid))
    return out


def expected_totals(items: list[Arrival]) -> dict[tuple[str, str], Decimal]:
    unique = {a.event.event_id: a.event for a in items if a.valid}
    totals: dict[tuple[str, str], Decimal] = {}
    for ev in unique.values():
        assert ev.cost_usd is not None
        month = ev.timestamp.astimezone(ZoneInfo(ZONES[ev.user_id])).strftime("%Y-%m")
        totals[(ev.user_id, month)] = totals.get((ev.user_id, month), Decimal(0)) + ev.cost_usd
    return totals


def expected_adjusted(items: list[Arrival]) -> dict[tuple[str, str], Decimal]:
    """Costs that arrived 48 h or more after their local month ended (first copies only)."""
    out: dict[tuple[str, str], Decimal] = {}
    firsts: dict[str, Arrival] = {}
    for a in items:
        firsts.setdefault(a.event.event_id, a)
    for a in firsts.values():
        local = a.event.timestamp.astimezone(ZoneInfo(ZONES[a.event.user_id]))
        next_month = (local.replace(day=28) + timedelta(days=4)).replace(day=1, hour=0, minute=0, second=0)
        # 48 h of elapsed time: aware-datetime arithmetic is wall-clock, an hour off across DST.
        if a.valid and a.received_at >= next_month.astimezone(UTC) + timedelta(hours=48):
            key = (a.event.user_id, local.strftime("%Y-%m"))
            assert a.event.cost_usd is not None
            out[key] = out.get(key, Decimal(0)) + a.event.cost_usd
    return out


@dataclass
class Live:
    states: dict[str, dict[str, Any]]
    ledger: list[CostLedgerEntry]
    alert_ids: list[str]
    kill_ids: list[str]
    rejected: Counter[str]


def run_live(items: list[Arrival], restart_at: int | None = None) -> Live:
    live = Live({}, [], [], [], Counter())
    for i, item in enumerate(items):
        if i == restart_at:
            live.states = {u: json.loads(json.dumps(s)) for u, s in live.states.items()}
        user = item.event.user_id
        outcome = apply(live.states.get(user), item.event, CONFIG, item.received_at)
        live.states[user] = outcome.state
        if outcome.ledger is not None:
            live.ledger.append(outcome.ledger)
        live.alert_ids += [a.alert_id for a in outcome.alerts]
        live.kill_ids += [k.kill_id for k in outcome.kills]
        if outcome.rejection is not None:
            live.rejected[outcome.rejection.code.value] += 1
    return live


def totals_of(states: dict[str, dict[str, Any]]) -> dict[tuple[str, str], Decimal]:
    months = {m for s in states.values() for m in s["months"]}
    return {(row.user_id, row.period): row.total_usd for month in months for row in report_from_states(states, month)}


def test_the_grace_is_48_elapsed_hours_across_the_dst_change() -> None:
    # New York's October closes at 04:00 UTC on Nov 1; DST ends that night, so 48 h later is
    # 04:00 UTC on Nov 3 but 23:00 local on Nov 2. An arrival at that instant is an adjustment.
    event = HookEvent(
        event_id="ev-0", event_type="post_agent_call", user_id="ny", run_id="r1",
        timestamp=datetime(2026, 10, 30, 4, 0, tzinfo=UTC), source="prop@host", cost_usd=Decimal("0.5"),
    )  # fmt: skip
    late = Arrival(event, datetime(2026, 11, 3, 4, 0, tzinfo=UTC), valid=True)
    assert expected_adjusted([late]) == {("ny", "2026-10"): Decimal("0.5")}
    assert apply(None, event, CONFIG, late.received_at).status is Status.ADJUSTED
    on_time = datetime(2026, 11, 3, 3, 59, 59, tzinfo=UTC)
    assert expected_adjusted([Arrival(event, on_time, valid=True)]) == {}
    assert apply(None, event, CONFIG, on_time).status is not Status.ADJUSTED


@settings(max_examples=150, deadline=None)
@given(items=arrivals(), order=st.randoms(use_true_random=False), restart=st.integers(0, 60))
def test_order_duplicates_and_restarts_give_the_exact_sum(items: list[Arrival], order: Any, restart: int) -> None:
    expected = expected_totals(items)
    baseline = run_live(items)
    shuffled = list(items)
    order.shuffle(shuffled)
    again = run_live(shuffled, restart_at=restart)
    assert totals_of(baseline.states) == expected
    # In topic order the first copy decides: late ones are adjustments, the rest charges.
    adjusted = {
        (r.user_id, r.period): r.adjusted_usd
        for _, month in expected
        for r in report_from_states(baseline.states, month)
        if r.adjustments
    }
    assert adjusted == expected_adjusted(items)
    assert totals_of(again.states) == expected
    for live in (baseline, again):
        # One ledger entry per valid event id; alerts and kills never repeat.
        assert sorted(e.event_id for e in live.ledger) == sorted({a.event.event_id for a in items if a.valid})
        assert len(live.alert_ids) == len(set(live.alert_ids))
        assert len(live.kill_ids) == len(set(live.kill_ids))
        assert sum(live.rejected.values()) == len({a.event.event_id for a in items if not a.valid})
        # The ledger topic tells the same story as the tables, month by month.
        for month in {m for _, m in expected}:
            assert report_from_ledger(live.ledger, month) == report_from_states(live.states, month)


@settings(max_examples=150, deadline=None)
@given(items=arrivals(), order=st.randoms(use_true_random=False), restart=st.integers(0, 60))
def test_replay_equals_live(items: list[Arrival], order: Any, restart: int) -> None:
    live = run_live(items, restart_at=restart)
    # Same records in topic order: identical rows, charge/adjustment split included.
    replay = Replay(CONFIG)
    for item in items:
        replay.add(item.event, item.received_at)
    months = {m for s in live.states.values() for m in s["months"]}
    for month in months:
        assert replay.report(month) == report_from_states(live.states, month)
    assert replay.rejected == live.rejected
    # Any order, raw JSON in, with every copy again: the same totals.
    shuffled = [*items, *items]
    order.shuffle(shuffled)
    scrambled = Replay(CONFIG)
    for item in shuffled:
        scrambled.add(item.event.to_json(), item.received_at)
    assert totals_of(scrambled.states()) == totals_of(live.states) == expected_totals(items)
    assert scrambled.statuses[Status.DUPLICATE] >= len(items)


@settings(max_examples=60, deadline=None)
@given(nanos=st.lists(st.integers(0, 10**12), min_size=1, max_size=50))
def test_sums_are_exact_where_floats_drift(nanos: list[int]) -> None:
    costs = [Decimal(n).scaleb(-9) for n in nanos]
    state: dict[str, Any] | None = None
    for i, cost in enumerate(costs):
        ev = HookEvent(
            event_id=f"e{i}",
            event_type="post_agent_call",
            user_id="ber",
            run_id="r",
            timestamp=START,
            source="s",
            cost_usd=cost,
        )
        state = apply(state, ev, CONFIG, START).state
    assert state is not None
    (row,) = report_from_states({"ber": state}, "2026-10")
    assert row.total_usd == sum(costs, Decimal(0))
    assert row.charges == len(costs)
