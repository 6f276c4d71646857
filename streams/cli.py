"""The `streams` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO

from streams import __version__
from streams.errors import BufferFullError, StreamsError, ValidationError
from streams.settings import get_settings

if TYPE_CHECKING:
    from streams.topology import Topology

log = logging.getLogger("streams.cli")


def _filters(values: Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for item in values:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise StreamsError(f"--filter expects FIELD=VALUE, got {item!r}")
        out.append((field, value))
    return out


def _topic_name(name_or_key: str) -> str:
    from streams.topology import load_topology

    settings = get_settings()
    spec = load_topology(settings.topics_file).resolve(name_or_key)
    return spec.name if spec else name_or_key


# ---------------------------------------------------------------- topics
def _import_state(bootstrap: str, topology: Topology, app_ids: list[str]) -> int:
    from streams.state_import import import_state

    if not app_ids:
        print("import-state needs --from-app-id (the STREAMS_APP_ID the old workers ran with)", file=sys.stderr)
        return 2
    results = asyncio.run(import_state(bootstrap, topology, app_ids))
    for r in results:
        done = f"skipped: {r.skipped}" if r.skipped else f"{r.records} records imported"
        print(f"{r.source} -> {r.target}: {done}")
    if not results:
        print("no old changelog of these app ids exists: nothing to import")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from streams import topics_admin
    from streams.topology import load_topology

    settings = get_settings()
    topology = load_topology(settings.topics_file, settings.schemas_dir)
    if args.action == "list":
        for spec in topology.topics.values():
            print(
                f"{spec.name:<24} {spec.partitions:>3}p rf={spec.replication_factor} {spec.cleanup_policy:<8} "
                f"retention.ms={spec.retention_ms:<12} schema={spec.schema_name or '-'}"
            )
        return 0
    if args.action == "check":
        plans = asyncio.run(topics_admin.check(settings.bootstrap_servers, topology))
        drift = [line for p in plans for line in p.describe()]
        for line in drift:
            print(f"DRIFT {line}")
        print(f"{len(plans) - sum(1 for p in plans if not p.in_sync)}/{len(plans)} topics match topics.yaml")
        return 1 if drift else 0
    if args.action == "import-state":
        return _import_state(settings.bootstrap_servers, topology, args.from_app_id)
    plans = asyncio.run(topics_admin.apply(settings.bootstrap_servers, topology))
    for p in plans:
        if p.create:
            print(f"created {p.spec.name} ({p.spec.partitions} partitions)")
        for line in [] if p.create else p.describe():
            print(f"fixed   {line}")
    changed = sum(1 for p in plans if not p.in_sync)
    print(f"{len(plans)} topics in topics.yaml, {changed} changed, {len(plans) - changed} already in sync")
    problems = [line for p in plans for line in p.problems]
    return 1 if problems else 0


# ---------------------------------------------------------------- publish
def _lines(path: str) -> tuple[TextIO, bool]:
    if path == "-":
        return sys.stdin, False
    return open(path, encoding="utf-8", errors="replace"), True  # closed by the caller


async def _publish(args: argparse.Namespace) -> int:
    from streams import serde
    from streams.publisher import Publisher

    settings = get_settings()
    rejected = 0
    stream, close = _lines(args.file)
    publisher = Publisher(
        settings.bootstrap_servers,
        _topic_name(args.topic),
        encoding=args.encoding,
        buffer=settings.publisher_buffer,
        max_event_bytes=settings.max_event_bytes,
    )
    await publisher.start()
    futures = []
    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                if len(line.encode()) > settings.max_event_bytes:
                    raise ValidationError([("(line)", f"longer than {settings.max_event_bytes} bytes")])
                event = serde.parse_json_object(line.strip())
                while True:
                    try:
                        futures.append((number, publisher.publish_nowait(event)))
                        break
                    except BufferFullError:
                        await publisher.flush()  # the CLI may wait; a daemon would not
            except StreamsError as exc:
                rejected += 1
                print(f"line {number}: rejected: {exc}", file=sys.stderr)
        await publisher.flush()
    finally:
        if close:
            stream.close()
        await publisher.stop()
    failed = 0
    for number, fut in futures:
        if fut.exception() is not None:
            failed += 1
            print(f"line {number}: not published: {fut.exception()}", file=sys.stderr)
    print(f"published {len(futures) - failed} events to {publisher.topic}, rejected {rejected}, failed {failed}")
    return 1 if rejected or failed else 0


def cmd_publish(args: argparse.Namespace) -> int:
    return asyncio.run(_publish(args))


# ---------------------------------------------------------------- tail
def cmd_tail(args: argparse.Namespace) -> int:
    from streams.tail import tail

    settings = get_settings()
    follow = args.follow or not args.from_beginning  # like tail -f when no start is given
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            tail(
                settings.bootstrap_servers,
                _topic_name(args.topic),
                from_beginning=args.from_beginning,
                follow=follow,
                as_json=args.json,
                filters=_filters(args.filter),
                limit=args.limit,
                idle_timeout=args.idle_timeout,
            )
        )
    return 0


# ---------------------------------------------------------------- worker
def cmd_worker(args: argparse.Namespace) -> int:
    from streams.app import run_worker

    run_worker(get_settings(), stages=args.only or None, loglevel=args.log_level)


# ---------------------------------------------------------------- simulate
def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.simulator import SimConfig, run_simulation

    config = SimConfig(
        events=args.events,
        rate=args.rate,
        tenants=args.tenants,
        seed=args.seed,
        pii_rate=args.pii_rate,
        error_burst=args.error_burst,
        bad_rate=args.bad_rate,
    )
    settings = get_settings()
    if args.stdout:
        return run_simulation(config, out=sys.stdout)
    return run_simulation(config, bootstrap=settings.bootstrap_servers, topic=_topic_name("raw"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streams", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streams {__version__}")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("topics", help="create or check the topics of topics.yaml")
    p.add_argument("action", choices=["apply", "check", "list", "import-state"])
    p.add_argument(
        "--from-app-id", action="append", default=[], metavar="APP_ID",
        help="import-state: copy this app id's old Faust changelogs into the state.* topics (repeatable)",
    )  # fmt: skip
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("publish", help="publish JSONL hook events (a file or - for stdin)")
    p.add_argument("file", help="JSONL file, or - for stdin")
    p.add_argument("--topic", default="raw", help="topic key or name (default: the raw intake topic)")
    p.add_argument("--encoding", choices=["avro", "json"], default="avro")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("tail", help="print the records of a topic")
    p.add_argument("topic", help="topic key (raw, incidents, ...) or Kafka name")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--follow", "-f", action="store_true", help="keep waiting for new records")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE", help="dotted paths allowed")
    p.add_argument("--limit", type=int, default=None, help="stop after N records")
    p.add_argument("--idle-timeout", type=float, default=None, help="stop following after N idle seconds")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("worker", help="run the Faust worker (all stages, or --only some)")
    p.add_argument("--only", nargs="+", choices=["sanitize", "cost", "incidents", "audit"], metavar="STAGE")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("simulate", help="simulated agent daemons publishing hook events")
    p.add_argument("--events", type=int, default=500, help="how many events (0 = until interrupted)")
    p.add_argument("--rate", type=float, default=50.0, help="events per second (0 = as fast as possible)")
    p.add_argument("--tenants", type=int, default=4)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--pii-rate", type=float, default=0.2, help="share of events with PII in the payload")
    p.add_argument("--error-burst", action="store_true", help="inject a burst of one error code")
    p.add_argument("--bad-rate", type=float, default=0.0, help="share of malformed events (JSON intake)")
    p.add_argument("--stdout", action="store_true", help="write JSONL to stdout instead of publishing")
    p.set_defaults(func=cmd_simulate)

    for add_parser in _extensions():
        add_parser(sub)
    return parser


# Sub-commands that live with their capability.
_EXTENSIONS = (
    "streams.broker.cli",
    "streams.sanitize.cli",
    "streams.cost.cli",
    "streams.protection.cli",
    "streams.ops.top",
)


def _extensions() -> list[Callable[[Any], None]]:
    import importlib

    return [importlib.import_module(name).add_parser for name in _EXTENSIONS]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from streams import logs

    logs.setup(args.log_level)
    try:
        code: int = args.func(args)
    except StreamsError as exc:
        print(f"streams: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `streams tail ... | head`: the reader left, that is not an error
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
