"""The cost table with ids and runs in keys of their own (``streams.cost.tables``).

The table is a dict here (the agent needs only MutableMapping semantics from the Faust
table); ``Changelog`` also records every write in order, like the changelog topic, so a
crash can be replayed as "a prefix of the writes survived". The live path is what the agent
does per event: ``TenantTables.open``, ``ledger.apply``, records out, ``commit``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from streams.cost import tables
from streams.cost.budgets import parse_budgets
from streams.cost.chargeback import report_from_states
from streams.cost.spend import Outcome, Status, apply
from streams.cost.tables import NS, TenantTables, state_key, tenant_of
from streams.models import HookEvent

# Short windows, so a few days of traffic expire ids and runs many times over.
CONFIG = parse_budgets(
    """
accounting: {grace_hours: 48, dedupe_window_hours: 30, max_future_skew_seconds: 300, keep_days: 2, run_idle_days: 1}
tenants:
  ny:
    timezone: America/New_York
    budgets:
      - {name: run-cap, period: per_run, limit_usd: "2", hard_kill: true}
      - {name: monthly, period: monthly, limit_usd: "40", thresholds: [50, 80, 100]}
  ber:
    timezone: Europe/Berlin
    budgets: [{period: daily, limit_usd: "3", hard_kill: true, thresholds: [50, 100]}]
  "a|b%c":
    budgets: [{period: monthly, limit_usd: "5", hard_kill: true}]
""",
    "tables-test",
)
START = datetime(2026, 10, 29, 0, 0, tzinfo=UTC)
USERS = ("ny", "ber", "a|b%c", "\x00nul")


class Changelog(MutableMapping[str, Any]):
    """A dict of JSON values that logs each write like a changelog topic (None: deleted)."""

    def __init__(self, writes: list[tuple[str, Any]] | None = None) -> None:
        self.data: dict[str, Any] = {}
        self.writes: list[tuple[str, Any]] = []
        for key, value in writes or []:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
            self.writes.append((key, value))

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        value = json.loads(json.dumps(value))  # stored as JSON, like Faust's changelog
        self.data[key] = value
        self.writes.append((key, value))

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.writes.append((key, None))

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def restored(self, upto: int | None = None) -> Changelog:
        """What a replacement worker recovers from the first ``upto`` writes (all: a restart)."""
        return Changelog(json.loads(json.dumps(self.writes[:upto])))

    def side_keys(self, user: str) -> set[str]:
        prefix = state_key(user) if user.startswith(NS) else NS + user.replace("%", "%25").replace("|", "%7C")
        return {k for k in self.data if k.startswith(prefix + "|")}


def live_feed(table: MutableMapping[str, Any], event: HookEvent, now: datetime) -> Outcome:
    """The cost agent's steps for one event, on ``table``."""
    tenant = TenantTables.open(table, event.user_id)
    outcome = tenant.ledger.apply(event, CONFIG, now)
    if outcome.status not in (Status.DUPLICATE, Status.IGNORED):
        tenant.commit()
    return outcome


def ev(event_id: str, user: str = "ny", cost: str | None = "0.10", run: str | None = "r1", **extra: Any) -> HookEvent:
    return HookEvent(
        event_id=event_id,
        event_type="post_agent_call",
        user_id=user,
        run_id=run,
        timestamp=extra.pop("ts", START),
        source="test@host",
        cost_usd=cost,
        **extra,
    )


def state_of(table: Changelog, user: str) -> dict[str, Any]:
    value = table.data[state_key(user)]
    assert isinstance(value, dict)
    return value


# -- dedupe and expiry -------------------------------------------------------------------


def test_duplicates_are_recognised_across_days_and_restarts() -> None:
    table = Changelog()
    assert live_feed(table, ev("e1"), START).status is Status.COUNTED
    assert live_feed(table, ev("e2", ts=START + timedelta(hours=20)), START + timedelta(hours=20)).status is (
        Status.COUNTED
    )
    table = table.restored()
    # e1 arrived on Oct 29: remembered until Oct 30 + 30 h; a retry the next day is a duplicate.
    assert live_feed(table, ev("e1", cost="0.70"), START + timedelta(hours=40)).status is Status.DUPLICATE
    assert live_feed(table, ev("e2"), START + timedelta(hours=41)).status is Status.DUPLICATE
    months = state_of(table, "ny")["months"]
    assert months == {"2026-10": {"c": 200000000, "n": 2, "ac": 0, "an": 0}}
    # The state itself holds no ids and no runs.
    assert state_of(table, "ny")["seen"] == {} and state_of(table, "ny")["runs"] == {}


