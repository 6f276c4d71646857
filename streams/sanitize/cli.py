"""``streams sanitize [FILE|-]``: hook events as JSONL in, sanitized JSONL out.

One output line per input line, same order. A line that is not a valid event becomes
``{"error": "line N: reason"}`` (its content is never echoed: it may hold PII), the reason goes
to stderr, and the exit code is 1 at the end. Only the sanitized string values change in a
good line: keys the input left out stay out.

Keyed placeholders: set STREAMS_SANITIZE_HASH_KEY (16+ bytes) to get ``<TYPE:digest>`` per tenant.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.sanitize.engine import SanitizedEvent


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sanitize",
        help="replace PII and secrets in hook events (JSONL in, JSONL out)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", nargs="?", default="-", help="JSONL file of hook events (default: stdin)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per engine call (default 1000)")
    parser.add_argument("--no-ner", action="store_true", help="pattern-only: skip the spaCy model")
    parser.set_defaults(func=run)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Decimals come from the input's own numbers; the shortest float repr round-trips them.
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _merge(result: SanitizedEvent, original: dict[str, Any]) -> str:
    """The input object with only its free-text fields swapped: keys it left out stay out."""
    if result.findings:
        original = dict(original)
        if "payload" in original:
            original["payload"] = result.event.payload
        if "error_message" in original:
            original["error_message"] = result.event.error_message
    return _dump(original)


def _batches(stream: IO[str], size: int) -> Iterator[list[tuple[int, str]]]:
    numbered = enumerate(stream, start=1)
    while batch := list(itertools.islice(numbered, size)):
        yield batch


def run(args: argparse.Namespace) -> int:
    from streams.errors import StreamsError
    from streams.models import HookEvent
    from streams.sanitize.engine import Sanitizer
    from streams.serde import parse_json_object, validate
    from streams.settings import get_settings

    key = get_settings().sanitize_hash_key
    try:
        sanitizer = Sanitizer("" if args.no_ner else None, secret=key.get_secret_value().encode() if key else None)
    except ValueError as exc:
        print(f"streams sanitize: {exc}", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print("streams sanitize: --batch-size must be at least 1", file=sys.stderr)
        return 2

    bad = 0
    try:
        # Closed in the finally below unless it is stdin.
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        print(f"streams sanitize: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    out = sys.stdout
    try:
        for batch in _batches(source, args.batch_size):
            lines: list[str | None] = []  # an output line, or None for a slot the engine fills
            events: list[HookEvent] = []
            originals: list[dict[str, Any]] = []
            for number, line in batch:
                try:
                    obj = parse_json_object(line)
                    events.append(validate(HookEvent, obj))
                    originals.append(obj)
                    lines.append(None)
                except StreamsError as exc:
                    bad += 1
                    reason = f"line {number}: {exc}"
                    print(f"streams sanitize: {reason}", file=sys.stderr)
                    lines.append(_dump({"error": reason}))
            results = iter(zip(sanitizer.sanitize_events(events), originals, strict=True))
            for slot in lines:
                out.write((slot if slot is not None else _merge(*next(results))) + "\n")
        out.flush()
    finally:
        if source is not sys.stdin:
            source.close()
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streams")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sanitize", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
