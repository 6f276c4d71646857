"""apply(): charges, lateness, dedupe, alerts, kills, dead letters; chargeback reports."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from streams.cost.budgets import BudgetsConfig, parse_budgets
from streams.cost.chargeback import Replay, format_report, report_from_ledger, report_from_states
from streams.cost.spend import Outcome, RejectReason, Status, apply, parse_event, record_id
from streams.models import BudgetPeriod, CostLedgerEntry, EventType, HookEvent, LedgerKind

CONFIG = parse_budgets(
    """
accounting: {grace_hours: 48, dedupe_window_hours: 168, max_future_skew_seconds: 300}
tenants:
  hard-run:
    timezone: America/New_York
    budgets:
      - {name: run-cap, period: per_run, limit_usd: "1.00", hard_kill: true}
      - {name: monthly, period: monthly, limit_usd: "100", thresholds: [50, 80, 100]}
  soft-month:
    budgets:
      - {period: monthly, limit_usd: "10"}
  hard-day:
    timezone: Europe/Berlin
    budgets:
      - {period: daily, limit_usd: "5", hard_kill: true}
  hard-month:
    budgets:
      - {period: monthly, limit_usd: "10", hard_kill: true}
""",
    "test",
)
NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)


def event(
    event_id: str,
    cost: str | None = "0.10",
    *,
    user: str = "soft-month",
    run: str | None = "run-1",
    ts: datetime = NOW,
    event_type: EventType = EventType.POST_AGENT_CALL,
    payload: dict[str, Any] | None = None,
) -> HookEvent:
    return HookEvent(
        event_id=event_id,
        event_type=event_type,
        user_id=user,
        run_id=run,
        timestamp=ts,
        source="test@host",
        model="claude-sonnet-4-5",
        cost_usd=cost,
        payload=payload or {},
    )


class Tenant:
    """A tenant's state carried between events the way a Faust table would (JSON)."""

    def __init__(self, config: BudgetsConfig = CONFIG) -> None:
        self.state: dict[str, Any] | None = None
        self.config = config

    def feed(self, ev: HookEvent, now: datetime = NOW) -> Outcome:
        outcome = apply(self.state, ev, self.config, now)
        self.state = json.loads(json.dumps(outcome.state))
        return outcome


def month_total(state: dict[str, Any] | None, key: str) -> tuple[int, int, int, int]:
    assert state is not None
    t = state["months"][key]
    return t["c"], t["n"], t["ac"], t["an"]


def test_charge_is_exact_and_emits_one_ledger_entry() -> None:
    t = Tenant()
    for i, cost in enumerate(["0.1", "0.2", "0.000000001", "1234.567890123"]):
        out = t.feed(event(f"e{i}", cost))
        assert out.status is Status.COUNTED
        assert out.ledger is not None and out.ledger.kind is LedgerKind.CHARGE
        assert out.ledger.period_month == "2026-11" and out.ledger.period_day == "2026-11-27"
    assert month_total(t.state, "2026-11") == (1234_867890124, 4, 0, 0)


def test_input_state_is_not_modified() -> None:
    t = Tenant()
    t.feed(event("e1"))
    before = json.dumps(t.state, sort_keys=True)
    apply(t.state, event("e2"), CONFIG, NOW)
    assert json.dumps(t.state, sort_keys=True) == before


def test_duplicate_returns_nothing_and_leaves_state_unchanged() -> None:
    t = Tenant()
    t.feed(event("e1", "0.5"))
    before = t.state
    out = t.feed(event("e1", "0.7"), NOW + timedelta(hours=1))  # a retry, even with other content
    assert out.status is Status.DUPLICATE
    assert (out.ledger, out.alerts, out.kills, out.rejection) == (None, (), (), None)
    assert t.state == before


def test_duplicate_after_the_month_closed_is_still_a_duplicate() -> None:
    # A late retry of a counted charge must not come back as an adjustment.
    t = Tenant()
    t.feed(event("e1", "0.5", ts=datetime(2026, 11, 30, 23, tzinfo=UTC)), NOW + timedelta(days=3))
    out = t.feed(event("e1", "0.5", ts=datetime(2026, 11, 30, 23, tzinfo=UTC)), NOW + timedelta(days=6))
    assert out.status is Status.DUPLICATE


def test_ids_are_forgotten_only_after_the_dedupe_window() -> None:
    t = Tenant()
    t.feed(event("e1"), NOW)
    t.feed(event("e2"), NOW + timedelta(days=6))
    assert t.feed(event("e1"), NOW + timedelta(days=7)).status is Status.DUPLICATE
    t.feed(event("e3"), NOW + timedelta(days=9))  # prunes the NOW bucket (ended + 7 days)
    assert t.state is not None
    assert "2026-11-27" not in t.state["seen"]
    assert "e2" in t.state["seen"]["2026-12-03"]


