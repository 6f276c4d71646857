"""Simulated agent daemons: a realistic mix of hook events, tenants, models, costs, errors and PII.

Each simulated run is pre_agent_call -> tool calls / memory accesses -> post_agent_call
(with exact cost from token counts), sometimes an agent_error; a scheduler emits
swarm_tick_complete. Events go through a ``HookBus`` into ``Publisher.hook_handler``,
exactly as a daemon would wire it.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO

TENANTS = ["acme-corp", "globex", "initech", "umbrella", "hooli", "stark-ind", "wayne-ent", "tyrell"]
REGIONS = ["us-east", "us-west", "eu-central"]
# USD per million tokens (input, output): exact decimals.
MODELS: dict[str, tuple[Decimal, Decimal]] = {
    "claude-sonnet-4-5": (Decimal("3"), Decimal("15")),
    "claude-haiku-4-5": (Decimal("1"), Decimal("5")),
    "gpt-4o-2024-08-06": (Decimal("2.5"), Decimal("10")),
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.6")),
}
TOOLS = ["crm_lookup", "web_search", "sql_query", "send_email", "calendar", "jira_create"]
ERRORS = ["rate_limit_error", "overloaded_error", "timeout", "tool_failed", "context_length_exceeded"]
FIRST = ["Chloe", "Dylan", "Wesley", "Maria", "Arjun", "Sofia", "Liam", "Mei", "Omar", "Grace"]
LAST = ["Sanford", "Schwartz", "Jones", "Garcia", "Patel", "Rossi", "Nguyen", "Chen", "Haddad", "Okafor"]
_MILLION = Decimal(1_000_000)


@dataclass
class SimConfig:
    events: int = 500
    rate: float = 50.0
    tenants: int = 4
    seed: int | None = None
    pii_rate: float = 0.2
    error_burst: bool = False
    bad_rate: float = 0.0


def _pii(rng: random.Random) -> str:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    email = f"{name.split(maxsplit=1)[0].lower()}.{rng.randint(1, 99)}@example.com"
    phone = f"+1 ({rng.randint(200, 989)}) {rng.randint(200, 989)}-{rng.randint(1000, 9999)}"
    card = "4111 1111 1111 1111"
    key = "sk-ant-api03-" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(40)) + "AA"
    return rng.choice(
        [
            f"Customer {name} asked to update the email to {email}",
            f"Call {name} back at {phone} about order ORD-2026-{rng.randint(100000, 999999)}",
            f"Charge card {card} for the renewal, contact {email}",
            f"Use ANTHROPIC_API_KEY={key} for the staging run",
            f"My name is {name} and my SSN is {rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        ]
    )


def _clean_text(rng: random.Random) -> str:
    return rng.choice(
        [
            "Summarize the open tickets for sprint 42",
            "Draft release notes for v2.3.1 (commit 9f8e7d6)",
            "Find flights to Lisbon next Tuesday under 400 EUR",
            "Refactor the retry loop in worker-7f9c8d-x2x9z",
            "Compare Q3 revenue across regions",
        ]
    )


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.tenants = TENANTS[: max(1, min(config.tenants, len(TENANTS)))]
        self.stats: Counter[str] = Counter()

    def _base(self, tenant: str, run_id: str, event_type: str, ts: datetime) -> dict[str, Any]:
        return {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "event_type": event_type,
            "user_id": tenant,
            "run_id": run_id,
            "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "source": f"kairos@host-{self.rng.randint(1, 4)}",
            "region": self.rng.choice(REGIONS),
        }

    def _text(self) -> str:
        if self.rng.random() < self.config.pii_rate:
            self.stats["with_pii"] += 1
            return _pii(self.rng)
        return _clean_text(self.rng)

    def run_events(self, tenant: str, ts: datetime) -> Iterator[dict[str, Any]]:
        rng = self.rng
        run_id = f"run-{rng.randint(1000, 9999)}"
        model = rng.choice(list(MODELS))
        prompt = self._text()
        yield {
            **self._base(tenant, run_id, "pre_agent_call", ts),
            "model": model,
            "payload": {"prompt": prompt},
        }
        for _ in range(rng.randint(0, 2)):
            tool = rng.choice(TOOLS)
            yield {
                **self._base(tenant, run_id, "tool_call", ts),
                "payload": {"tool": tool, "args": {"query": self._text()}},
            }
        if rng.random() < 0.3:
            yield {
                **self._base(tenant, run_id, "memory_access", ts),
                "payload": {"op": rng.choice(["read", "write"]), "key": f"mem/{tenant}/{run_id}"},
            }
        if rng.random() < 0.05:
            code = rng.choice(ERRORS)
            yield {
                **self._base(tenant, run_id, "agent_error", ts),
                "model": model,
                "error_code": code,
                "error_message": f"{code} after {rng.randint(100, 90000)} ms",
            }
            return
        tokens_in, tokens_out = rng.randint(200, 20000), rng.randint(50, 4000)
        price_in, price_out = MODELS[model]
        cost = (tokens_in * price_in + tokens_out * price_out) / _MILLION
        yield {
            **self._base(tenant, run_id, "post_agent_call", ts),
            "model": model,
            "cost_usd": str(cost),
            "latency_ms": int(rng.lognormvariate(7.0, 0.5)),
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "payload": {"completion": self._text()},
        }

    def events(self) -> Iterator[dict[str, Any]]:
        produced = 0
        burst_tenant = self.tenants[0]
        burst_done = False
        while self.config.events == 0 or produced < self.config.events:
            now = datetime.now(UTC)
            if self.config.error_burst and not burst_done and produced >= self.config.events // 3:
                burst_done = True  # once, at the first step past a third of the run
                for _ in range(60):
                    event = {
                        **self._base(burst_tenant, "run-burst", "agent_error", now),
                        "model": "claude-sonnet-4-5",
                        "error_code": "overloaded_error",
                        "error_message": "upstream overloaded, retrying",
                    }
                    produced += 1
                    yield event
            if produced % 50 == 0:
                yield {**self._base("_scheduler", None, "swarm_tick_complete", now), "run_id": None}  # type: ignore[arg-type]  # ticks belong to no run
                produced += 1
            for event in self.run_events(self.rng.choice(self.tenants), now + timedelta(milliseconds=1)):
                produced += 1
                yield event
                if self.config.events and produced >= self.config.events:
                    return

    def bad_event(self) -> bytes:
        """Malformed input as a buggy daemon might send it."""
        self.stats["malformed"] += 1
        kind = self.rng.choice(["json", "field", "type", "cost"])
        if kind == "json":
            return b'{"event_id": "broken", "event_type": '
        if kind == "field":
            return json.dumps({"event_id": str(uuid.uuid4()), "event_type": "tool_call"}).encode()
        base = self._base(self.rng.choice(self.tenants), "run-bad", "post_agent_call", datetime.now(UTC))
        if kind == "type":
            base["event_type"] = "post_agent_cal"
        else:
            base["cost_usd"] = "-0.50"
        return json.dumps(base).encode()


def run_simulation(
    config: SimConfig,
    *,
    bootstrap: str | None = None,
    topic: str = "hook.events.raw",
    out: TextIO | None = None,
) -> int:
    sim = Simulator(config)
    if out is not None:
        for event in sim.events():
            out.write(json.dumps(event) + "\n")
        return 0
    assert bootstrap is not None
    return asyncio.run(_publish(sim, bootstrap, topic))


async def _publish(sim: Simulator, bootstrap: str, topic: str) -> int:
    from streams.kafka import producer
    from streams.publisher import HookBus, Publisher

    config = sim.config
    publisher = Publisher(bootstrap, topic)
    raw = producer(bootstrap)  # for the malformed share only: bypasses validation on purpose
    await publisher.start()
    await raw.start()
    bus = HookBus()
    for event_type in (
        "pre_agent_call",
        "post_agent_call",
        "tool_call",
        "memory_access",
        "agent_error",
        "swarm_tick_complete",
    ):
        bus.on(event_type, publisher.hook_handler)
    started = time.monotonic()
    sent = 0
    try:
        for event in sim.events():
            # Every 1/bad_rate-th event, so a short demo run always shows some.
            if config.bad_rate and sent % max(1, round(1 / config.bad_rate)) == round(1 / config.bad_rate) // 2:
                await raw.send(topic, sim.bad_event(), key=b"malformed")
            await bus.emit(event["event_type"], event)
            sent += 1
            sim.stats[event["event_type"]] += 1
            if config.rate > 0:
                delay = started + sent / config.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        await publisher.flush()
        await raw.flush()
    finally:
        await publisher.stop()
        await raw.stop()
    mix = ", ".join(f"{k}={v}" for k, v in sorted(sim.stats.items()))
    print(
        f"simulated {sent} events from {len(sim.tenants)} tenants in {time.monotonic() - started:.1f} s ({mix}); "
        f"published {publisher.sent}, failed {publisher.failed}",
        file=sys.stderr,
    )
    return 0 if publisher.failed == 0 else 1