def test_expired_ids_count_again_and_their_keys_are_deleted() -> None:
    table = Changelog()
    for i in range(40):
        live_feed(table, ev(f"old-{i}", run=f"r{i}"), START + timedelta(minutes=i))
    old_keys = {k for k in table.side_keys("ny") if "|s|old-" in k}
    assert len(old_keys) == 40
    # Oct 29's ids expire at Oct 30 00:00 + 30 h; each commit then deletes a few of their keys.
    late = START + timedelta(days=2, hours=7)
    live_feed(table, ev("new-0", ts=late, run="r-new"), late)  # the hourly prune comes first
    assert live_feed(table, ev("old-0", ts=late), late).status is Status.COUNTED  # forgotten: counts again
    for i in range(1, 10):
        live_feed(table, ev(f"new-{i}", ts=late, run="r-new"), late + timedelta(minutes=i))
    keys = table.side_keys("ny")
    assert not {k for k in keys if "|s|old-" in k} - {f"{NS}ny|s|old-0"}  # only the id that came back
    log_entries = [table.data[k] for k in keys if "|i|" in k]
    assert sorted(e[0] for e in log_entries) == sorted(["old-0", *(f"new-{i}" for i in range(10))])
    assert state_of(table, "ny")["tables"]["gc"] == []
    # The id that came back is remembered under its new number, not deleted with its old day.
    assert live_feed(table, ev("old-0", ts=late), late + timedelta(hours=1)).status is Status.DUPLICATE


def test_idle_runs_are_forgotten_with_their_marks_and_keys() -> None:
    table = Changelog()
    for i in range(3):  # run-cap is 2 USD: the third call crosses it
        out = live_feed(table, ev(f"k{i}", cost="0.9", run="big"), START + timedelta(minutes=i))
    assert [k.kill_id for k in out.kills] == ["ny|run-cap|big|kill|2.000000"]
    assert live_feed(table, ev("k3", cost="0.9", run="big"), START + timedelta(minutes=5)).kills == ()
    assert f"{NS}ny|r|big" in table.data
    # Idle for a day: forgotten at the hourly prune, its keys at the next one.
    t = START + timedelta(days=1, hours=1)
    for i in range(3):
        live_feed(table, ev(f"other-{i}", run="other", ts=t), t + timedelta(hours=i))
    keys = table.side_keys("ny")
    assert not {k for k in keys if "|r|big" in k}
    assert {table.data[k][0] for k in keys if "|j|" in k} == {"other"}  # one entry per arrival hour
    # Its per-run spend and kill mark went with it: the run starts afresh.
    out = live_feed(table, ev("k9", cost="2", run="big", ts=t + timedelta(hours=4)), t + timedelta(hours=4))
    assert [k.kill_id for k in out.kills] == ["ny|run-cap|big|kill|2.000000"]


def test_the_state_stays_small_however_many_events() -> None:
    table = Changelog()
    sizes = []
    for i in range(3000):
        now = START + timedelta(seconds=20 * i)
        live_feed(table, ev(f"e{i}", cost="0.000001", run=f"run-{i}", ts=now), now)
        if i in (300, 2999):
            sizes.append(len(json.dumps(state_of(table, "ny"))))
    assert sizes[1] < sizes[0] * 1.5, sizes
    assert sizes[1] < 2500
    # Per event: the state and a handful of small keys.
    before = len(table.writes)
    live_feed(table, ev("one-more", cost="0.000001", run="run-x", ts=now), now)
    assert len(table.writes) - before <= 8


def both_paths(items: list[tuple[HookEvent, datetime]], table: Changelog) -> tuple[list[Status], list[Status]]:
    """Statuses of the pure path from scratch and of the live path on ``table``."""
    states: dict[str, dict[str, Any]] = {}
    pure = []
    for event, now in items:
        outcome = apply(states.get(event.user_id), event, CONFIG, now)
        states[event.user_id] = outcome.state
        pure.append(outcome.status)
    return pure, [live_feed(table, event, now).status for event, now in items]


def test_a_day_that_expired_and_came_back_does_not_revive_its_old_ids() -> None:
    day = [(ev(f"old-{i}", run=f"r{i}"), START + timedelta(minutes=i)) for i in range(40)]
    later = START + timedelta(days=2, hours=7)  # expires Oct 29's ids (their keys go 16 per commit)
    back = START + timedelta(hours=23)  # a late arrival on Oct 29 starts that day again
    items = [
        *day,
        (ev("a", ts=later), later),
        (ev("b", ts=back), back),
        (ev("old-39", ts=back), back + timedelta(minutes=1)),  # its keys are not collected yet
        (ev("b", ts=back), back + timedelta(minutes=2)),
    ]
    table = Changelog()
    pure, live = both_paths(items, table)
    assert live == pure and pure[-2:] == [Status.COUNTED, Status.DUPLICATE]