def test_non_cost_events_are_ignored() -> None:
    t = Tenant()
    out = t.feed(event("t1", None, event_type=EventType.TOOL_CALL))
    assert out.status is Status.IGNORED and out.ledger is None
    # Any event with a cost counts, whatever its type.
    assert t.feed(event("t2", "0.3", event_type=EventType.TOOL_CALL)).status is Status.COUNTED


def test_late_within_grace_counts_in_its_own_period() -> None:
    t = Tenant()
    october = datetime(2026, 10, 31, 23, 59, tzinfo=UTC)
    out = t.feed(event("late", "2", ts=october), datetime(2026, 11, 2, 23, 58, tzinfo=UTC))
    assert out.status is Status.COUNTED
    assert out.ledger is not None and out.ledger.period_month == "2026-10"
    assert month_total(t.state, "2026-10") == (2_000000000, 1, 0, 0)


def test_later_than_grace_is_an_adjustment_outside_live_spend() -> None:
    t = Tenant()
    t.feed(event("nov", "9", ts=datetime(2026, 10, 1, tzinfo=UTC)), datetime(2026, 10, 1, 1, tzinfo=UTC))
    out = t.feed(event("adj", "5", ts=datetime(2026, 10, 31, 12, tzinfo=UTC)), datetime(2026, 11, 3, tzinfo=UTC))
    assert out.status is Status.ADJUSTED
    assert out.ledger is not None and out.ledger.kind is LedgerKind.ADJUSTMENT
    assert out.ledger.period_month == "2026-10"
    assert out.alerts == () and out.kills == ()  # 14 > 10 but adjustments fire no budget
    assert month_total(t.state, "2026-10") == (9_000000000, 1, 5_000000000, 1)
    rows = report_from_states({"soft-month": t.state or {}}, "2026-10")
    assert (rows[0].charged_usd, rows[0].adjusted_usd, rows[0].total_usd) == (
        Decimal("9.000000000"),
        Decimal("5.000000000"),
        Decimal("14.000000000"),
    )


def test_alerts_at_80_then_100_exactly_once() -> None:
    t = Tenant()
    fired: list[int] = []
    for i, cost in enumerate(["7.99", "0.01", "1.99", "0.01", "5", "5"]):
        out = t.feed(event(f"e{i}", cost))
        fired += [a.threshold_pct for a in out.alerts]
        assert out.kills == ()  # soft: never a kill
        if i == 1:
            (alert,) = out.alerts
            assert alert.threshold_pct == 80 and alert.spent_usd == Decimal("8")
            assert alert.alert_id == "soft-month|monthly|2026-11|80|10.000000"
            assert alert.run_id is None and alert.hard_kill is False and alert.event_id == "e1"
    assert fired == [80, 100]


def test_one_event_crossing_several_thresholds_fires_each() -> None:
    out = Tenant().feed(event("big", "150", user="hard-run"))
    assert [(a.period_key, a.threshold_pct) for a in out.alerts] == [
        ("run-1", 80),
        ("run-1", 100),
        ("2026-11", 50),
        ("2026-11", 80),
        ("2026-11", 100),
    ]


def test_per_run_kill_once_with_run_and_event_ids() -> None:
    t = Tenant()
    kills = []
    for i in range(8):
        kills += t.feed(event(f"e{i}", "0.30", user="hard-run", run="run-7")).kills
    # Another run has its own cap.
    other = t.feed(event("x1", "0.30", user="hard-run", run="run-8"))
    assert other.kills == ()
    (kill,) = kills
    assert kill.run_id == "run-7" and kill.period is BudgetPeriod.PER_RUN and kill.period_key == "run-7"
    assert kill.limit_usd == Decimal("1") and kill.spent_usd == Decimal("1.2")
    assert kill.event_ids == ["e0", "e1", "e2", "e3"]
    assert kill.kill_id == "hard-run|run-cap|run-7|kill|1.000000"
    assert "run-cap" in kill.reason and "1.200000 of 1.000000" in kill.reason


def test_monthly_and_daily_kills_stop_the_tenant_not_one_run() -> None:
    month = Tenant()
    kills = [k for i in range(3) for k in month.feed(event(f"m{i}", "5", user="hard-month")).kills]
    assert [(k.run_id, k.period_key, k.event_ids) for k in kills] == [(None, "2026-11", ["m1"])]
    day = Tenant()
    kills = [k for i in range(3) for k in day.feed(event(f"d{i}", "3", user="hard-day")).kills]
    assert [(k.run_id, k.period_key) for k in kills] == [(None, "2026-11-27")]


