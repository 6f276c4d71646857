#!/usr/bin/env python3
"""Load test of the whole pipeline on the real broker: sanitize -> cost/budgets -> incidents.

The stated expected peak is 25 events/s: a team running about 100 agents at once, each
emitting a hook event about every 4 s (pre/post agent call, tool calls, memory accesses
averaged over a run). The test offers ``--peak x --multiplier`` events/s (default 250) for
``--seconds``, paced per 100 ms tick, through the daemon path (``streams.publisher.Publisher``:
validated, Avro, idempotent producer with acks=all, keyed by user_id) to the raw topic, with
one worker process per stage (``streams worker --only sanitize|cost|incidents``, as in
docker-compose.yml) on fresh prefixed topics, each worker ready (``/ready``) before anything
is published.

Traffic: the simulator's agent runs (``Simulator.run_events``: calls with exact Decimal-string
costs, tool calls, memory accesses, 5 % agent errors, 20 % of free texts with PII) over
``--tenants`` tenants, a scheduler tick every 50 events, and an error burst every 10 s (the
first at 2 s): one tenant sends ``repeat_error.min_count`` (20) agent errors of one code.
Each burst has its own error code, so each is its own fingerprint (one incident each) and its
20th event is the one that completes the threshold (no other event carries that code).

Measured: publish time (``time.time()`` when the event is handed to the publisher) of each
event id; the first arrival of each event id on the sanitized topic as observed by this
process's consumer (and, second figure, the record's Kafka CreateTime, which the sanitize
worker's producer stamps when it queues the record); the first ``triggered`` incident of each
burst's fingerprint as observed by the same consumer, from the publish time of the burst's
20th event. The detectors file of the run ticks every second, so incident latency includes up
to one tick. Throughput: offered and achieved publish rate, sanitized and counted rates, and
the drain time after publishing stops (until every event is sanitized and every cost counted).

Checks (exit status 1 when one fails): every event sanitized once, no dead letter, no
pattern PII (e-mail, phone, card, API key, SSN) left in a sanitized record and every such
event vaulted; the cost ledger's distinct event ids == the cost events published, each with
its published cost; ``streams chargeback`` (live, from the cost worker's ``/chargeback``) per
tenant == the Decimal sum of what was published; the budget governor holds no surprise: every
tenant but one has budgets far above what the run spends (no alert, no kill), and one tenant has
a hard monthly limit equal to its spend at its middle cost event: exactly one kill id, at that
event, and its 80 % and 100 % alerts at the events computed beforehand; every burst raised one
repeat_error incident, and no other incident was raised.

Topics, Faust's internal topics and the consumer groups are deleted at the end (as
``stage_bench.py`` does).

Usage: python bench/load_test.py [--peak 25] [--multiplier 10] [--seconds 60] [--tenants 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from aiokafka import TopicPartition
from stage_bench import cleanup, drop_workdir, wait_for_leaders  # the sibling script: bench/ is on sys.path when run

from streams import serde
from streams.errors import StreamsError
from streams.kafka import consumer
from streams.models import BudgetAlert, BudgetKill, CostLedgerEntry, DeadLetter, Incident, format_money
from streams.publisher import Publisher
from streams.simulator import FIRST, LAST, SimConfig, Simulator
from streams.testing import WorkerProcess, free_port, run_cli
from streams.topics_admin import apply
from streams.topology import Topology, load_topology

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("sanitize", "cost", "incidents")
TICK = 0.1  # publishing is paced per tick
PII_RATE = 0.2
BURST_EVERY, FIRST_BURST = 10.0, 2.0  # seconds
BURST_SIZE = 20  # == repeat_error.min_count of the run's detectors file
DETECT_TICK = 1  # detectors' tick_seconds for the run
SCHEDULER_EVERY = 50  # a swarm_tick_complete every this many events, as the simulator does
SETTLE = 3.0  # after the drain: time for a late (surprise) alert, kill or incident to show up
HARD_THRESHOLDS = (80, 100)
FAR_ABOVE = {"monthly": Decimal("100000.00"), "per_run": Decimal("1000.00")}
DEV_MASTER_KEY = "dev:" + "A" * 43 + "="  # throwaway: the run's topics are deleted afterwards
WARM_UP_TENANT = "lt-warmup"
PATTERNS = {
    "email": re.compile(r"[\w.+-]+@example\.com"),
    "phone": re.compile(r"\+1 \(\d{3}\) \d{3}-\d{4}"),
    "card": re.compile(r"4111 1111 1111 1111"),
    "api_key": re.compile(r"sk-ant-api03-\w+"),
    "ssn": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
}
NAMES = re.compile(rf"\b(?:{'|'.join(FIRST)}) (?:{'|'.join(LAST)})\b")


# ------------------------------------------------------------------ the plan
@dataclass
class Burst:
    at: float  # planned seconds into the run
    tenant: str
    code: str
    event_ids: list[str]  # the last one completes repeat_error's min_count


@dataclass
class HardBudget:
    tenant: str
    limit: Decimal
    kill_event: str
    position: int  # the kill event is the tenant's position-th cost event (1-based)...
    cost_events: int  # ...of this many
    at: float  # planned seconds into the run
    alerts: dict[int, tuple[str, Decimal]]  # threshold % -> (event id that reaches it, spend then)


@dataclass
class Plan:
    events: list[dict[str, Any]]  # in publishing order; timestamps are set when published
    tenants: list[str]
    bursts: list[Burst]
    hard: HardBudget
    costs: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # cost event id -> (tenant, cost)
    secrets: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # event id -> [(kind, text)]
    kinds: Counter[str] = field(default_factory=Counter)
    events_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def normal_traffic(sim: Simulator, rng: random.Random, tenants: list[str]) -> Iterator[dict[str, Any]]:
    """The simulator's agent runs over our tenants, plus a scheduler tick every 50 events."""
    produced = 0
    placeholder = datetime.now(UTC)  # every timestamp is replaced when the event is published
    while True:
        for event in sim.run_events(rng.choice(tenants), placeholder):
            if produced % SCHEDULER_EVERY == 0:
                yield {
                    "event_id": _uuid(rng),
                    "event_type": "swarm_tick_complete",
                    "user_id": "_scheduler",
                    "timestamp": placeholder,
                    "source": "kairos@scheduler",
                }
                produced += 1
            yield event
            produced += 1


