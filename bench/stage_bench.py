#!/usr/bin/env python3
"""Sustained throughput of one pipeline stage on the real broker, against a raw aiokafka anchor.

Each round, on fresh topics (topics.yaml copied with a per-round prefix and applied):

1. pre-load N simulator events (Avro, keyed by user_id) into the stage's input topic
   (``sanitized`` for cost and incidents, ``raw`` for sanitize);
2. anchor: a plain aiokafka consumer group reads those N records and produces each one to
   another topic of the same partition count (acks=all, idempotent; each fetched batch is
   acknowledged, then its offsets committed); timed from the first fetched batch to the last
   commit;
3. stage: ``streams worker --only STAGE`` as a child process with a fresh app id; timed from
   the first record on the stage's output topics to the moment the worker's consumer group
   (Faust's group id is the app id, ``<app id>-<stage>``) has committed the end of the input
   topic (and, for incidents, of the single-partition signal topic, its second hop). Worker
   start-up is outside the timing. Faust commits every 500 events or every second, so the
   end can lag by up to a second: this errs against the stage.

The median events/s of ``--rounds`` rounds is reported for both, and the ratio stage / anchor.
The per-round topics, Faust's internal topics and the consumer groups are deleted at the end.

Usage: python bench/stage_bench.py --stage cost|incidents|sanitize [--events 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from streams import serde
from streams.kafka import admin, consumer, producer
from streams.models import HookEvent
from streams.simulator import SimConfig, Simulator
from streams.testing import WorkerProcess
from streams.topics_admin import apply
from streams.topology import Topology, load_topology

ROOT = Path(__file__).resolve().parents[1]
ANCHOR_OUT = "bench_anchor_out"  # an extra topics.yaml key: where the anchor produces
POLL_SECONDS = 0.05
DEV_MASTER_KEY = "dev:" + "A" * 43 + "="  # throwaway: the bench's topics are deleted afterwards


@dataclass(frozen=True)
class StagePlan:
    input: str  # topics.yaml key the stage consumes
    hops: tuple[str, ...]  # topics the stage writes and consumes again (its group must commit them too)
    main_output: str  # the output whose first record starts the clock
    outputs: tuple[str, ...]  # every output counted in the report
    pii_rate: float  # simulator PII share: sanitized input holds none


PLANS = {
    "cost": StagePlan("sanitized", (), "ledger", ("ledger", "budget_alerts", "budget_kills", "dlq"), 0.0),
    "incidents": StagePlan(
        "sanitized", ("incident_signals",), "incident_signals", ("incident_signals", "incidents", "dlq"), 0.0
    ),
    "sanitize": StagePlan("raw", (), "sanitized", ("sanitized", "vault", "dlq"), 0.2),
}


@dataclass
class StageResult:
    rate: float  # input events/s, first output -> group committed the end
    seconds: float
    startup: float  # worker start -> first output (not timed)
    outputs: Counter[str] = field(default_factory=Counter)
    committed_at: dict[str, float] = field(default_factory=dict)  # topic key -> s after the first output


# ------------------------------------------------------------------ set-up
def make_events(n: int, pii_rate: float, seed: int) -> tuple[list[tuple[bytes, bytes]], Counter[str]]:
    sim = Simulator(SimConfig(events=n, rate=0, tenants=8, seed=seed, pii_rate=pii_rate))
    items, kinds = [], Counter[str]()
    for event in sim.events():
        record = serde.validate(HookEvent, event)
        items.append((record.user_id.encode(), serde.encode_avro(record)))
        kinds[record.event_type] += 1
    return items, kinds


def write_topics_file(directory: Path, prefix: str, input_key: str) -> Path:
    data = yaml.safe_load((ROOT / "topics.yaml").read_text())
    for spec in data["topics"].values():
        spec["name"] = f"{prefix}.{spec['name']}"
    anchor = dict(data["topics"][input_key])
    anchor.update(name=f"{prefix}.bench.anchor-out", purpose="stage_bench: the anchor's output")
    data["topics"][ANCHOR_OUT] = anchor
    path = directory / f"{prefix}.topics.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def preload(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    client = producer(bootstrap, linger_ms=20)
    await client.start()
    try:
        pending = [await client.send(topic, value=value, key=key) for key, value in items]
        await asyncio.gather(*pending)
    finally:
        await client.stop()


async def wait_for_leaders(bootstrap: str, names: list[str], seconds: float = 30.0) -> None:
    """New topics answer NOT_LEADER for a moment: wait until every partition has a leader."""
    deadline = time.monotonic() + seconds
    async with admin(bootstrap) as client:
        while True:
            described = await client.describe_topics(names)
            if all(
                t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"topics without a leader after {seconds:.0f} s: {names}")
            await asyncio.sleep(0.2)


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[TopicPartition, int]:
    client = consumer(bootstrap)
    await client.start()
    try:
        ends: dict[TopicPartition, int] = await client.end_offsets(
            [TopicPartition(topic, p) for p in range(partitions)]
        )
        return ends
    finally:
        await client.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ the anchor
async def run_anchor(bootstrap: str, source: str, target: str, n: int, group: str) -> float:
    """Consume N records, produce each to ``target`` (acks=all), commit per batch: events/s."""
    reader = consumer(bootstrap, source, group_id=group, auto_offset_reset="earliest")
    writer = producer(bootstrap)
    await reader.start()
    await writer.start()
    try:
        done, started = 0, 0.0
        while done < n:
            batches = await reader.getmany(timeout_ms=1000)
            if not batches:
                continue
            if not started:
                started = time.perf_counter()
            pending = []
            for messages in batches.values():
                for m in messages:
                    pending.append(await writer.send(target, value=m.value, key=m.key, partition=m.partition))
            await asyncio.gather(*pending)
            await reader.commit()
            done += len(pending)
        return n / (time.perf_counter() - started)
    finally:
        await reader.stop()
        await writer.stop()


# ------------------------------------------------------------------ the stage
async def committed(client: Any, group: str, coordinator: list[int]) -> dict[str, int]:
    """Sum of the group's committed offsets per topic ({} until the group exists)."""
    try:
        if not coordinator:
            coordinator.append(await client.find_coordinator(group))
        offsets = await client.list_consumer_group_offsets(group, group_coordinator_id=coordinator[0])
    except KafkaError:
        coordinator.clear()
        return {}
    sums: Counter[str] = Counter()
    for tp, meta in offsets.items():
        if meta.offset > 0:
            sums[tp.topic] += meta.offset
    return dict(sums)