def test_daily_budget_is_per_local_day() -> None:
    t = Tenant()
    # 22:30Z on Nov 27 is 23:30 in Berlin; 23:30Z is already Nov 28 there.
    t.feed(event("a", "4", user="hard-day", ts=datetime(2026, 11, 27, 22, 30, tzinfo=UTC)))
    out = t.feed(event("b", "4", user="hard-day", ts=datetime(2026, 11, 27, 23, 30, tzinfo=UTC)))
    assert out.kills == () and [a.period_key for a in out.alerts] == []


def test_a_closed_day_no_longer_judges_its_daily_budget() -> None:
    t = Tenant()
    ts = datetime(2026, 11, 20, 12, tzinfo=UTC)
    out = t.feed(event("a", "9", user="hard-day", ts=ts), ts + timedelta(days=4))
    assert out.status is Status.COUNTED  # the month still accepts it
    assert out.kills == () and out.alerts == ()
    assert t.state is not None and t.state["days"]["2026-11-20"]["c"] == 9_000000000


def test_raising_the_limit_re_arms_alerts_and_kills() -> None:
    t = Tenant()
    t.feed(event("a", "10", user="hard-month"))
    raised = parse_budgets(
        "tenants:\n  hard-month:\n    budgets:\n      - {period: monthly, limit_usd: '20', hard_kill: true}", "t"
    )
    t.config = raised
    out = t.feed(event("b", "6", user="hard-month"))
    assert [a.threshold_pct for a in out.alerts] == [80] and out.kills == ()
    out = t.feed(event("c", "4", user="hard-month"))
    assert [a.alert_id for a in out.alerts] == ["hard-month|monthly|2026-11|100|20.000000"]
    assert [k.kill_id for k in out.kills] == ["hard-month|monthly|2026-11|kill|20.000000"]
    assert month_total(t.state, "2026-11") == (20_000000000, 3, 0, 0)  # spend never reset


@pytest.mark.parametrize(
    ("ev", "user", "code"),
    [
        (event("x", None), "soft-month", RejectReason.MISSING_COST),
        (event("x", "1", payload={"currency": "EUR"}), "soft-month", RejectReason.UNSUPPORTED_CURRENCY),
        (event("x", "1", payload={"currency": 840}), "soft-month", RejectReason.UNSUPPORTED_CURRENCY),
        (event("x", "1", user="hard-run", run=None), "hard-run", RejectReason.MISSING_RUN_ID),
        (event("x", "1", ts=NOW + timedelta(minutes=6)), "soft-month", RejectReason.FUTURE_TIMESTAMP),
        (event("x", "1", ts=datetime(1999, 12, 31, tzinfo=UTC)), "soft-month", RejectReason.INVALID_TIMESTAMP),
    ],
)
def test_bad_events_are_dead_lettered_counted_and_never_added(ev: HookEvent, user: str, code: RejectReason) -> None:
    t = Tenant()
    out = t.feed(ev)
    assert out.status is Status.REJECTED and out.ledger is None
    assert out.rejection is not None and out.rejection.code is code
    assert out.rejection.reason.startswith(code.value + ": ")
    assert t.state is not None
    assert t.state["rejected"] == {code.value: 1}
    assert t.state["months"] == {} and t.state["runs"] == {}
    assert t.feed(ev).status is Status.DUPLICATE  # a retried bad event is one dead letter


def test_usd_currency_and_small_skew_are_fine() -> None:
    t = Tenant()
    assert t.feed(event("a", "1", payload={"currency": " usd "})).status is Status.COUNTED
    assert t.feed(event("b", "1", ts=NOW + timedelta(minutes=4))).status is Status.COUNTED
    assert t.feed(event("c", "1", run=None)).status is Status.COUNTED  # no per-run budget here


def _raw(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": "r1",
        "event_type": "post_agent_call",
        "user_id": "soft-month",
        "run_id": "run-1",
        "timestamp": "2026-11-27T20:00:00Z",
        "source": "s",
        "cost_usd": "0.25",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "code", "text"),
    [
        ({"cost_usd": "-0.01"}, RejectReason.INVALID_COST, "must not be negative"),
        ({"cost_usd": "abc"}, RejectReason.INVALID_COST, "not a decimal number"),
        ({"cost_usd": 0.1}, RejectReason.INVALID_COST, "not a float"),
        ({"cost_usd": "NaN"}, RejectReason.INVALID_COST, "finite"),
        ({"user_id": None}, RejectReason.MISSING_USER_ID, "user_id"),
        ({"run_id": ""}, RejectReason.MISSING_RUN_ID, "run_id"),
        ({"timestamp": "yesterday"}, RejectReason.INVALID_TIMESTAMP, "ISO 8601"),
        ({"event_type": "nope"}, RejectReason.INVALID_EVENT, "event_type"),
    ],
)
def test_parse_event_names_the_problem(changes: dict[str, Any], code: RejectReason, text: str) -> None:
    parsed = parse_event(_raw(**changes))
    assert not isinstance(parsed, HookEvent)
    assert parsed.code is code and text in parsed.message