def burst_events(burst: Burst, rng: random.Random) -> list[dict[str, Any]]:
    events = []
    for _ in range(BURST_SIZE):
        event_id = _uuid(rng)
        burst.event_ids.append(event_id)
        events.append(
            {
                "event_id": event_id,
                "event_type": "agent_error",
                "user_id": burst.tenant,
                "run_id": f"run-{burst.code}",
                "timestamp": None,
                "source": "kairos@host-1",
                "model": "claude-sonnet-4-5",
                "region": "us-east",
                "error_code": burst.code,
                "error_message": "upstream overloaded, retrying",
            }
        )
    return events


def build_plan(rate: float, seconds: float, tenants: list[str], seed: int) -> Plan:
    sim = Simulator(SimConfig(seed=seed, pii_rate=PII_RATE))
    rng = random.Random(seed + 1)
    total = max(1, round(rate * seconds))
    starts: list[float] = []
    at = FIRST_BURST
    while int(at * rate) + BURST_SIZE <= total:
        starts.append(at)
        at += BURST_EVERY
    events: list[dict[str, Any]] = []
    bursts: list[Burst] = []
    normal = normal_traffic(sim, rng, tenants)
    while len(events) < total:
        if starts and int(starts[0] * rate) <= len(events):
            k = len(bursts)
            bursts.append(Burst(starts.pop(0), tenants[k % len(tenants)], f"load_burst_{k:03d}", []))
            events.extend(burst_events(bursts[-1], rng))
        else:
            events.append(next(normal))
    return finish_plan(events, tenants, bursts, rate)


def finish_plan(events: list[dict[str, Any]], tenants: list[str], bursts: list[Burst], rate: float) -> Plan:
    """What the run must show: costs per event, PII per event, the hard budget's crossing."""
    hard_tenant = tenants[0]
    costs: dict[str, tuple[str, Decimal]] = {}
    secrets: dict[str, list[tuple[str, str]]] = {}
    kinds: Counter[str] = Counter()
    position: dict[str, int] = {}
    for index, event in enumerate(events):
        kinds[event["event_type"]] += 1
        if event.get("cost_usd") is not None:
            costs[event["event_id"]] = (event["user_id"], Decimal(event["cost_usd"]))
            position[event["event_id"]] = index
        text = json.dumps(event.get("payload") or {}) + " " + (event.get("error_message") or "")
        found = [(kind, m.group()) for kind, rx in PATTERNS.items() for m in rx.finditer(text)]
        found += [("name", m.group()) for m in NAMES.finditer(text)]
        if found:
            secrets[event["event_id"]] = found
    hard_costs = [(event_id, cost) for event_id, (tenant, cost) in costs.items() if tenant == hard_tenant]
    if len(hard_costs) < 2:
        raise SystemExit(f"too short: {hard_tenant} has {len(hard_costs)} cost events; raise --seconds")
    middle = (len(hard_costs) + 1) // 2
    cumulative = []
    spent = Decimal(0)
    for event_id, cost in hard_costs:
        spent += cost
        cumulative.append((event_id, spent))
    kill_event, limit = cumulative[middle - 1]
    alerts = {pct: next((e, s) for e, s in cumulative if s * 100 >= limit * pct) for pct in HARD_THRESHOLDS}
    hard = HardBudget(hard_tenant, limit, kill_event, middle, len(hard_costs), position[kill_event] / rate, alerts)
    return Plan(events, tenants, bursts, hard, costs, secrets, kinds, {e["event_id"]: e for e in events})


