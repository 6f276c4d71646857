"""`streams forget`, `streams audit verify` and `streams retention show`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from datetime import UTC, datetime
from typing import Any

from streams.errors import StreamsError
from streams.settings import get_settings


def add_parser(subparsers: Any) -> None:  # argparse's _SubParsersAction is private API
    p = subparsers.add_parser("forget", help="right to delete: shred a user's vault keys and record the proof")
    p.add_argument("user_id")
    p.add_argument("--requested-by", help="who asked (default: cli:<login name>)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait for the deletion record")
    p.set_defaults(func=_forget)

    p = subparsers.add_parser("audit", help="the hash-chained audit trail")
    p.add_argument("action", choices=["verify"])
    p.set_defaults(func=_audit)

    p = subparsers.add_parser("retention", help="per-tenant retention of vault originals (retention.yaml)")
    p.add_argument("action", choices=["show"])
    p.set_defaults(func=_retention)


async def _publish(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    from streams.kafka import broker_errors, producer

    client = producer(bootstrap)
    async with broker_errors(bootstrap):
        await client.start()
    try:
        await client.send_and_wait(topic, value=value, key=key)
    finally:
        await client.stop()


async def _scan(bootstrap: str, topic: str, *, since_ms: int | None = None) -> list[Any]:
    """Every record of a topic (from ``since_ms`` if given) up to its end now."""
    from streams.kafka import read_range

    return [message async for message in read_range(bootstrap, topic, since_ms=since_ms)]


def _forget(args: argparse.Namespace) -> int:
    from streams import serde
    from streams.models import DeletionRecord
    from streams.protection.forget import encode_command, forget_request
    from streams.topology import load_topology

    settings = get_settings()
    topology = load_topology(settings.topics_file)
    command = forget_request(args.user_id, args.requested_by or f"cli:{getpass.getuser()}")
    requests = topology["deletion_requests"].name
    # Keyed by the user id: the default partitioner puts it on the partition of the user's events.
    asyncio.run(_publish(settings.bootstrap_servers, requests, command.user_id.encode(), encode_command(command)))
    print(f"deletion request {command.request_id} published to {requests}")
    if args.wait <= 0:
        return 0
    deletion_id = f"del-{command.request_id}"
    deadline = time.monotonic() + args.wait
    since = int(command.requested_at.timestamp() * 1000) - 1000  # records of this request are newer
    found: list[DeletionRecord] = []

    async def wait() -> None:
        while not found and time.monotonic() < deadline:
            for m in await _scan(settings.bootstrap_servers, topology["deletions"].name, since_ms=since):
                try:
                    record = serde.decode(DeletionRecord, m.value)
                except StreamsError:
                    continue
                if record.deletion_id == deletion_id:
                    found.append(record)
            if not found:
                await asyncio.sleep(1.0)

    asyncio.run(wait())
    if not found:
        print(f"no deletion record yet for {command.request_id}; is the sanitize stage running?", file=sys.stderr)
        return 1
    record = found[0]
    print(f"{record.deletion_id}: verified={record.verified}; {record.detail}")
    for item in record.removed:
        print(f"  removed {item}")
    return 0 if record.verified else 1


def _audit(args: argparse.Namespace) -> int:
    from streams import serde
    from streams.models import AuditRecord
    from streams.protection.audit import verify_chain
    from streams.topology import load_topology

    settings = get_settings()
    topic = load_topology(settings.topics_file)["audit"].name
    messages = asyncio.run(_scan(settings.bootstrap_servers, topic))
    by_partition: dict[int, list[tuple[int, AuditRecord]]] = {}
    undecodable: list[tuple[int, int]] = []
    for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
        try:
            by_partition.setdefault(m.partition, []).append((m.offset, serde.decode(AuditRecord, m.value)))
        except StreamsError:
            undecodable.append((m.partition, m.offset))
    broken = 0
    for partition in sorted(by_partition):
        report = verify_chain(partition, by_partition[partition])
        if report.ok:
            extra = f", {report.duplicates} exact re-send(s) skipped" if report.duplicates else ""
            print(f"partition {partition}: {report.records} records, chain intact{extra}")
        else:
            broken += 1
            print(f"partition {partition}: BROKEN at offset {report.broken_offset}: {report.broken_reason}")
    for partition, offset in undecodable:
        broken += 1
        print(f"partition {partition}: BROKEN at offset {offset}: not an audit record")
    print(f"{topic}: {len(messages)} records in {len(by_partition)} partitions, {broken} broken")
    return 1 if broken else 0


def _retention(args: argparse.Namespace) -> int:
    from streams.protection.retention import load_policy

    settings = get_settings()
    policy = load_policy(settings.retention_file)
    now = datetime.now(UTC)
    print(f"default: {policy.default_days} days (cutoff {policy.cutoff_for('', now):%Y-%m-%d %H:%M} UTC)")
    for tenant in sorted(policy.tenants):
        print(f"{tenant}: {policy.days_for(tenant)} days (cutoff {policy.cutoff_for(tenant, now):%Y-%m-%d %H:%M} UTC)")
    return 0
