"""Liveness and readiness as a pure state machine; the Faust wiring lives in streams.ops.web.

A *tick* (a Faust timer every few seconds) records whether the consumer is alive and the
broker answers metadata. Liveness fails after ``max_failures`` failed ticks in a row, or
when no tick has completed for ``stale_after`` seconds (a wedged event loop runs no timers,
so a stale tick is how a hung worker shows). Readiness also needs the worker's topics to
exist, every stage started, tables recovered and no rebalance in progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_FAILURES = 3
STALE_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class Tick:
    """What one tick saw. ``error`` is an exception class name, never a message (no data leaks)."""

    consumer_alive: bool
    broker_ok: bool
    missing_topics: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.consumer_alive and self.broker_ok


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {"status": "ok" if self.ok else "failing", "reasons": list(self.reasons)}


@dataclass
class Health:
    max_failures: int = MAX_FAILURES
    stale_after: float = STALE_AFTER
    clock: Callable[[], float] = time.monotonic
    started_at: float = field(default=-1.0)
    last_tick: Tick | None = None
    last_completed_at: float | None = None
    consecutive_failures: int = 0

    def __post_init__(self) -> None:
        if self.started_at < 0:
            self.started_at = self.clock()

    def record(self, tick: Tick) -> None:
        self.last_tick = tick
        self.last_completed_at = self.clock()
        self.consecutive_failures = 0 if tick.ok else self.consecutive_failures + 1

    def liveness(self) -> Verdict:
        reasons = []
        # Before the first tick the start time stands in, so a worker gets stale_after to boot.
        since = self.clock() - (self.last_completed_at if self.last_completed_at is not None else self.started_at)
        if since > self.stale_after:
            reasons.append(f"no health tick completed for {since:.0f} s")
        if self.consecutive_failures >= self.max_failures:
            reasons.append(f"{self.consecutive_failures} consecutive failed health ticks")
            reasons.extend(_tick_reasons(self.last_tick))
        return Verdict(not reasons, tuple(reasons))

    def readiness(self, *, stages_started: bool, tables_recovered: bool, rebalancing: bool) -> Verdict:
        reasons = list(self.liveness().reasons)
        tick = self.last_tick
        if tick is None:
            reasons.append("no health tick yet")
        else:
            reasons.extend(_tick_reasons(tick))
            if tick.missing_topics:
                reasons.append("missing topics: " + ", ".join(sorted(tick.missing_topics)))
        if not stages_started:
            reasons.append("not every stage has started")
        if not tables_recovered:
            reasons.append("tables are still recovering")
        if rebalancing:
            reasons.append("consumer group is rebalancing")
        return Verdict(not reasons, tuple(dict.fromkeys(reasons)))  # de-duplicated, order kept


def _tick_reasons(tick: Tick | None) -> list[str]:
    if tick is None:
        return []
    out = []
    if not tick.consumer_alive:
        out.append("consumer is not running")
    if not tick.broker_ok:
        out.append("broker metadata did not answer" + (f" ({tick.error})" if tick.error else ""))
    return out