# ------------------------------------------------------------------ files for the run
def write_topics_file(directory: Path, prefix: str) -> Path:
    data = yaml.safe_load((ROOT / "topics.yaml").read_text())
    for spec in data["topics"].values():
        spec["name"] = f"{prefix}.{spec['name']}"
    path = directory / "topics.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write_budgets_file(directory: Path, hard: HardBudget) -> Path:
    far = [
        {"name": "monthly", "period": "monthly", "limit_usd": str(FAR_ABOVE["monthly"]), "hard_kill": True},
        {"name": "run-cap", "period": "per_run", "limit_usd": str(FAR_ABOVE["per_run"]), "hard_kill": True},
    ]
    capped = {
        "name": "monthly",
        "period": "monthly",
        "limit_usd": str(hard.limit),
        "hard_kill": True,
        "thresholds": list(HARD_THRESHOLDS),
    }
    data = {
        "version": 1,
        "default": {"timezone": "UTC", "budgets": far},
        "tenants": {hard.tenant: {"timezone": "UTC", "budgets": [capped]}},
    }
    path = directory / "budgets.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # strings stay quoted: no float money
    return path


def write_detectors_file(directory: Path) -> Path:
    """The repo's detectors, ticking every second; repeat_error per tenant only, 1 s buckets."""
    data = yaml.safe_load((ROOT / "detectors.yaml").read_text())
    data["tick_seconds"] = DETECT_TICK
    data["detectors"]["repeat_error"].update(
        window_seconds=300, bucket_seconds=1, min_count=BURST_SIZE, global_min_count=None
    )
    path = directory / "detectors.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# ------------------------------------------------------------------ workers
def start_workers(env: dict[str, str], workdir: Path) -> dict[str, tuple[WorkerProcess, int]]:
    workers = {}
    for stage in STAGES:
        port = free_port()
        stage_env = {**env, "STREAMS_WEB_PORT": str(port), "STREAMS_DATA_DIR": str(workdir / f"data-{stage}")}
        workers[stage] = (WorkerProcess(stage_env, [stage], workdir / f"{stage}.log").start(), port)
    return workers


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):  # 503 (HTTPError) while starting, refused before the server
        return False


def wait_ready(workers: dict[str, tuple[WorkerProcess, int]], limit: float = 300.0) -> float:
    started = time.monotonic()
    pending = dict(workers)
    while pending:
        for stage, (worker, port) in list(pending.items()):
            if not worker.alive:
                raise SystemExit(f"{stage} worker exited ({worker.returncode}):\n{worker.log_text()[-3000:]}")
            if _ready(port):
                del pending[stage]
        if pending and time.monotonic() - started > limit:
            raise SystemExit(f"not ready after {limit:.0f} s: {', '.join(pending)}")
        time.sleep(0.5)
    return time.monotonic() - started


def check_alive(workers: dict[str, tuple[WorkerProcess, int]]) -> None:
    for stage, (worker, _) in workers.items():
        if not worker.alive:
            raise SystemExit(f"{stage} worker exited ({worker.returncode}):\n{worker.log_text()[-3000:]}")