def test_keys_of_a_lost_commit_never_count() -> None:
    table = Changelog()
    live_feed(table, ev("x1"), START)
    stored = len(table.writes)
    live_feed(table, ev("x2"), START)
    crashed = table.restored(len(table.writes) - 1)  # x2's keys survived, its state did not
    assert len(crashed.writes) > stored
    # Whatever comes next (here another id takes x2's number first), x2 is not a duplicate.
    items = [(ev("y"), START + timedelta(minutes=1)), (ev("x2"), START + timedelta(minutes=2))]
    assert both_paths(items, crashed)[1] == [Status.COUNTED, Status.COUNTED]
    crashed = table.restored(len(table.writes) - 1)
    assert live_feed(crashed, ev("x2"), START + timedelta(minutes=3)).status is Status.COUNTED
    assert state_of(crashed, "ny")["months"]["2026-10"]["n"] == 2


# -- older states ------------------------------------------------------------------------


def older_states(events: list[tuple[HookEvent, datetime]]) -> dict[str, dict[str, Any]]:
    """States as the earlier version stored them: ids and runs inside (the pure path)."""
    states: dict[str, dict[str, Any]] = {}
    for event, now in events:
        states[event.user_id] = apply(states.get(event.user_id), event, CONFIG, now).state
    return states


def test_an_older_state_is_moved_into_keys_on_first_touch_without_losing_dedupe() -> None:
    older = older_states([(ev(f"e{i}", cost="0.9", run="big"), START + timedelta(minutes=i)) for i in range(3)])
    assert older["ny"]["seen"] and older["ny"]["runs"] and older["ny"]["fired"]["per_run"]
    table = Changelog()
    table["ny"] = older["ny"]
    # The first touch is a retry of a counted event: still a duplicate, and the state moved.
    assert live_feed(table, ev("e1", cost="0.9", run="big"), START + timedelta(minutes=9)).status is Status.DUPLICATE
    state = state_of(table, "ny")
    assert state["seen"] == {} and state["runs"] == {} and "per_run" not in state["fired"]
    assert {k.removeprefix(f"{NS}ny|s|") for k in table.side_keys("ny") if "|s|" in k} == {"e0", "e1", "e2"}
    assert state["months"] == older["ny"]["months"]
    # The run's spend and its fired kill came along: no second kill, the total goes on.
    out = live_feed(table, ev("e3", cost="0.9", run="big"), START + timedelta(minutes=10))
    assert out.status is Status.COUNTED and out.kills == () and out.alerts == ()
    assert state_of(table, "ny")["months"]["2026-10"]["c"] == 3_600000000
    for i in range(3):
        assert live_feed(table, ev(f"e{i}"), START + timedelta(minutes=11)).status is Status.DUPLICATE


def test_a_crash_during_the_move_leaves_the_older_state_to_move_again() -> None:
    older = older_states([(ev(f"e{i}"), START) for i in range(5)])
    table = Changelog()
    table["ny"] = older["ny"]
    stored = len(table.writes)
    live_feed(table, ev("e9"), START + timedelta(minutes=1))
    writes = table.writes[stored:]
    moved = next(i for i, (key, _) in enumerate(writes) if key == "ny")  # the moved state, after its keys
    assert moved == 5 * 2 + 3 and all(key.startswith(NS) for key, _ in writes[:moved])
    for cut in range(stored, len(table.writes)):  # e9's own state write is the last one
        crashed = table.restored(cut)
        for i in range(5):
            assert live_feed(crashed, ev(f"e{i}"), START + timedelta(minutes=2)).status is Status.DUPLICATE
        assert live_feed(crashed, ev("e9"), START + timedelta(minutes=2)).status is Status.COUNTED
        assert state_of(crashed, "ny")["months"]["2026-10"]["n"] == 6


def test_reports_skip_ids_and_runs_and_name_every_tenant() -> None:
    table = Changelog()
    for user in USERS:
        live_feed(table, ev(f"x-{user}", user=user, cost="1.5"), START)
    assert state_key("\x00nul") != "\x00nul" and "|" not in state_key("\x00nul")
    tenants = [k for k, v in table.items() if tenant_of(k, v) is not None]
    assert len(tenants) == len(USERS)
    rows = report_from_states(dict(table.items()), "2026-10")
    assert sorted(r.user_id for r in rows) == sorted(USERS)
    assert all(r.total_usd == Decimal("1.5") for r in rows)