async def watch_stage(
    bootstrap: str, topology: Topology, plan: StagePlan, *, group: str, n: int, worker: WorkerProcess, limit: float
) -> StageResult:
    launched = time.perf_counter()
    outputs = {key: topology[key] for key in plan.outputs}
    output_tps = [TopicPartition(spec.name, p) for spec in outputs.values() for p in range(spec.partitions)]
    # Every topic the group must have committed to the end (topics.yaml key), with how many records that is.
    targets = {key: n for key in (plan.input, *plan.hops)}
    reader = consumer(bootstrap)
    await reader.start()
    coordinator: list[int] = []
    first_output = 0.0
    committed_at: dict[str, float] = {}
    try:
        async with admin(bootstrap) as client:
            while True:
                if not worker.alive:
                    raise RuntimeError(f"worker exited ({worker.returncode}):\n{worker.log_text()[-3000:]}")
                now = time.perf_counter()
                if now - launched > limit:
                    raise TimeoutError(f"stage not done after {limit:.0f} s:\n{worker.log_text()[-3000:]}")
                ends = await reader.end_offsets(output_tps)
                produced: Counter[str] = Counter()
                for tp, end in ends.items():
                    produced[tp.topic] += end
                if not first_output and produced[topology[plan.main_output].name]:
                    first_output = now
                done = await committed(client, group, coordinator)
                for key, want in targets.items():
                    if first_output and key not in committed_at and done.get(topology[key].name, 0) >= want:
                        committed_at[key] = now - first_output
                if len(committed_at) == len(targets):
                    counts = Counter({key: produced[spec.name] for key, spec in outputs.items()})
                    seconds = now - first_output
                    return StageResult(n / seconds, seconds, first_output - launched, counts, committed_at)
                await asyncio.sleep(POLL_SECONDS)
    finally:
        await reader.stop()


def run_stage(
    bootstrap: str, topics_file: Path, plan: StagePlan, *, stage: str, app_id: str, n: int, workdir: Path
) -> StageResult:
    env = {
        **os.environ,
        "STREAMS_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMS_TOPICS_FILE": str(topics_file),
        "STREAMS_APP_ID": app_id,
        "STREAMS_DATA_DIR": str(workdir / app_id),
        "STREAMS_WEB_PORT": str(free_port()),
        "STREAMS_MASTER_KEY": os.environ.get("STREAMS_MASTER_KEY", DEV_MASTER_KEY),
        "PYTHONUNBUFFERED": "1",
    }
    worker = WorkerProcess(env, [stage], workdir / f"{app_id}.log").start()
    try:
        topology = load_topology(topics_file)
        limit = 120.0 + n / 20  # generous: a stuck stage fails the round instead of hanging
        group = f"{app_id}-{stage}"  # Faust's group id is its app id; `--only X` appends -X
        return asyncio.run(watch_stage(bootstrap, topology, plan, group=group, n=n, worker=worker, limit=limit))
    finally:
        worker.stop()


