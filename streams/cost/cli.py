"""`streams chargeback` (from the live tables) and `streams replay` (rebuilt from the topic)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from streams.errors import StreamsError
from streams.settings import get_settings


def add_parser(subparsers: Any) -> None:  # argparse's _SubParsersAction is private API
    p = subparsers.add_parser("chargeback", help="per-tenant totals of a period from the live cost tables")
    p.add_argument("--period", required=True, help="a month (2026-11) or a day (2026-11-27), tenant-local")
    p.add_argument("--user", help="one tenant only")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument(
        "--worker",
        action="append",
        default=[],
        metavar="URL",
        help="a cost worker's web address (repeat for each worker; default: this machine's)",
    )
    p.set_defaults(func=_chargeback)

    p = subparsers.add_parser("replay", help="rebuild chargeback from the retained sanitized topic")
    p.add_argument("--from", dest="start", required=True, help="ISO 8601 time (topic timestamp) to start at")
    p.add_argument("--to", dest="end", help="ISO 8601 time to stop at (default: the end now)")
    p.add_argument("--period", help="report period (default: the month of --from, UTC)")
    p.add_argument("--user", help="one tenant only")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--out", help="write the report to this file instead of stdout")
    p.set_defaults(func=_replay)


def _time(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StreamsError(f"{what}: {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _fetch(url: str, base: str, wait_seconds: float = 90.0) -> Any:
    """GET a worker's JSON; waits while it answers 503 (tables still recovering)."""
    from streams.protection.auth import client_token

    deadline = time.monotonic() + wait_seconds
    token = client_token(get_settings())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  # an operator-given http URL
    while True:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # an operator-given http URL
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 503 and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise StreamsError(f"{base}: {json.load(exc).get('error', exc.reason)}") from None
        except OSError as exc:
            raise StreamsError(
                f"cannot reach the cost worker at {base} ({exc}); is `streams worker` running?"
            ) from None


def _chargeback(args: argparse.Namespace) -> int:
    from streams.cost.chargeback import ChargebackRow, format_report

    settings = get_settings()
    workers = args.worker or [f"http://{settings.web_host}:{settings.web_port}"]
    rows: dict[str, ChargebackRow] = {}
    for base in workers:
        query = urllib.parse.urlencode({"period": args.period, **({"user": args.user} if args.user else {})})
        url = f"{base.rstrip('/')}/chargeback?{query}"
        doc = _fetch(url, base)
        for r in doc["tenants"]:  # each tenant lives on exactly one worker (its partition's owner)
            rows[r["user_id"]] = ChargebackRow(
                r["user_id"], r["period"], Decimal(r["charged_usd"]), r["charges"],
                Decimal(r["adjusted_usd"]), r["adjustments"],
            )  # fmt: skip
    sys.stdout.write(format_report([rows[k] for k in sorted(rows)], args.period, args.format))
    return 0


async def replay(
    bootstrap: str, topic: str, start: datetime, end: datetime | None, budgets_file: Any
) -> tuple[Any, int]:
    """Every sanitized event with a topic timestamp in [start, end) through the live accounting."""

    from streams import serde
    from streams.cost.budgets import BudgetBook
    from streams.cost.chargeback import Replay
    from streams.kafka import read_range
    from streams.models import HookEvent

    accumulator = Replay(BudgetBook(budgets_file).config)
    end_ms = int(end.timestamp() * 1000) if end else None
    read = 0
    # A fresh group id: a replay never moves the live workers' offsets, and commits nothing.
    group = f"streams-replay-{uuid.uuid4().hex[:12]}"
    async for message in read_range(bootstrap, topic, since_ms=int(start.timestamp() * 1000), group_id=group):
        if end_ms is not None and message.timestamp >= end_ms:
            continue
        read += 1
        try:
            event = serde.decode(HookEvent, message.value)
        except StreamsError:
            continue  # the live stage dead-lettered it too; it is in no total
        accumulator.add(event, received_at=datetime.fromtimestamp(message.timestamp / 1000, UTC))
    return accumulator, read


def _replay(args: argparse.Namespace) -> int:
    from streams.cost.chargeback import format_report
    from streams.topology import load_topology

    settings = get_settings()
    start = _time(args.start, "--from")
    end = _time(args.end, "--to") if args.end else None
    period = args.period or start.astimezone(UTC).strftime("%Y-%m")
    topic = load_topology(settings.topics_file)["sanitized"].name
    accumulator, read = asyncio.run(replay(settings.bootstrap_servers, topic, start, end, settings.budgets_file))
    text = format_report(accumulator.report(period, args.user), period, args.format)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    print(f"replayed {read} records of {topic}", file=sys.stderr)
    return 0