def test_replay_counts_unparsable_records_as_dead_letters() -> None:
    replay = Replay(CONFIG)
    assert replay.add(_raw(cost_usd="-1")) is Status.REJECTED
    assert replay.add(_raw(user_id=None, event_id="r2")) is Status.REJECTED
    assert replay.add(_raw(event_id="r3")) is Status.COUNTED
    assert replay.rejected == {"invalid_cost": 1, "missing_user_id": 1}
    assert replay.unattributed == {"missing_user_id": 1}
    (row,) = replay.report("2026-11")
    assert row.total_usd == Decimal("0.25") and row.events == 1


def test_record_ids_are_escaped_and_bounded() -> None:
    assert record_id("a|b", "monthly", "x%y") == "a%7Cb|monthly|x%25y"
    long = record_id("u" * 256, "run-cap", "r" * 256, "80", "1.000000")
    assert long.startswith("sha256:") and len(long) <= 256
    assert long == record_id("u" * 256, "run-cap", "r" * 256, "80", "1.000000")


def test_state_holds_no_floats() -> None:
    t = Tenant()
    for i in range(5):
        t.feed(event(f"e{i}", "0.1", user="hard-run"))

    def walk(value: Any) -> None:
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(t.state)


def test_unknown_state_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        apply({"v": 99}, event("e"), CONFIG, NOW)


# -- chargeback ---------------------------------------------------------------------------


def _ledger_and_states() -> tuple[list[CostLedgerEntry], dict[str, Any]]:
    entries: list[CostLedgerEntry] = []
    tenants = {"soft-month": Tenant(), "hard-run": Tenant()}
    feed = [
        ("soft-month", event("a", "0.1")),
        ("soft-month", event("b", "0.2")),
        ("hard-run", event("c", "0.000000001", user="hard-run")),
        ("soft-month", event("d", "3", ts=datetime(2026, 10, 31, 12, tzinfo=UTC))),  # adjustment, see below
    ]
    for i, (user, ev) in enumerate(feed):
        now = datetime(2026, 11, 3, tzinfo=UTC) if i == 3 else NOW
        out = tenants[user].feed(ev, now)
        assert out.ledger is not None
        entries.append(out.ledger)
    return entries, {u: t.state for u, t in tenants.items()}


def test_ledger_and_states_give_the_same_report() -> None:
    entries, states = _ledger_and_states()
    for period in ("2026-11", "2026-10", "2026-11-27", "2026-10-31"):
        from_states = report_from_states(states, period)
        assert from_states == report_from_ledger(entries + entries, period)  # topic repeats count once
    assert [r.user_id for r in report_from_states(states, "2026-11", user_id="hard-run")] == ["hard-run"]
    assert report_from_states(states, "2027-01") == []


def test_report_formats_use_exact_decimal_strings() -> None:
    _, states = _ledger_and_states()
    rows = report_from_states(states, "2026-11")
    table = format_report(rows, "2026-11", "table")
    assert "0.000000001" in table and "0.300000" in table
    assert table.splitlines()[-1].split()[:3] == ["TOTAL", "2026-11", "0.300000001"]
    parsed = list(csv.DictReader(io.StringIO(format_report(rows, "2026-11", "csv"))))
    assert [(r["user_id"], r["total_usd"], r["charges"]) for r in parsed] == [
        ("hard-run", "0.000000001", "1"),
        ("soft-month", "0.300000", "2"),
    ]
    doc = json.loads(format_report(rows, "2026-11", "json"))
    assert doc["total"]["total_usd"] == "0.300000001"
    assert doc["tenants"][1]["charged_usd"] == "0.300000"
    october = json.loads(format_report(report_from_states(states, "2026-10"), "2026-10", "json"))
    assert october["tenants"][0]["adjusted_usd"] == "3.000000"
    assert october["tenants"][0]["adjustments"] == 1
    with pytest.raises(ValueError, match="unknown format"):
        format_report(rows, "2026-11", "xml")  # type: ignore[arg-type]  # the invalid value is the test