# ------------------------------------------------------------------ watching the outputs
def leading_id(value: bytes) -> str:
    """The first field of a hook event, vault record or ledger entry: ``event_id``, an Avro
    string after the 10-byte single-object header (C3 01 + fingerprint). Cheaper than decoding
    the record, which matters while this process shares the CPUs with the pipeline."""
    if value[:2] != b"\xc3\x01":
        raise ValueError("not an Avro single-object record")
    shift = length = 0
    pos = 10
    while True:  # zigzag varint
        byte = value[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
    length = (length >> 1) ^ -(length & 1)
    return value[pos : pos + length].decode("utf-8")


@dataclass
class Seen:
    """What arrived on the output topics; times are ``time.time()`` of this process."""

    sanitized: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> (arrival, CreateTime)
    sanitized_records: int = 0
    last_sanitized: float = 0.0
    leaks: Counter[str] = field(default_factory=Counter)
    sanitized_values: list[tuple[str, bytes]] = field(default_factory=list)  # checked for leaks after the run
    vaulted: set[str] = field(default_factory=set)
    signals: set[str] = field(default_factory=set)  # warm-up ids only
    ledger: dict[str, tuple[float, CostLedgerEntry]] = field(default_factory=dict)
    ledger_records: int = 0
    last_counted: float = 0.0
    alerts: list[tuple[float, BudgetAlert]] = field(default_factory=list)
    kills: list[tuple[float, BudgetKill]] = field(default_factory=list)
    incidents: list[tuple[float, Incident]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


class Observer:
    """One consumer (no group) on every output topic, from the beginning of the fresh topics."""

    KEYS = ("sanitized", "vault", "dlq", "incident_signals", "ledger", "budget_alerts", "budget_kills", "incidents")

    def __init__(self, bootstrap: str, topology: Topology, plan: Plan, warm_ids: set[str]) -> None:
        self.topology, self.plan, self.warm_ids = topology, plan, warm_ids
        self.names = {key: topology[key].name for key in self.KEYS}
        self.client = consumer(bootstrap, group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=100)
        self.seen = Seen()
        self.stopping = False
        self.task: asyncio.Task[None] | None = None

    def check(self) -> None:
        """Raise what stopped the consumer, if it stopped: a dead observer would look like a stall."""
        if self.task is not None and self.task.done() and not self.stopping:
            raise SystemExit(f"the observing consumer stopped: {self.task.exception()!r}")

    async def run(self) -> None:
        await self.client.start()
        try:
            tps = [
                TopicPartition(self.topology[k].name, p) for k in self.KEYS for p in range(self.topology[k].partitions)
            ]
            self.client.assign(tps)
            await self.client.seek_to_beginning()
            by_name = {name: key for key, name in self.names.items()}
            while not self.stopping:
                batches = await self.client.getmany(timeout_ms=200)
                arrival = time.time()
                for tp, messages in batches.items():
                    for message in messages:
                        self.take(by_name[tp.topic], message, arrival)
        finally:
            await self.client.stop()

    def take(self, key: str, message: Any, arrival: float) -> None:
        seen = self.seen
        if key == "sanitized":
            self.take_sanitized(message, arrival)
        elif key == "vault":
            seen.vaulted.add(leading_id(message.value))
        elif key == "incident_signals":
            if len(seen.signals) < len(self.warm_ids):
                event_id = serde.decode_avro_dict(message.value)[1]["event_id"]
                if event_id in self.warm_ids:
                    seen.signals.add(event_id)
        elif key == "ledger":
            entry = serde.decode(CostLedgerEntry, message.value)
            seen.ledger_records += 1
            if entry.event_id not in seen.ledger:
                seen.ledger[entry.event_id] = (arrival, entry)
                seen.last_counted = arrival
        elif key == "budget_alerts":
            seen.alerts.append((arrival, serde.decode(BudgetAlert, message.value)))
        elif key == "budget_kills":
            seen.kills.append((arrival, serde.decode(BudgetKill, message.value)))
        elif key == "incidents":
            seen.incidents.append((arrival, serde.decode(Incident, message.value)))
        elif key == "dlq":
            seen.dead_letters.append(serde.decode(DeadLetter, message.value))

    def take_sanitized(self, message: Any, arrival: float) -> None:
        # Only the id now: this process shares the machine with the pipeline, so decoding
        # and the leak check wait until the run is over (check_leaks).
        seen = self.seen
        seen.sanitized_records += 1
        event_id = leading_id(message.value)
        if event_id in seen.sanitized:
            return
        seen.sanitized[event_id] = (arrival, message.timestamp / 1000)
        seen.last_sanitized = arrival
        if event_id in self.plan.secrets:
            seen.sanitized_values.append((event_id, message.value))

    def check_leaks(self) -> None:
        seen = self.seen
        for event_id, raw in seen.sanitized_values:
            value = serde.decode_avro_dict(raw)[1]
            text = f"{value.get('payload') or ''} {value.get('error_message') or ''}"
            for kind, secret in self.plan.secrets[event_id]:
                if secret in text:
                    seen.leaks[kind] += 1
        seen.sanitized_values.clear()

    def triggered(self) -> dict[tuple[str | None, str | None], tuple[float, Incident]]:
        """The first triggered record per (tenant, error code)."""
        first: dict[tuple[str | None, str | None], tuple[float, Incident]] = {}
        for arrival, incident in self.seen.incidents:
            scope = (incident.evidence.tenant, incident.evidence.error_code)
            if incident.status == "triggered" and scope not in first:
                first[scope] = (arrival, incident)
        return first


# ------------------------------------------------------------------ driving the run
@dataclass
class Published:
    at: dict[str, float] = field(default_factory=dict)  # event id -> time.time() when handed over
    first: float = 0.0
    last: float = 0.0
    failed: int = 0
    warm_up_seconds: float = 0.0
    complete: bool = False


def warm_up_events(rng: random.Random) -> list[dict[str, Any]]:
    """Tool calls of a tenant of its own, with PII: they load the sanitizer's engine and open
    every hop before the clock starts. They carry no cost and no error."""
    texts = ["Call Maria Rossi at +1 (555) 201-3344", "Mail chloe.7@example.com about the renewal", "no PII here"]
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": _uuid(rng),
            "event_type": "tool_call",
            "user_id": WARM_UP_TENANT,
            "run_id": "run-warmup",
            "timestamp": now,
            "source": "kairos@host-1",
            "payload": {"tool": "crm_lookup", "args": {"query": text}},
        }
        for text in texts
    ]


