"""What a tenant's ledger remembers besides its totals: the ids of the events it counted
(for dedupe) and its runs (per-run spend and fired marks).

Both grow with the tenant's traffic (every id of the dedupe window, every run of the last
``run_idle_days``), so the live agent keeps them in keys of their own in the cost table
(``streams.cost.tables``) and the tenant's state value stays small. ``TenantLedger`` only
talks to the two protocols below. The implementations here keep everything in memory and in
the state's JSON (``"seen"``, ``"runs"`` and ``"fired"["per_run"]``), exactly as the state has
always looked: the pure ``spend.apply`` and ``streams replay`` use them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

PER_RUN = "per_run"  # BudgetPeriod.PER_RUN.value: the "fired" kind whose marks live with their run


@dataclass
class RunSpend:
    charged: int = 0
    charges: int = 0
    last_arrival: int = 0  # epoch seconds; idle runs are dropped after ``run_idle_days``
    recent: list[str] = field(default_factory=list)
    fired: dict[str, list[str]] = field(default_factory=dict)  # budget name -> this run's fired marks

    def to_json(self) -> dict[str, Any]:
        """The run as the pure state keeps it under ``"runs"`` (its marks go under ``"fired"``)."""
        return {"c": self.charged, "n": self.charges, "last": self.last_arrival, "recent": list(self.recent)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], fired: Mapping[str, Any] | None = None) -> RunSpend:
        return cls(
            int(data["c"]),
            int(data["n"]),
            int(data["last"]),
            [str(i) for i in data["recent"]],
            {str(name): [str(m) for m in marks] for name, marks in (fired or {}).items()},
        )

    def marks_json(self) -> dict[str, list[str]]:
        return {name: list(marks) for name, marks in self.fired.items()}


class SeenIds(Protocol):
    """The ids of the events a tenant counted, by arrival day (UTC), for dedupe."""

    def __contains__(self, event_id: object) -> bool:
        """Whether ``event_id`` was added and has not expired."""
        ...

    def add(self, event_id: str, arrival_day: str) -> None:
        """Remember ``event_id`` (not already contained), which arrived on ``arrival_day``."""
        ...

    def expire(self, through_day: str) -> None:
        """Forget every id that arrived on ``through_day`` or before, as added so far."""
        ...

    def to_json(self) -> dict[str, list[str]]:
        """The state's ``"seen"`` field: the ids by arrival day, or ``{}`` where kept elsewhere."""
        ...


class RunBook(Protocol):
    """A tenant's runs: per-run spend and the marks of the per-run budgets fired for them."""

    def get(self, run_id: str) -> RunSpend | None:
        """The run, or None if unknown or forgotten. Changes count once passed to ``put``."""
        ...

    def put(self, run_id: str, run: RunSpend) -> None:
        """Store ``run`` (new or changed)."""
        ...

    def expire(self, idle_through: int) -> None:
        """Forget every run whose ``last_arrival`` is ``idle_through`` (epoch s) or earlier."""
        ...

    def to_json(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The state's ``"runs"`` field and its ``"fired"["per_run"]`` (None: leave it out)."""
        ...


class MemorySeenIds:
    """Ids in lists by arrival day (the state's ``"seen"``), with a set for lookups."""

    def __init__(self, buckets: Mapping[str, list[str]] | None = None) -> None:
        self.buckets: dict[str, list[str]] = {day: list(ids) for day, ids in (buckets or {}).items()}
        self._ids: set[str] = {i for ids in self.buckets.values() for i in ids}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MemorySeenIds:
        return cls({str(day): [str(i) for i in ids] for day, ids in data.items()})

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str, arrival_day: str) -> None:
        self.buckets.setdefault(arrival_day, []).append(event_id)
        self._ids.add(event_id)

    def expire(self, through_day: str) -> None:
        for day in [d for d in self.buckets if d <= through_day]:
            self._ids.difference_update(self.buckets.pop(day))

    def items(self) -> Iterator[tuple[str, list[str]]]:
        """(arrival day, ids in arrival order), for moving them elsewhere."""
        return iter(self.buckets.items())

    def to_json(self) -> dict[str, list[str]]:
        return {day: list(ids) for day, ids in self.buckets.items()}


class MemoryRuns:
    """Runs in a dict (the state's ``"runs"``); their marks under ``"fired"["per_run"]``."""

    def __init__(self, runs: Mapping[str, RunSpend] | None = None, *, marks_kind: bool = False) -> None:
        self.runs: dict[str, RunSpend] = dict(runs or {})
        # Once a per-run budget fired anything, the state keeps a "per_run" kind (possibly
        # empty) in "fired", as it always has.
        self._marks_kind = marks_kind or any(r.fired for r in self.runs.values())

    @classmethod
    def from_json(cls, runs: Mapping[str, Any], per_run: Mapping[str, Any] | None) -> MemoryRuns:
        marks = per_run or {}
        return cls(
            {str(k): RunSpend.from_json(v, marks.get(k)) for k, v in runs.items()}, marks_kind=per_run is not None
        )

    def get(self, run_id: str) -> RunSpend | None:
        return self.runs.get(run_id)

    def put(self, run_id: str, run: RunSpend) -> None:
        self.runs[run_id] = run
        self._marks_kind = self._marks_kind or bool(run.fired)

    def expire(self, idle_through: int) -> None:
        for run_id in [r for r, spend in self.runs.items() if spend.last_arrival <= idle_through]:
            del self.runs[run_id]

    def items(self) -> Iterator[tuple[str, RunSpend]]:
        return iter(self.runs.items())

    def to_json(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        runs = {k: v.to_json() for k, v in self.runs.items()}
        marks = {k: v.marks_json() for k, v in self.runs.items() if v.fired}
        return runs, (marks if self._marks_kind else None)