# ------------------------------------------------------------------ clean-up
def drop_workdir(workdir: Path, *, keep: bool) -> None:
    """Remove a run's temp dir, or say where its worker logs are (``--keep-logs``)."""
    if keep:
        print(f"worker logs in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


async def cleanup(bootstrap: str, prefixes: list[str], groups: list[str]) -> list[str]:
    from aiokafka.protocol.admin import DeleteGroupsRequest

    async with admin(bootstrap) as client:
        doomed = [t for t in await client.list_topics() if t.startswith(tuple(prefixes))]
        if doomed:
            await client.delete_topics(doomed)
        for group in groups:  # best effort: aiokafka's admin has no public delete_consumer_groups
            with contextlib.suppress(KafkaError):
                await client._send_request(DeleteGroupsRequest([group]), await client.find_coordinator(group))
    return doomed


# ------------------------------------------------------------------ main
def prepare_round(
    bootstrap: str, workdir: Path, prefix: str, plan: StagePlan, items: list[tuple[bytes, bytes]]
) -> Path:
    """Fresh topics for one round, the stage's input pre-loaded; returns the topics file."""
    topics_file = write_topics_file(workdir, prefix, plan.input)
    topology = load_topology(topics_file)
    asyncio.run(apply(bootstrap, topology))
    asyncio.run(wait_for_leaders(bootstrap, [spec.name for spec in topology.topics.values()]))
    source = topology[plan.input]
    asyncio.run(preload(bootstrap, source.name, items))
    loaded = sum(asyncio.run(end_offsets(bootstrap, source.name, source.partitions)).values())
    if loaded != len(items):
        raise SystemExit(f"pre-load: {loaded} records on {source.name}, expected {len(items)}")
    return topics_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True, choices=sorted(PLANS))
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bootstrap", default=os.environ.get("STREAMS_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker logs (path printed)")
    args = parser.parse_args()
    plan, n = PLANS[args.stage], args.events
    # A fresh topic answers NOT_LEADER for a moment after its leaders are known; the producer
    # retries (idempotent, so no duplicates) and the pre-load count is checked afterwards.
    logging.basicConfig(level=logging.ERROR)

    run_id = uuid.uuid4().hex[:8]
    items, kinds = make_events(n, plan.pii_rate, args.seed)
    mix = ", ".join(f"{k}={v}" for k, v in sorted(kinds.items()))
    print(f"stage {args.stage}: {n} simulator events ({mix}), {args.rounds} rounds, run {run_id}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"stage-bench-{run_id}-"))
    anchors: list[float] = []
    stages: list[float] = []
    prefixes: list[str] = []
    groups: list[str] = []
    try:
        for round_no in range(1, args.rounds + 1):
            prefix, app_id = f"bench{run_id}r{round_no}", f"bench-{run_id}-r{round_no}"
            prefixes += [f"{prefix}.", f"{app_id}-"]
            groups += [f"{app_id}-anchor", f"{app_id}-{args.stage}"]
            topics_file = prepare_round(args.bootstrap, workdir, prefix, plan, items)
            topology = load_topology(topics_file)
            source, target = topology[plan.input].name, topology[ANCHOR_OUT].name
            anchor = asyncio.run(run_anchor(args.bootstrap, source, target, n, f"{app_id}-anchor"))
            result = run_stage(args.bootstrap, topics_file, plan, stage=args.stage, app_id=app_id, n=n, workdir=workdir)
            anchors.append(anchor)
            stages.append(result.rate)
            outs = " ".join(f"{k}={v}" for k, v in result.outputs.items())
            hops = ", ".join(f"{key} at {at:.1f} s" for key, at in result.committed_at.items())
            print(
                f"round {round_no}: anchor {anchor:8.0f} ev/s  stage {result.rate:8.0f} ev/s "
                f"({result.seconds:.1f} s after a {result.startup:.1f} s start-up)  ratio {result.rate / anchor:6.3f}"
                f"\n  outputs: {outs}; all committed: {hops}",
                flush=True,
            )
    finally:
        try:
            deleted = asyncio.run(cleanup(args.bootstrap, prefixes, groups)) if prefixes else []
            print(f"cleanup: deleted {len(deleted)} topics", file=sys.stderr)
        finally:
            drop_workdir(workdir, keep=args.keep_logs)
    if stages:
        anchor_med, stage_med = statistics.median(anchors), statistics.median(stages)
        print(
            f"median of {len(stages)}: anchor (aiokafka consume+produce) {anchor_med:8.0f} ev/s  "
            f"stage {args.stage} {stage_med:8.0f} ev/s  ratio stage/anchor {stage_med / anchor_med:6.3f}"
        )


if __name__ == "__main__":
    main()