async def warm_up(publisher: Publisher, observer: Observer, events: list[dict[str, Any]], workers: Any) -> float:
    started = time.monotonic()
    for event in events:
        await publisher.publish(event, wait=True)
    ids = {e["event_id"] for e in events}
    while not (ids <= observer.seen.sanitized.keys() and ids <= observer.seen.signals):
        check_alive(workers)
        observer.check()
        if time.monotonic() - started > 300:
            raise SystemExit("warm-up events not through sanitize and the incidents stage after 300 s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def progress(t0: float, plan: Plan, published: int, seen: Seen, bursts: int) -> None:
    print(
        f"  [{time.time() - t0:6.1f} s] published {published}/{len(plan.events)}  sanitized {len(seen.sanitized)}"
        f"  counted {len(seen.ledger)}/{len(plan.costs)}  bursts detected {bursts}/{len(plan.bursts)}",
        file=sys.stderr,
        flush=True,
    )


async def publish(publisher: Publisher, plan: Plan, rate: float, observer: Observer, out: Published) -> None:
    """Paced per 100 ms tick: at each tick, every event due by then (event i is due at i / rate)."""
    futures = []
    started = time.monotonic()
    shown = 0.0
    i, n = 0, len(plan.events)
    while i < n:
        elapsed = time.monotonic() - started
        due = min(n, int(elapsed * rate) + 1)
        stamp = datetime.now(UTC).isoformat()
        while i < due:
            event = plan.events[i]
            event["timestamp"] = stamp
            sent_at = time.time()
            try:
                futures.append(publisher.publish_nowait(event))
                out.at[event["event_id"]] = sent_at
            except StreamsError:  # BufferFullError (or a validation bug): counted, checked below
                out.failed += 1
            out.first = out.first or sent_at
            out.last = sent_at
            i += 1
        if elapsed - shown >= 10:
            shown = elapsed
            progress(out.first, plan, i, observer.seen, len(observer.triggered()))
        await asyncio.sleep(max(0.0, TICK - (time.monotonic() - started) % TICK))
    results = await asyncio.gather(*futures, return_exceptions=True)
    out.failed += sum(1 for r in results if isinstance(r, BaseException))


async def drain(plan: Plan, observer: Observer, out: Published, workers: Any, limit: float) -> None:
    """Until every published event is sanitized, every cost counted and every burst detected."""
    seen = observer.seen
    codes = {(b.tenant, b.code) for b in plan.bursts}
    costs = [event_id for event_id in plan.costs if event_id in out.at]
    deadline = time.monotonic() + limit
    shown = time.monotonic()
    while time.monotonic() < deadline:
        check_alive(workers)
        observer.check()
        sanitized = sum(1 for event_id in out.at if event_id in seen.sanitized)
        counted = sum(1 for event_id in costs if event_id in seen.ledger)
        if sanitized == len(out.at) and counted == len(costs) and codes <= observer.triggered().keys():
            out.complete = True
            return
        if time.monotonic() - shown >= 10:
            shown = time.monotonic()
            progress(out.first, plan, len(out.at), seen, len(codes & observer.triggered().keys()))
        await asyncio.sleep(0.5)


async def drive(args: argparse.Namespace, topology: Topology, plan: Plan, workers: Any) -> tuple[Published, Observer]:
    bootstrap = args.bootstrap
    warm = warm_up_events(random.Random(args.seed + 2))
    observer = Observer(bootstrap, topology, plan, {e["event_id"] for e in warm})
    watching = observer.task = asyncio.create_task(observer.run())
    publisher = Publisher(bootstrap, topology["raw"].name, encoding="avro")
    out = Published()
    await publisher.start()
    try:
        out.warm_up_seconds = await warm_up(publisher, observer, warm, workers)
        print(f"warm-up through every stage: {out.warm_up_seconds:.1f} s; publishing", file=sys.stderr, flush=True)
        await publish(publisher, plan, args.peak * args.multiplier, observer, out)
        await drain(plan, observer, out, workers, args.drain_timeout)
        await asyncio.sleep(SETTLE)  # a surprise alert, kill or incident would show up now
    finally:
        await publisher.stop()
        observer.stopping = True
        with contextlib.suppress(Exception):
            await watching
    observer.check_leaks()
    return out, observer


# ------------------------------------------------------------------ figures and checks
def spread(values: list[float]) -> str:
    if not values:
        return "n=0"
    ordered = sorted(values)
    if len(ordered) == 1:
        p50 = p99 = ordered[0]
    else:
        cuts = statistics.quantiles(ordered, n=100, method="inclusive")
        p50, p99 = cuts[49], cuts[98]
    return f"n={len(ordered)} p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms  max {ordered[-1] * 1000:.0f} ms"


def live_chargeback(env: dict[str, str], port: int, periods: list[str]) -> dict[str, dict[str, Any]]:
    """``streams chargeback --format json --worker URL`` for each period: user_id -> row."""
    rows: dict[str, dict[str, Any]] = {}
    for period in periods:
        done = run_cli(
            env, "chargeback", "--period", period, "--format", "json", "--worker", f"http://127.0.0.1:{port}"
        )
        if done.returncode != 0:
            raise SystemExit(f"streams chargeback failed ({done.returncode}): {done.stderr[-2000:]}")
        for row in json.loads(done.stdout)["tenants"]:
            rows[f"{period} {row['user_id']}"] = row
    return rows


Check = tuple[bool, str]


def check_sanitized(plan: Plan, out: Published, seen: Seen) -> list[Check]:
    missing = [e for e in out.at if e not in seen.sanitized]
    patterns = sum(n for kind, n in seen.leaks.items() if kind != "name")
    pii = [e for e, found in plan.secrets.items() if e in out.at and any(k != "name" for k, _ in found)]
    unvaulted = [e for e in pii if e not in seen.vaulted]
    extra = seen.sanitized_records - len(seen.sanitized)
    return [
        (
            not missing and not seen.dead_letters,
            f"sanitized: {len(out.at) - len(missing)}/{len(out.at)} events ({extra} repeated records), "
            f"{len(seen.dead_letters)} dead letters",
        ),
        (
            patterns == 0 and not unvaulted,
            f"PII: {len(pii)} events with pattern PII, {patterns} pattern leaks "
            f"({dict(seen.leaks) or 'none'}; names are NER, counted, not checked), {len(unvaulted)} not vaulted",
        ),
    ]


def check_money(plan: Plan, out: Published, seen: Seen, live: dict[str, dict[str, Any]]) -> list[Check]:
    published = {e: plan.costs[e] for e in plan.costs if e in out.at}
    wrong = [e for e, (_, cost) in published.items() if e in seen.ledger and seen.ledger[e][1].cost_usd != cost]
    expected: dict[str, tuple[Decimal, int]] = {}
    for event_id, (tenant, cost) in published.items():
        period = str(plan.events_by_id[event_id]["timestamp"])[:7]
        total, count = expected.get(f"{period} {tenant}", (Decimal(0), 0))
        expected[f"{period} {tenant}"] = (total + cost, count + 1)
    got = {k: (Decimal(r["total_usd"]), int(r["charges"])) for k, r in live.items()}
    adjusted = [k for k, r in live.items() if Decimal(r["adjusted_usd"]) != 0]
    differ = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
    total = sum((t for t, _ in expected.values()), Decimal(0))
    return [
        (
            set(seen.ledger) == set(published) and not wrong,
            f"ledger: {len(seen.ledger)} distinct event ids ({seen.ledger_records} records) vs {len(published)} "
            f"cost events published; {len(wrong)} with another cost",
        ),
        (
            not differ and not adjusted,
            f"chargeback (live, cost worker /chargeback): {len(got)} tenant rows == Decimal sums of the published "
            f"costs (total ${format_money(total)}); differing: {differ[:5] or 'none'}; adjustments: {len(adjusted)}",
        ),
    ]


def check_budgets(plan: Plan, out: Published, seen: Seen) -> list[Check]:
    hard = plan.hard
    others_alerts = {a.alert_id for _, a in seen.alerts if a.user_id != hard.tenant}
    others_kills = {k.kill_id for _, k in seen.kills if k.user_id != hard.tenant}
    kills = {k.kill_id: k for _, k in seen.kills if k.user_id == hard.tenant}
    alerts = {a.alert_id: a for _, a in seen.alerts if a.user_id == hard.tenant}
    kill_ok = len(kills) == 1 and all(
        k.event_ids == [hard.kill_event] and k.spent_usd == hard.limit for k in kills.values()
    )
    got_alerts = sorted((a.threshold_pct, a.event_id, a.spent_usd) for a in alerts.values())
    want_alerts = sorted((pct, e, s) for pct, (e, s) in hard.alerts.items())
    first_kill = min((t for t, k in seen.kills if k.user_id == hard.tenant), default=None)
    latency = f"{first_kill - out.at[hard.kill_event]:.2f} s" if first_kill and hard.kill_event in out.at else "n/a"
    return [
        (
            not others_alerts and not others_kills,
            f"budgets far above the spend ({len(plan.tenants) - 1} tenants): "
            f"{len(others_alerts)} alerts, {len(others_kills)} kills",
        ),
        (
            kill_ok and got_alerts == want_alerts,
            f"hard monthly ${format_money(hard.limit)} of {hard.tenant} (its cost event {hard.position} of "
            f"{hard.cost_events}, ~{hard.at:.0f} s in): {len(kills)} kill id(s), at the expected event with "
            f"spent == limit: {kill_ok}; alerts {[p for p, _, _ in got_alerts]} at the expected events and "
            f"spend: {got_alerts == want_alerts}; published -> kill {latency}",
        ),
    ]


def check_incidents(plan: Plan, observer: Observer) -> list[Check]:
    triggered = observer.triggered()
    wanted = {(b.tenant, b.code) for b in plan.bursts}
    fingerprints: dict[tuple[str | None, str | None], set[str]] = {}
    for _, incident in observer.seen.incidents:
        if incident.status == "triggered":
            scope = (incident.evidence.tenant, incident.evidence.error_code)
            fingerprints.setdefault(scope, set()).add(incident.fingerprint)
    others = sorted(f"{i.incident_type}:{s}" for s, (_, i) in triggered.items() if s not in wanted)
    once = all(len(fingerprints.get(scope, ())) == 1 for scope in wanted)
    return [
        (
            wanted <= triggered.keys() and once and not others,
            f"incidents: {len(wanted & triggered.keys())}/{len(wanted)} bursts raised one repeat_error each; "
            f"other incidents: {others[:5] or 'none'}",
        )
    ]


# ------------------------------------------------------------------ the report
def machine() -> str:
    cores = len(os.sched_getaffinity(0))
    found = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    kib = int(found.group(1)) if found else 0
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cores} cores (nproc), {kib / 1024 / 1024:.1f} GiB RAM, load average {load}"


