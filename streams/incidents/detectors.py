"""The four detectors over sanitized events: bucketed counters in JSON, evaluated on a tick.

State is a ``MutableMapping[str, dict]`` (a Faust Table in production, a dict in tests).
Each entry is one ring of time buckets for one (detector, scope)::

    {"d": "repeat_error", "s": {"tenant": "acme", "error_code": "E42"},
     "first": 1764273600, "b": {"1764273610": 3, ...}, "streak": 0, "tick": 0}

Entries are always written back with ``state[key] = entry`` because a Faust table only
logs a change to its changelog on assignment, never on an in-place mutation.
Bucket values: an error or call count (int), cost in integer nano-USD (int, never a
float), or DDSketch bins for latency (see ``sketch``). Buckets are keyed by event time;
``tick(now)`` evaluates with the wall clock and drops what has left every window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from streams.incidents import sketch
from streams.incidents.config import (
    CostSpikeConfig,
    DetectorsConfig,
    IncidentType,
    LatencyConfig,
    RepeatErrorConfig,
    VolumeSpikeConfig,
)
from streams.models import HookEvent, IncidentEvidence, format_money

State = MutableMapping[str, Any]
Rows = list[tuple[int, Any]]
AnyConfig = RepeatErrorConfig | CostSpikeConfig | LatencyConfig | VolumeSpikeConfig
Scope = tuple[tuple[str, str], ...]
ScopeFilter = Literal["all", "tenant", "shared"]
NANO = Decimal(1_000_000_000)
_P99 = 0.99


@dataclass(frozen=True)
class Skip:
    """An event a detector could not use, and why (a short, bounded reason for a metric label)."""

    detector: IncidentType
    reason: str


@dataclass(frozen=True)
class Condition:
    """The outcome of evaluating one detector for one scope at one tick."""

    incident_type: IncidentType
    scope: Scope
    active: bool
    observed: str = ""
    threshold: str = ""
    summary: str = ""
    details: dict[str, str] = field(default_factory=dict)

    def evidence(self) -> IncidentEvidence:
        s = dict(self.scope)
        return IncidentEvidence(
            tenant=s.get("tenant"),
            model=s.get("model"),
            region=s.get("region"),
            error_code=s.get("error_code"),
            observed=self.observed,
            threshold=self.threshold,
        )


def entry_key(detector: str, scope: Scope) -> str:
    """The table key of one ring: unambiguous whatever the tenant or model names hold."""
    return json.dumps([detector, [list(p) for p in scope]], separators=(",", ":"), ensure_ascii=False)


def _scope(**parts: str | None) -> Scope:
    return tuple(sorted((k, v) for k, v in parts.items() if v is not None))


def _is_shared(scope: Scope) -> bool:
    return not any(k == "tenant" for k, _ in scope)


def _epoch(ts: datetime) -> float:
    return ts.astimezone(UTC).timestamp()


def _nanos(amount: Decimal) -> int:
    return int(amount * NANO)


def _usd(nanos: int | Decimal) -> str:
    return format_money((Decimal(nanos) / NANO).quantize(Decimal("0.000000001")))


class Detectors:
    """All enabled detectors over one state mapping. Pure: no I/O, no clocks of its own."""

    def __init__(self, config: DetectorsConfig) -> None:
        self.config = config
        d = config.detectors
        self._cfg: dict[IncidentType, AnyConfig] = {
            "repeat_error": d.repeat_error,
            "cost_spike": d.cost_spike,
            "latency_regression_p99": d.latency_regression_p99,
            "volume_spike": d.volume_spike,
        }

    # ------------------------------------------------------------------ observe

    def observe(
        self,
        state: State,
        event: HookEvent,
        *,
        now: datetime | None = None,
        scopes: ScopeFilter = "all",
    ) -> list[Skip]:
        """Count one event into the buckets of every detector that can use it.

        ``scopes="tenant"`` keeps only per-tenant rings, ``"shared"`` only the cross-tenant
        ones (global error counts, total cost, latency per model): with a topic keyed by
        tenant, run "tenant" on it and "shared" on a copy re-keyed to one partition.
        Returns what each detector skipped; a skip is never an error.
        """
        skips: list[Skip] = []
        at = _epoch(event.timestamp)
        if now is not None and abs(_epoch(now) - at) > self.config.max_event_lag_seconds:
            reason = "too_late" if at < _epoch(now) else "in_future"
            return [Skip(name, reason) for name, cfg in self._cfg.items() if cfg.enabled]
        for name, update in self._updates(event):
            cfg = self._cfg[name]
            if not cfg.enabled:
                continue
            if isinstance(update, str):
                skips.append(Skip(name, update))
                continue
            for scope, value in update:
                if scopes != "all" and _is_shared(scope) != (scopes == "shared"):
                    continue
                self._add(state, name, scope, at=at, width=cfg.bucket_seconds, value=value)
        return skips

    def _updates(self, e: HookEvent) -> Iterator[tuple[IncidentType, str | list[tuple[Scope, int | float]]]]:
        d = self.config.detectors
        if e.error_code:
            per: list[tuple[Scope, int | float]] = [(_scope(tenant=e.user_id, error_code=e.error_code), 1)]
            if d.repeat_error.global_min_count is not None:
                per.append((_scope(error_code=e.error_code), 1))
            yield "repeat_error", per
        else:
            yield "repeat_error", "missing_error_code"
        if e.cost_usd is None:
            yield "cost_spike", "missing_cost_usd"
        else:
            nanos = _nanos(e.cost_usd)
            cost: list[tuple[Scope, int | float]] = [(_scope(tenant=e.user_id), nanos)]
            if d.cost_spike.include_total:
                cost.append(((), nanos))
            yield "cost_spike", cost
        if e.latency_ms is None:
            yield "latency_regression_p99", "missing_latency_ms"
        elif not e.model:
            yield "latency_regression_p99", "missing_model"
        else:
            lat: list[tuple[Scope, int | float]] = [(_scope(model=e.model), float(e.latency_ms))]
            if e.region:
                lat.append((_scope(model=e.model, region=e.region), float(e.latency_ms)))
            yield "latency_regression_p99", lat
        if e.event_type in d.volume_spike.event_types:
            yield "volume_spike", [(_scope(tenant=e.user_id), 1)]
        else:
            yield "volume_spike", "not_a_call"

    def _add(self, state: State, name: str, scope: Scope, *, at: float, width: int, value: int | float) -> None:
        key = entry_key(name, scope)
        start = int(at // width) * width
        entry = state.get(key)
        if entry is None:
            entry = {"d": name, "s": dict(scope), "first": start, "b": {}, "streak": 0, "tick": 0}
        entry["first"] = min(int(entry["first"]), start)
        buckets: dict[str, Any] = entry["b"]
        slot = str(start)
        if name == "latency_regression_p99":
            bins = buckets.get(slot) or sketch.empty_bins()
            sketch.add_value(bins, value, self.config.detectors.latency_regression_p99.relative_accuracy)
            buckets[slot] = bins
        else:
            buckets[slot] = int(buckets.get(slot, 0)) + int(value)
        state[key] = entry

    # --------------------------------------------------------------------- tick

    def tick(self, state: State, now: datetime) -> list[Condition]:
        """Evaluate every ring against ``now``; prune old buckets; one Condition per ring.

        Conditions that are not active are returned too, so the tracker can resolve.
        """
        now_s = _epoch(now)
        tick_index = int(now_s // self.config.tick_seconds)
        out: list[Condition] = []
        for key in list(state.keys()):
            entry = state.get(key)
            if not isinstance(entry, dict) or entry.get("d") not in self._cfg:
                continue
            name: IncidentType = entry["d"]
            cfg = self._cfg[name]
            if not cfg.enabled:
                continue
            keep = self._prune(entry, cfg, now_s)
            rows = [(int(k), v) for k, v in entry["b"].items()]
            scope: Scope = tuple(sorted((str(k), str(v)) for k, v in entry["s"].items()))
            if isinstance(cfg, RepeatErrorConfig):
                cond = self._repeat_error(cfg, scope, rows, now_s)
            elif isinstance(cfg, CostSpikeConfig):
                cond = self._cost_spike(cfg, scope, entry, rows, now_s)
            elif isinstance(cfg, LatencyConfig):
                cond = self._latency(cfg, scope, entry, rows, now_s, tick=tick_index)
            else:
                cond = self._volume(cfg, scope, entry, rows, now_s)
            out.append(cond)
            if keep or entry.get("streak"):
                state[key] = entry
            else:
                del state[key]
        return out

    @staticmethod
    def _window_start(cfg: Any, now_s: float) -> int:
        """The start of the oldest bucket inside the sliding window ending now."""
        width = int(cfg.bucket_seconds)
        current = int(now_s // width) * width
        return current - int(cfg.window_seconds) + width

    def _prune(self, entry: dict[str, Any], cfg: Any, now_s: float) -> bool:
        oldest = self._window_start(cfg, now_s) - int(getattr(cfg, "baseline_seconds", 0))
        newest = now_s + self.config.max_event_lag_seconds
        entry["b"] = {k: v for k, v in entry["b"].items() if oldest <= int(k) <= newest}
        return bool(entry["b"])

    @staticmethod
    def _sum(rows: Rows, lo: int, hi: float) -> int:
        return sum(int(v) for k, v in rows if lo <= k < hi)

    def _repeat_error(self, cfg: RepeatErrorConfig, scope: Scope, rows: Rows, now_s: float) -> Condition:
        shared = _is_shared(scope)
        limit = cfg.global_min_count if shared else cfg.min_count
        n = self._sum(rows, self._window_start(cfg, now_s), math.inf)
        active = limit is not None and n >= limit
        code = dict(scope).get("error_code", "?")
        who = "all tenants" if shared else f"tenant {dict(scope).get('tenant')}"
        return Condition(
            "repeat_error",
            scope,
            active,
            observed=f"{n} errors in {cfg.window_seconds}s",
            threshold=f">= {limit} in {cfg.window_seconds}s",
            summary=f"error {code} repeated {n} times in {cfg.window_seconds}s ({who})",
            details={"count": str(n)},
        )

    def _baseline(
        self, cfg: CostSpikeConfig | VolumeSpikeConfig, entry: dict[str, Any], rows: Rows, now_s: float
    ) -> tuple[int, int, Decimal, int, Decimal] | None:
        """(window sum, baseline sum, window span s, baseline span s) or None without history."""
        ws = self._window_start(cfg, now_s)
        span = min(cfg.baseline_seconds, ws - int(entry["first"]))
        if span < cfg.min_history_seconds:
            return None
        current = self._sum(rows, ws, math.inf)
        base = self._sum(rows, ws - cfg.baseline_seconds, ws)
        window_span = Decimal(str(max(now_s - ws, 1.0)))
        return current, base, window_span, span, Decimal(base) / Decimal(span)

    def _cost_spike(
        self, cfg: CostSpikeConfig, scope: Scope, entry: dict[str, Any], rows: Rows, now_s: float
    ) -> Condition:
        tenant = dict(scope).get("tenant")
        who = f"tenant {tenant}" if tenant else "all tenants"
        got = self._baseline(cfg, entry, rows, now_s)
        if got is None:
            return Condition("cost_spike", scope, False, summary="no baseline yet")
        current, _base, window_span, _span, base_rate = got
        # A floor on the baseline: a silent tenant's zero rate would make any spend infinite.
        floor = _nanos(cfg.min_baseline_cost_usd) / Decimal(cfg.baseline_seconds)
        base_rate = max(base_rate, floor)
        rate = Decimal(current) / window_span
        ratio = (rate / base_rate).quantize(Decimal("0.01"))
        active = current >= _nanos(cfg.min_window_cost_usd) and rate > cfg.factor * base_rate
        per_window = base_rate * cfg.window_seconds
        return Condition(
            "cost_spike",
            scope,
            active,
            observed=f"${_usd(current)} in {cfg.window_seconds}s ({ratio}x baseline)",
            threshold=f"> {cfg.factor}x baseline (${_usd(per_window.to_integral_value())} per "
            f"{cfg.window_seconds}s) and >= ${format_money(cfg.min_window_cost_usd)}",
            summary=f"cost spike: {ratio}x the baseline rate ({who})",
            details={"ratio": str(ratio), "window_cost_usd": _usd(current)},
        )

    def _latency(
        self, cfg: LatencyConfig, scope: Scope, entry: dict[str, Any], rows: Rows, now_s: float, *, tick: int
    ) -> Condition:
        ws = self._window_start(cfg, now_s)
        parts = [v for k, v in rows if k >= ws]
        n = sum(sketch.count(p) for p in parts)
        p99 = sketch.quantile(parts, _P99, cfg.relative_accuracy) if n else None
        breach = p99 is not None and n >= cfg.min_samples and p99 > cfg.threshold_ms
        # Count each tick once, so an extra evaluation at the same tick does not advance it.
        if int(entry.get("tick", 0)) != tick:
            entry["tick"] = tick
            entry["streak"] = int(entry.get("streak", 0)) + 1 if breach else 0
        elif not breach:
            entry["streak"] = 0
        streak = int(entry["streak"])
        where = ", ".join(f"{k} {v}" for k, v in scope)
        shown = "n/a" if p99 is None else f"{p99:.0f} ms"
        return Condition(
            "latency_regression_p99",
            scope,
            streak >= cfg.consecutive_ticks,
            observed=f"p99 {shown} over {n} calls, {streak} consecutive ticks",
            threshold=f"> {cfg.threshold_ms} ms for {cfg.consecutive_ticks} ticks (min {cfg.min_samples} calls)",
            summary=f"p99 latency {shown} above {cfg.threshold_ms} ms ({where})",
            details={"p99_ms": shown, "samples": str(n)},
        )

    def _volume(
        self, cfg: VolumeSpikeConfig, scope: Scope, entry: dict[str, Any], rows: Rows, now_s: float
    ) -> Condition:
        tenant = dict(scope).get("tenant")
        got = self._baseline(cfg, entry, rows, now_s)
        if got is None:
            return Condition("volume_spike", scope, False, summary="no baseline yet")
        current, _base, window_span, _span, base_rate = got
        expected = (base_rate * window_span).quantize(Decimal("0.1"))
        active = current >= cfg.min_calls and Decimal(current) >= cfg.factor * expected
        return Condition(
            "volume_spike",
            scope,
            active,
            observed=f"{current} calls in {cfg.window_seconds}s",
            threshold=f">= {cfg.factor}x baseline ({expected} calls expected) and >= {cfg.min_calls}",
            summary=f"call volume {current} is {cfg.factor}x+ the baseline {expected} (tenant {tenant})",
            details={"calls": str(current), "expected": str(expected)},
        )