def test_the_pure_function_refuses_a_table_state() -> None:
    table = Changelog()
    live_feed(table, ev("e1"), START)
    with pytest.raises(ValueError, match="table"):
        apply(state_of(table, "ny"), ev("e2"), CONFIG, START)


# -- equivalence with the pure path --------------------------------------------------------


@dataclass
class Stream:
    """What one path emitted: records by id (every copy), and rejections."""

    ledger: dict[str, list[Any]] = field(default_factory=dict)
    alerts: dict[str, list[Any]] = field(default_factory=dict)
    kills: dict[str, list[Any]] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.statuses.append(outcome.status)
        if outcome.ledger is not None:
            self.ledger.setdefault(outcome.ledger.event_id, []).append(outcome.ledger)
        for alert in outcome.alerts:
            self.alerts.setdefault(alert.alert_id, []).append(alert)
        for kill in outcome.kills:
            self.kills.setdefault(kill.kill_id, []).append(kill)
        if outcome.rejection is not None:
            self.rejected.append(outcome.rejection.code.value)

    def same_records_as(self, pure: Stream) -> None:
        """The same distinct records by id as the pure path (copies aside: at least once).
        An id that comes back after the dedupe window has two ledger entries in both."""
        for mine, theirs in ((self.ledger, pure.ledger), (self.alerts, pure.alerts), (self.kills, pure.kills)):
            assert mine.keys() == theirs.keys()
            for key, copies in mine.items():
                assert {c.model_dump_json() for c in copies} == {c.model_dump_json() for c in theirs[key]}, key


def traffic(seed: int, count: int = 400) -> list[tuple[HookEvent, datetime]]:
    """Arrivals over ~2 weeks: mostly in order, some hours or days late (ids and runs then land
    in days and hours already expired), retries soon and long after, bad events, 4 tenants."""
    rng = random.Random(seed)
    clock = START
    out: list[tuple[HookEvent, datetime]] = []
    for i in range(count):
        clock += timedelta(seconds=rng.choice([5, 60, 600, 3600, 3 * 3600, 9 * 3600]))
        now = clock - timedelta(hours=rng.choice([1, 5, 30, 50])) if rng.random() < 0.08 else clock
        if out and rng.random() < 0.15:  # a retry: soon, or long after the dedupe window
            event = rng.choice(out[-40:] if rng.random() < 0.7 else out)[0]
            out.append((event, now))
            continue
        user = rng.choice(USERS)
        bad = rng.choice([None] * 12 + ["eur", "no_cost", "no_run", "future"])
        run = None if bad == "no_run" else rng.choice(["r1", "r2", "r3", "r4", f"r{i}"])
        ts = now - timedelta(seconds=rng.choice([0, 30, 4000, 50 * 3600, 9 * 86400]))
        if bad == "future":
            ts = now + timedelta(hours=1)
        event = HookEvent(
            event_id=f"{user}-{i}" if rng.random() < 0.8 else f"id|{i}%",
            event_type="post_agent_call",
            user_id="ny" if bad == "no_run" else user,
            run_id=run,
            timestamp=ts,
            source="sim@host",
            cost_usd=None if bad == "no_cost" else Decimal(rng.randint(0, 900_000_000)).scaleb(-9),
            payload={"currency": "EUR"} if bad == "eur" else {},
        )
        out.append((event, now))
    return out


def run_pure(items: list[tuple[HookEvent, datetime]]) -> tuple[Stream, dict[str, dict[str, Any]]]:
    stream, states = Stream(), dict[str, dict[str, Any]]()
    for event, now in items:
        outcome = apply(states.get(event.user_id), event, CONFIG, now)
        states[event.user_id] = outcome.state
        stream.add(outcome)
    return stream, states


def totals(states: Any) -> dict[tuple[str, str], tuple[Decimal, int, Decimal, int]]:
    out = {}
    for key, value in dict(states).items():
        if tenant_of(key, value) is None:
            continue
        for kind in ("months", "days"):
            for period in value[kind]:
                for r in report_from_states({key: value}, period):
                    out[(r.user_id, period)] = (r.charged_usd, r.charges, r.adjusted_usd, r.adjustments)
    return out


def outcomes(outs: list[Outcome]) -> list[tuple[Any, ...]]:
    return [(o.status, o.ledger, o.alerts, o.kills, o.rejection) for o in outs]


