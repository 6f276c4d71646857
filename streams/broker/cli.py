"""``streams broker start|stop|status|logs``: the local broker from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from streams.errors import StreamsError


def add_parser(subparsers: Any) -> None:  # argparse's _SubParsersAction is private API
    """Add the ``broker`` sub-command to an ``ArgumentParser.add_subparsers()`` result."""
    broker = subparsers.add_parser("broker", help="run a local Apache Kafka broker (KRaft, single node)")
    actions = broker.add_subparsers(dest="broker_command", required=True, metavar="{start,stop,status,logs}")

    start = actions.add_parser("start", help="start (or reuse) the broker and wait until it answers")
    start.add_argument("--version", help="Kafka release, e.g. 3.9.1 or 4.1.1 (default: settings.kafka_version)")
    start.add_argument("--fresh", action="store_true", help="stop it and wipe this version's data first")
    start.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    start.set_defaults(func=_start)

    stop = actions.add_parser("stop", help="stop the broker this kafka_home started")
    stop.add_argument("--grace", type=float, default=30.0, help="seconds between SIGTERM and SIGKILL")
    stop.set_defaults(func=_stop)

    status = actions.add_parser("status", help="say what runs on the broker port (exit 0 when ready)")
    status.set_defaults(func=_status)

    logs = actions.add_parser("logs", help="print the end of the broker's console log")
    logs.add_argument("-n", "--lines", type=int, default=40, help="how many lines")
    logs.set_defaults(func=_logs)


def _fail(exc: StreamsError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


def _start(args: argparse.Namespace) -> int:
    from streams.broker.api import ensure_broker

    try:
        handle = ensure_broker(version=args.version, fresh=args.fresh, timeout=args.timeout)
    except StreamsError as exc:
        return _fail(exc)
    what = f"broker {handle.version or '(not started from this kafka_home)'}"
    if handle.started_by_us:
        print(f"{what} ready on {handle.bootstrap} (pid {handle.pid}, started in {handle.startup_seconds:.1f} s)")
    else:
        pid = f"pid {handle.pid}" if handle.pid else "pid unknown"
        print(f"{what} already running on {handle.bootstrap} ({pid}), reused")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from streams.broker.api import broker_status, stop_broker

    try:
        stopped = stop_broker(grace=args.grace)
    except StreamsError as exc:
        return _fail(exc)
    if stopped is not None:
        print(f"broker {stopped.version} stopped (pid {stopped.pid}, 127.0.0.1:{stopped.port})")
        return 0
    status = broker_status()
    if status.state == "foreign":
        print(f"the broker on {status.bootstrap} was not started from this kafka_home; left alone")
        return 1
    print(f"no broker running from this kafka_home ({status.bootstrap} {status.state})")
    return 0


def _status(args: argparse.Namespace) -> int:
    from streams.broker.api import broker_status

    status = broker_status()
    if status.state in {"ready", "starting"}:
        uptime = f", up {status.uptime_seconds:.0f} s" if status.uptime_seconds is not None else ""
        print(f"broker {status.version} {status.state} on {status.bootstrap} (pid {status.pid}{uptime})")
    elif status.state == "foreign":
        print(f"a broker not started from this kafka_home answers on {status.bootstrap} (cluster {status.cluster_id})")
    elif status.state == "blocked":
        print(f"{status.bootstrap} is held by something that does not answer Kafka")
    else:
        print(f"broker stopped ({status.bootstrap} free)")
    return 0 if status.state in {"ready", "foreign"} else 1


def _logs(args: argparse.Namespace) -> int:
    from streams.broker.api import broker_log_tail

    path, lines = broker_log_tail(lines=args.lines)
    if not lines:
        print(f"no broker log at {path}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streams.broker.cli start|stop|status|logs``."""
    parser = argparse.ArgumentParser(prog="python -m streams.broker.cli")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["broker", *(argv if argv is not None else sys.argv[1:])])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