def kafka_version(bootstrap: str) -> str:
    """From the broker this checkout started (``streams broker start``), if it is the one we use."""
    from streams.broker.layout import layout_for
    from streams.broker.process import read_state
    from streams.settings import get_settings

    state = read_state(layout_for(get_settings()))
    if state is not None and bootstrap.endswith(f":{state.port}"):
        with contextlib.suppress(OSError):
            os.kill(state.pid, 0)
            return f"Kafka {state.version} (single KRaft node, {bootstrap})"
    return f"Kafka version unknown (the broker on {bootstrap} was not started from this checkout)"


def through(what: str, arrivals: list[float], total: int, first: float, stopped: float) -> str:
    """``what`` ev/s from the first publish to the last arrival, and the drain after publishing stopped."""
    if not arrivals:
        return f"{what}: none of {total} arrived"
    last = max(arrivals)
    done = "" if len(arrivals) == total else f" (only {len(arrivals)} of {total})"
    rate = len(arrivals) / max(last - first, 1e-9)
    return f"{what}: {rate:.1f} ev/s first publish -> last one, drain {last - stopped:.1f} s after publishing{done}"


def report(args: argparse.Namespace, plan: Plan, out: Published, observer: Observer, ready: float) -> list[str]:
    seen, rate = observer.seen, args.peak * args.multiplier
    window = max(out.last - out.first, 1e-9)
    n = len(out.at)
    achieved = (n - 1) / window if n > 1 else 0.0
    sanitized = [seen.sanitized[e][0] for e in out.at if e in seen.sanitized]
    counted = [seen.ledger[e][0] for e in plan.costs if e in out.at and e in seen.ledger]
    costs = sum(1 for e in plan.costs if e in out.at)
    to_sanitized = [seen.sanitized[e][0] - t for e, t in out.at.items() if e in seen.sanitized]
    to_stamped = [seen.sanitized[e][1] - t for e, t in out.at.items() if e in seen.sanitized]
    triggered = observer.triggered()
    to_incident = [
        triggered[(b.tenant, b.code)][0] - out.at[b.event_ids[-1]]
        for b in plan.bursts
        if (b.tenant, b.code) in triggered and b.event_ids[-1] in out.at
    ]
    mix = ", ".join(f"{k}={v}" for k, v in sorted(plan.kinds.items()))
    late = "" if out.complete else f" (INCOMPLETE after --drain-timeout {args.drain_timeout:g} s)"
    return [
        f"offered    {rate:.1f} ev/s (peak {args.peak:g} x {args.multiplier:g}) for {args.seconds:g} s: "
        f"{len(plan.events)} events, {args.tenants} tenants, {len(plan.bursts)} error bursts of {BURST_SIZE} ({mix})",
        f"setup      workers ready {ready:.1f} s after start; warm-up through every stage "
        f"{out.warm_up_seconds:.1f} s (neither timed)",
        f"published  {n} in {window:.1f} s = {achieved:.1f} ev/s achieved, {out.failed} failed "
        "(streams.publisher.Publisher: Avro, acks=all, keyed by user_id)",
        f"sanitized  {sum(1 for t in sanitized if t <= out.last) / window:.1f} ev/s while publishing; "
        + through("all", sanitized, n, out.first, out.last),
        "counted    " + through(f"{costs} cost events (of {n})", counted, costs, out.first, out.last) + late,
        f"latency    published -> sanitized, arrival at our consumer: {spread(to_sanitized)}",
        f"           published -> sanitized, Kafka CreateTime (sanitize worker's producer): {spread(to_stamped)}",
        f"           published -> incident, from the burst's {BURST_SIZE}th event (completes min_count; "
        f"detector tick {DETECT_TICK} s included): {spread(to_incident)}",
    ]