@pytest.mark.parametrize("seed", range(16))
def test_the_table_path_equals_the_pure_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if seed % 2:  # expired ids collected one number per commit: keys of expired days linger
        monkeypatch.setattr(tables, "COLLECT_STEP", 1)
    items = traffic(seed)
    pure: list[Outcome] = []
    pure_states: dict[str, dict[str, Any]] = {}
    for event, now in items:
        pure.append(apply(pure_states.get(event.user_id), event, CONFIG, now))
        pure_states[event.user_id] = pure[-1].state
    assert {o.status for o in pure} >= {Status.DUPLICATE, Status.ADJUSTED, Status.REJECTED}
    assert any(o.kills for o in pure)  # the traffic exercises it all
    # Live, with restarts (a worker recovering the table from its changelog), after a first
    # part counted by the earlier version (states under the raw user id, ids and runs inside).
    rng = random.Random(seed)
    split = rng.randrange(len(items) // 3)
    table = Changelog()
    for user, state in older_states(items[:split]).items():
        table[user] = state
    live: list[Outcome] = []
    for event, now in items[split:]:
        if rng.random() < 0.05:
            table = table.restored()
        live.append(live_feed(table, event, now))
    # Event by event: the same status, ledger entry, alerts, kills and rejection.
    assert outcomes(live) == outcomes(pure[split:])
    assert totals(table) == totals(pure_states)
    for user, state in pure_states.items():  # and the same totals and marks, field by field
        mine = state_of(table, user)
        assert (mine["months"], mine["days"], mine["rejected"]) == (state["months"], state["days"], state["rejected"])
        assert (mine["fired"], mine["pruned"], mine["hw"]) == (
            {k: v for k, v in state["fired"].items() if k != "per_run"},
            state["pruned"],
            state["hw"],
        )
    assert not {k for k in table if tenant_of(k, table[k]) is None and not k.startswith(NS)}  # older keys gone


@pytest.mark.parametrize("seed", range(12))
def test_the_table_path_emits_the_same_records(seed: int) -> None:
    items = traffic(seed + 100)
    pure, _ = run_pure(items)
    table, live = Changelog(), Stream()
    for event, now in items:
        live.add(live_feed(table, event, now))
    live.same_records_as(pure)
    assert live.rejected == pure.rejected


@pytest.mark.parametrize("seed", range(25))
def test_crashes_lose_nothing_and_count_nothing_twice(seed: int) -> None:
    """A crash keeps a prefix of the changelog since the last offset commit (Faust flushes the
    producer before it commits) and the worker replays the events since that commit."""
    items = traffic(seed + 200, count=250)
    pure, pure_states = run_pure(items)
    rng = random.Random(seed)
    table, live = Changelog(), Stream()
    committed_event, committed_write = 0, 0
    i = 0
    crashes = 0
    while i < len(items):
        event, now = items[i]
        live.add(live_feed(table, event, now))  # records out (acknowledged), then the writes
        i += 1
        if rng.random() < 0.3:
            committed_event, committed_write = i, len(table.writes)
        elif rng.random() < 0.1 and crashes < 8:
            crashes += 1
            table = table.restored(rng.randint(committed_write, len(table.writes)))
            i = committed_event
    assert crashes
    # At least once: every record the pure path emitted, each copy equal; and exact totals.
    live.same_records_as(pure)
    assert totals(table) == totals(pure_states)


def test_views_report_only_the_partitions_a_worker_owns_now() -> None:
    """A memory-store table keeps the rows of partitions a rebalance took away, frozen; two
    workers must never both report a tenant (the scale-out test saw stale totals win)."""
    from aiokafka.partitioner import DefaultPartitioner

    from streams.cost.chargeback import owned_states

    table = Changelog()
    now = START + timedelta(minutes=1)
    users = [f"tenant-{n}" for n in range(12)]
    for n, user in enumerate(users):
        live_feed(table, ev(f"e{n}", user=user), now)
    everything = list(range(6))
    partition = {u: DefaultPartitioner()(u.encode(), everything, everything) for u in users}
    mine = {partition[users[0]], partition[users[1]]}
    owned = owned_states(dict(table.items()), mine, 6)
    assert set(owned) == {state_key(u) for u in users if partition[u] in mine}
    assert all(tenant_of(k, v) is not None for k, v in owned.items())  # no id, run or log keys
    assert len({partition[u] for u in users}) > len(mine)  # some tenants were left out
    rows = report_from_states(owned, f"{START:%Y-%m}")
    assert {r.user_id for r in rows} == {u for u in users if partition[u] in mine}
