"""`streams top`: a live terminal view of a worker: throughput per stage and consumer lag
(from its /metrics), spend against the monthly budget per tenant (from /chargeback, when the
worker runs the cost stage), and the open incidents (from the incidents topic)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streams.settings import get_settings


def add_parser(subparsers: Any) -> None:  # argparse's _SubParsersAction is private API
    p = subparsers.add_parser("top", help="live view: throughput, lag, spend against budget, open incidents")
    p.add_argument("--url", default=None, help="the worker's web address (default: this machine's worker)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    p.add_argument("--once", action="store_true", help="print one frame and exit (no screen clearing)")
    p.add_argument("--incident-seconds", type=float, default=5.0, help="with --once: how long to read incidents")
    p.set_defaults(func=_run)


@dataclass
class Sample:
    at: float
    events_in: dict[str, float] = field(default_factory=dict)  # stage -> counter
    lag: dict[str, float] = field(default_factory=dict)  # topic -> summed lag over partitions
    ready: float | None = None


def parse_metrics(text: str, at: float) -> Sample:
    sample = Sample(at)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "streams_events_in_total":
                sample.events_in[s.labels["stage"]] = s.value
            elif s.name == "swarm_queue_depth":
                topic = s.labels["topic"]
                sample.lag[topic] = sample.lag.get(topic, 0.0) + s.value
            elif s.name == "streams_ready":
                sample.ready = s.value
    return sample


def throughput(previous: Sample | None, current: Sample) -> dict[str, float]:
    """Records per second per stage between two samples (0 for the first one)."""
    if previous is None or current.at <= previous.at:
        return dict.fromkeys(current.events_in, 0.0)
    span = current.at - previous.at
    return {
        stage: max(0.0, value - previous.events_in.get(stage, 0.0)) / span for stage, value in current.events_in.items()
    }


@dataclass(frozen=True)
class Spend:
    tenant: str
    spent: Decimal
    limit: Decimal | None


@dataclass
class OpenIncidents:
    """Latest state per fingerprint; an incident is open until a ``resolved`` record arrives."""

    latest: dict[str, Any] = field(default_factory=dict)

    def add(self, incident: Any) -> None:
        self.latest[incident.fingerprint] = incident

    def open(self) -> list[Any]:
        rows = [i for i in self.latest.values() if i.status == "triggered"]
        order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
        return sorted(rows, key=lambda i: (order.get(i.severity, 9), i.first_seen))


def render(
    *,
    url: str,
    rates: Mapping[str, float],
    sample: Sample | None,
    spend: list[Spend] | None,
    incidents: list[Any],
    now: datetime,
    note: str = "",
) -> str:
    lines = [f"streams top  {url}  {now:%Y-%m-%d %H:%M:%S} UTC  {note}".rstrip(), ""]
    if sample is None:
        lines.append("worker: not reachable")
    else:
        ready = {None: "?", 1.0: "ready"}.get(sample.ready, "NOT READY")
        lines.append(f"worker: {ready}")
        lines.append("throughput (records/s)")
        for stage in sorted(rates):
            lines.append(f"  {stage:<16} {rates[stage]:>10.1f}   total {sample.events_in.get(stage, 0):>12.0f}")
        lines.append("consumer lag (records)")
        for topic in sorted(sample.lag):
            lines.append(f"  {topic:<40} {sample.lag[topic]:>10.0f}")
        if not sample.lag:
            lines.append("  (no assigned partitions yet)")
    lines.append("")
    lines.append("spend this month (USD) against budget")
    if spend is None:
        lines.append("  (no /chargeback: this worker does not run the cost stage, or it is recovering)")
    for row in spend or []:
        if row.limit:
            pct = row.spent / row.limit * 100
            bar = "#" * min(20, int(pct / 5))
            lines.append(f"  {row.tenant:<24} {row.spent:>12} / {row.limit:<10} {pct:>6.1f}% {bar}")
        else:
            lines.append(f"  {row.tenant:<24} {row.spent:>12}   (no monthly budget)")
    lines.append("")
    lines.append(f"open incidents: {len(incidents)}")
    for inc in incidents[:15]:
        lines.append(f"  [{inc.severity:<8}] {inc.incident_type:<24} x{inc.count:<5} since {inc.first_seen:%H:%M:%S}")
    return "\n".join(lines)


def _get(url: str, token: str | None, timeout: float = 3.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)  # noqa: S310  # an operator-given http(s) URL of a worker
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # same as above
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError:
        return 0, b""


def fetch_spend(url: str, token: str | None, now: datetime) -> list[Spend] | None:
    from streams.cost.budgets import BudgetBook

    status, body = _get(f"{url}/chargeback?period={now:%Y-%m}", token)
    if status != 200:
        return None
    try:
        config = BudgetBook(get_settings().budgets_file).config
    except Exception:  # an unreadable budgets file: still show spend, without limits
        config = None
    out = []
    for row in json.loads(body).get("tenants", []):
        tenant = str(row["user_id"])
        limit = None
        if config is not None:
            monthly = [b.limit_usd for b in config.for_tenant(tenant).budgets if b.period.value == "monthly"]
            limit = monthly[0] if monthly else None
        out.append(Spend(tenant, Decimal(str(row["total_usd"])), limit))
    return sorted(out, key=lambda s: s.spent, reverse=True)


async def follow_incidents(bootstrap: str, topic: str, into: OpenIncidents, stop: asyncio.Event) -> None:
    """Read the incidents topic from the beginning and keep following it."""
    from aiokafka import TopicPartition

    from streams import serde
    from streams.kafka import consumer
    from streams.models import Incident

    client = consumer(bootstrap, group_id=None, auto_offset_reset="earliest")
    try:
        await client.start()
        partitions = None
        while not partitions and not stop.is_set():
            await client._client.force_metadata_update()  # a new consumer knows no topic yet
            partitions = client.partitions_for_topic(topic)
            if not partitions:
                await asyncio.sleep(1.0)
        if not partitions:
            return
        client.assign([TopicPartition(topic, p) for p in partitions])
        await client.seek_to_beginning()
        while not stop.is_set():
            batches = await client.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    try:
                        into.add(serde.decode(Incident, message.value))
                    except Exception:  # noqa: S112  # a record this version cannot read is skipped in a viewer
                        continue
    except Exception as exc:  # the view keeps running without incidents
        print(f"streams top: incidents unavailable ({type(exc).__name__})", file=sys.stderr)
    finally:
        with contextlib.suppress(Exception, asyncio.CancelledError):  # closing is best effort in a viewer
            await client.stop()


async def _loop(args: argparse.Namespace) -> int:
    from streams.topology import load_topology

    settings = get_settings()
    url = (args.url or f"http://127.0.0.1:{settings.web_port}").rstrip("/")
    token = os.environ.get("STREAMS_API_TOKEN") or None
    incidents_topic = load_topology(settings.topics_file).resolve("incidents")
    incidents = OpenIncidents()
    stop = asyncio.Event()
    topic = incidents_topic.name if incidents_topic else "incidents"
    reader = asyncio.create_task(follow_incidents(settings.bootstrap_servers, topic, incidents, stop))
    previous: Sample | None = None
    try:
        if args.once:
            first = await asyncio.to_thread(_sample, url, token)
            await asyncio.sleep(min(args.incident_seconds, 1.0))
            previous = first
            await asyncio.sleep(max(0.0, args.incident_seconds - 1.0))
        while True:
            sample = await asyncio.to_thread(_sample, url, token)
            now = datetime.now(UTC)
            spend = await asyncio.to_thread(fetch_spend, url, token, now)
            rates = throughput(previous, sample) if sample else {}
            frame = render(url=url, rates=rates, sample=sample, spend=spend, incidents=incidents.open(), now=now)
            if args.once:
                print(frame)
                return 0
            sys.stdout.write("\x1b[H\x1b[2J" + frame + "\n")  # home + clear: redraw in place
            sys.stdout.flush()
            previous = sample or previous
            await asyncio.sleep(args.interval)
    finally:
        stop.set()
        await reader


def _sample(url: str, token: str | None) -> Sample | None:
    status, body = _get(f"{url}/metrics", token)
    return parse_metrics(body.decode(), time.monotonic()) if status == 200 else None


def _run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_loop(args))
    except KeyboardInterrupt:
        return 0