# ------------------------------------------------------------------ main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peak", type=float, default=25.0, help="stated expected peak, events/s")
    parser.add_argument("--multiplier", type=float, default=10.0, help="offered rate = peak x multiplier")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to publish")
    parser.add_argument("--bootstrap", default=os.environ.get("STREAMS_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds to wait after publishing")
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker logs (path printed)")
    args = parser.parse_args()
    if args.tenants < 2:
        parser.error("--tenants must be at least 2 (one hard-capped tenant and the others)")
    now = datetime.now(UTC)
    if now.strftime("%Y-%m") != (now + timedelta(seconds=args.seconds + 300)).strftime("%Y-%m"):
        parser.error("the run would straddle a UTC month boundary (monthly budgets restart): start after it")
    return args


def run(args: argparse.Namespace, plan: Plan, workdir: Path, prefix: str, app_id: str) -> tuple[list[str], bool]:
    topics_file = write_topics_file(workdir, prefix)
    topology = load_topology(topics_file)
    asyncio.run(apply(args.bootstrap, topology))
    asyncio.run(wait_for_leaders(args.bootstrap, [spec.name for spec in topology.topics.values()]))
    env = {
        **os.environ,
        "STREAMS_BOOTSTRAP_SERVERS": args.bootstrap,
        "STREAMS_TOPICS_FILE": str(topics_file),
        "STREAMS_BUDGETS_FILE": str(write_budgets_file(workdir, plan.hard)),
        "STREAMS_DETECTORS_FILE": str(write_detectors_file(workdir)),
        "STREAMS_APP_ID": app_id,
        "STREAMS_MASTER_KEY": os.environ.get("STREAMS_MASTER_KEY", DEV_MASTER_KEY),
        "STREAMS_API_TOKEN": uuid.uuid4().hex,
        "PYTHONUNBUFFERED": "1",
    }
    workers = start_workers(env, workdir)
    try:
        ready = wait_ready(workers)
        print(f"workers ready after {ready:.1f} s", file=sys.stderr, flush=True)
        out, observer = asyncio.run(drive(args, topology, plan, workers))
        periods = sorted({str(plan.events_by_id[e]["timestamp"])[:7] for e in plan.costs if e in out.at})
        live = live_chargeback(env, workers["cost"][1], periods)
    finally:
        codes = {stage: worker.stop() for stage, (worker, _) in workers.items()}
    seen = observer.seen
    checks = [
        *check_sanitized(plan, out, seen),
        *check_money(plan, out, seen, live),
        *check_budgets(plan, out, seen),
        *check_incidents(plan, observer),
        (out.failed == 0 and out.complete, f"publishing: {out.failed} failed; drained in time: {out.complete}"),
    ]
    lines = report(args, plan, out, observer, ready)
    lines.append(f"workers    exit status after SIGTERM: {', '.join(f'{s} {c}' for s, c in codes.items())}")
    lines += [f"{'OK' if ok else 'FAIL':<10} {text}" for ok, text in checks]
    return lines, all(ok for ok, _ in checks)


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.ERROR)
    run_id = uuid.uuid4().hex[:8]
    prefix, app_id = f"load{run_id}", f"load-{run_id}"
    tenants = [f"lt-{i:02d}" for i in range(args.tenants)]
    plan = build_plan(args.peak * args.multiplier, args.seconds, tenants, args.seed)
    before = machine()
    print(f"load test {run_id}: {before}; {kafka_version(args.bootstrap)}", file=sys.stderr, flush=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"load-test-{run_id}-"))
    try:
        lines, ok = run(args, plan, workdir, prefix, app_id)
    finally:
        try:
            stages = [f"{app_id}-{stage}" for stage in STAGES]
            deleted = asyncio.run(cleanup(args.bootstrap, [f"{prefix}.", f"{app_id}-"], stages))
            print(f"cleanup: deleted {len(deleted)} topics and the run's consumer groups", file=sys.stderr)
        finally:
            drop_workdir(workdir, keep=args.keep_logs)
    print(f"load test {run_id} (seed {args.seed}) on {before}; {kafka_version(args.bootstrap)}")
    print("\n".join(lines))
    print(f"result: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
