"""Labelled synthetic event streams for detector tests and demos (seeded, deterministic).

``benign`` is noisy but healthy traffic: rates that wander, stray errors, odd slow
calls, events missing fields. Each ``inject_*`` adds one condition to a benign stream
and labels it: the incident type, the scope and the time by which the condition holds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from streams.incidents.detectors import Scope
from streams.models import EventType, HookEvent

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
MODELS = ("model-a", "model-b")
REGIONS = ("us-east", "eu-west")
ERROR_CODES = ("E_RATE", "E_TOOL", "E_PARSE", "E_AUTH", "E_NET")


@dataclass(frozen=True)
class Expected:
    incident_type: str
    scope: Scope
    true_at: datetime


@dataclass
class Scenario:
    name: str
    start: datetime
    end: datetime
    events: list[HookEvent] = field(default_factory=list)
    expected: list[Expected] = field(default_factory=list)

    def sorted_events(self) -> list[HookEvent]:
        return sorted(self.events, key=lambda e: e.timestamp)


class _Maker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def event(self, at: datetime, tenant: str, **fields: object) -> HookEvent:
        self.n += 1
        body: dict[str, object] = {
            "event_id": f"ev-{self.n}",
            "event_type": EventType.POST_AGENT_CALL,
            "user_id": tenant,
            "timestamp": at,
            "source": f"daemon@{tenant}-{self.rng.randint(1, 3)}",
            "model": self.rng.choice(MODELS),
            "region": self.rng.choice(REGIONS),
            "cost_usd": Decimal(self.rng.randint(1_000, 20_000)).scaleb(-6),
            "latency_ms": min(int(self.rng.lognormvariate(6.7, 0.5)), 15_000),
        }
        body.update(fields)
        return HookEvent.model_validate(body)


def benign(seed: int, start: datetime, seconds: int, *, rate: float = 0.5) -> Scenario:
    """Healthy traffic of every tenant, about ``rate`` calls a second each, with noise."""
    mk = _Maker(seed)
    sc = Scenario(f"benign-{seed}", start, start + timedelta(seconds=seconds))
    multiplier = dict.fromkeys(TENANTS, 1.0)
    for second in range(seconds):
        if second % 60 == 0:  # rates wander minute by minute, up to 2.5x
            multiplier = {t: mk.rng.uniform(0.5, 2.5) for t in TENANTS}
        for tenant in TENANTS:
            for _ in range(_poisson(mk.rng, rate * multiplier[tenant])):
                at = start + timedelta(seconds=second + mk.rng.random())
                roll = mk.rng.random()
                if roll < 0.02:
                    sc.events.append(
                        mk.event(at, tenant, event_type=EventType.AGENT_ERROR, error_code=mk.rng.choice(ERROR_CODES))
                    )
                elif roll < 0.03:  # incomplete events: no model, no latency, no cost
                    sc.events.append(mk.event(at, tenant, model=None, latency_ms=None, cost_usd=None))
                elif roll < 0.0303:  # a rare slow call is not a regression
                    sc.events.append(mk.event(at, tenant, latency_ms=45_000))
                else:
                    sc.events.append(mk.event(at, tenant))
                if mk.rng.random() < 0.3:  # tool calls carry no cost or latency
                    sc.events.append(mk.event(at, tenant, event_type=EventType.TOOL_CALL, cost_usd=None))
    return sc


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method; lam is small here.
    limit, k, p = pow(2.718281828459045, -lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def inject_repeat_error(sc: Scenario, at_second: int, *, tenant: str, code: str, count: int, min_count: int) -> None:
    """``count`` errors ``code`` for one tenant, one a second from ``at_second``."""
    mk = _Maker(5)
    mk.n = 10_000_000
    for i in range(count):
        at = sc.start + timedelta(seconds=at_second + i)
        sc.events.append(mk.event(at, tenant, event_type=EventType.AGENT_ERROR, error_code=code))
    true_at = sc.start + timedelta(seconds=at_second + min_count - 1)
    sc.expected.append(Expected("repeat_error", (("error_code", code), ("tenant", tenant)), true_at))


def inject_cost_spike(sc: Scenario, at_second: int, *, tenant: str, usd_per_second: str, seconds: int) -> None:
    """One tenant spends ``usd_per_second`` for ``seconds`` seconds (one call a second)."""
    mk = _Maker(7)
    mk.n = 20_000_000
    for i in range(seconds):
        at = sc.start + timedelta(seconds=at_second + i)
        sc.events.append(mk.event(at, tenant, cost_usd=Decimal(usd_per_second)))
    sc.expected.append(Expected("cost_spike", (("tenant", tenant),), sc.start + timedelta(seconds=at_second)))


def inject_volume_spike(
    sc: Scenario,
    at_second: int,
    *,
    tenant: str,
    per_second: int,
    seconds: int,
    factor: int,
    window: int,
    baseline: int,
    min_calls: int,
) -> None:
    """One tenant calls ``per_second`` times a second at no cost (so only volume moves).

    The label comes from exact sliding windows over the raw events: the first second at
    which the window count reaches ``factor`` x the baseline count and ``min_calls``.
    """
    mk = _Maker(11)
    mk.n = 30_000_000
    for i in range(seconds * per_second):
        at = sc.start + timedelta(seconds=at_second + i / per_second)
        sc.events.append(mk.event(at, tenant, cost_usd=Decimal(0)))
    calls = [
        (e.timestamp - sc.start).total_seconds()
        for e in sc.events
        if e.user_id == tenant and e.event_type in (EventType.POST_AGENT_CALL, EventType.AGENT_ERROR)
    ]
    start = at_second - window
    base = sum(1 for t in calls if start - baseline <= t < start) / baseline * window
    for second in range(at_second, at_second + seconds):
        current = sum(1 for t in calls if second - window < t <= second)
        if current >= min_calls and current >= factor * base:
            sc.expected.append(Expected("volume_spike", (("tenant", tenant),), _at(sc, second)))
            return
    raise ValueError("the injected volume never reaches the threshold")


def inject_latency_regression(
    sc: Scenario, at_second: int, *, model: str, region: str, latency_ms: int, seconds: int, true_after: int
) -> None:
    """Every call of ``model`` in ``region`` from ``at_second`` is slow, plus two slow calls a second.

    ``true_after`` is the delay (consecutive ticks x tick) before the condition holds.
    """
    sc.events = [
        e.model_copy(update={"latency_ms": latency_ms})
        if e.model == model and e.region == region and e.latency_ms is not None and e.timestamp >= _at(sc, at_second)
        else e
        for e in sc.events
    ]
    mk = _Maker(13)
    mk.n = 40_000_000
    for i in range(seconds * 2):
        at = sc.start + timedelta(seconds=at_second + i / 2)
        sc.events.append(mk.event(at, "acme", model=model, region=region, latency_ms=latency_ms))
    true_at = _at(sc, at_second + 1 + true_after)
    sc.expected.append(Expected("latency_regression_p99", (("model", model),), true_at))
    sc.expected.append(Expected("latency_regression_p99", (("model", model), ("region", region)), true_at))


def _at(sc: Scenario, second: float) -> datetime:
    return sc.start + timedelta(seconds=second)
