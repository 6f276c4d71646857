"""Bytes on a topic <-> typed records. The only module that imports fastavro.

Wire formats:
- Avro single-object encoding (Avro spec): ``C3 01`` + the writer schema's 8-byte
  little-endian CRC-64-AVRO fingerprint + the binary body. The fingerprint names the
  writer's schema version, so a reader resolves any frozen version in ``schemas/history``
  against the current one without a schema registry.
- JSON: one UTF-8 object per message (what many daemons send). Numbers are parsed as
  ``Decimal`` so a JSON cost is never a float.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import fastavro
import fastavro.schema
import pydantic

from streams.errors import DecodeError, ValidationError
from streams.models import RECORD_TYPES, Record
from streams.settings import ROOT

MAGIC = b"\xc3\x01"
SCHEMAS_DIR = ROOT / "schemas"
R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class SchemaVersion:
    name: str  # full Avro name, e.g. streams.HookEvent
    path: Path
    parsed: Any
    fingerprint: bytes


def _fingerprint(schema: dict[str, Any]) -> bytes:
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    return int(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"), 16).to_bytes(8, "little")


def _load(path: Path) -> SchemaVersion:
    raw = json.loads(path.read_text())
    name = f"{raw.get('namespace', '')}.{raw['name']}".lstrip(".")
    # _write_hint=False and a fresh named-type table: each version parses on its own.
    parsed = fastavro.parse_schema(raw, _write_hint=False, named_schemas={})
    return SchemaVersion(name=name, path=path, parsed=parsed, fingerprint=_fingerprint(raw))


@cache
def _registry(schemas_dir: Path = SCHEMAS_DIR) -> tuple[dict[str, SchemaVersion], dict[bytes, SchemaVersion]]:
    current = {v.name: v for v in (_load(p) for p in sorted(schemas_dir.glob("*.avsc")))}
    by_fp = {v.fingerprint: v for v in current.values()}
    for p in sorted((schemas_dir / "history").glob("*.avsc")):
        v = _load(p)
        by_fp.setdefault(v.fingerprint, v)
    return current, by_fp


def current_schema(record_type: type[Record]) -> SchemaVersion:
    current, _ = _registry()
    try:
        return current[record_type.avro_name]
    except KeyError:
        raise DecodeError(f"no schema in schemas/ for {record_type.avro_name}") from None


def pydantic_problems(exc: pydantic.ValidationError) -> list[tuple[str, str]]:
    """(field, message) pairs that never echo the input value (it may hold PII)."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(event)"
        kind = err["type"]
        if kind == "missing":
            msg = "is required"
        elif kind == "extra_forbidden":
            msg = "is not a field of the contract"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        problems.append((loc, msg))
    return problems


def validate(record_type: type[R], data: Any) -> R:
    if not isinstance(data, dict):
        raise ValidationError([("(event)", "must be a JSON object")])
    try:
        return record_type.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(pydantic_problems(exc)) from None


def encode_avro(record: Record) -> bytes:
    schema = current_schema(type(record))
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(schema.fingerprint)
    fastavro.schemaless_writer(buf, schema.parsed, record.to_avro())
    return buf.getvalue()


def encode_json(record: Record) -> bytes:
    return json.dumps(record.to_json(), separators=(",", ":"), ensure_ascii=False).encode()


def is_avro(data: bytes) -> bool:
    return data[:2] == MAGIC


def decode_avro_dict(data: bytes, reader: SchemaVersion | None = None) -> tuple[SchemaVersion, dict[str, Any]]:
    """Decode a single-object-encoded value; resolve against ``reader`` (default: the writer's own)."""
    if len(data) < 10 or not is_avro(data):
        raise DecodeError("not Avro single-object encoding (missing C3 01 header)")
    _, by_fp = _registry()
    writer = by_fp.get(data[2:10])
    if writer is None:
        raise DecodeError(f"unknown Avro schema fingerprint {data[2:10].hex()}")
    try:
        value = fastavro.schemaless_reader(
            io.BytesIO(data[10:]), writer.parsed, reader.parsed if reader else writer.parsed
        )
    except Exception as exc:  # fastavro raises many types; all mean the body is corrupt
        raise DecodeError(f"corrupt Avro body for {writer.name}: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise DecodeError("Avro body is not a record")
    return writer, value


def parse_json_object(data: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(data, parse_float=Decimal)
    except UnicodeDecodeError:
        raise DecodeError("not UTF-8") from None
    except json.JSONDecodeError as exc:
        where = f"column {exc.colno}" if exc.lineno == 1 else f"line {exc.lineno} column {exc.colno}"
        raise DecodeError(f"malformed JSON at {where}: {exc.msg}") from None
    except RecursionError:
        raise DecodeError("JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise DecodeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def decode(record_type: type[R], data: bytes | None, *, max_bytes: int | None = None) -> R:
    """Bytes (Avro or JSON) -> a validated record, or DecodeError / ValidationError."""
    if data is None:
        raise DecodeError("empty value (tombstone)")
    if max_bytes is not None and len(data) > max_bytes:
        raise DecodeError(f"value of {len(data)} bytes exceeds the limit of {max_bytes}")
    if is_avro(data):
        writer, value = decode_avro_dict(data, current_schema(record_type))
        if writer.name != record_type.avro_name:
            raise DecodeError(f"expected {record_type.avro_name}, got {writer.name}")
        try:
            return record_type.from_avro(value)  # type: ignore[no-any-return]  # from_avro is typed per subclass
        except pydantic.ValidationError as exc:
            raise ValidationError(pydantic_problems(exc)) from None
    stripped = data.lstrip()
    if stripped[:1] != b"{":
        raise DecodeError("neither Avro (C3 01 header) nor a JSON object")
    return validate(record_type, parse_json_object(data))


def decode_any(data: bytes) -> tuple[str, dict[str, Any]]:
    """For tools that read any topic (tail): the Avro name (or "json") and a JSON-ready dict."""
    if is_avro(data):
        writer, value = decode_avro_dict(data)
        types = {t.avro_name: t for t in RECORD_TYPES}
        record_type = types.get(writer.name)
        if record_type is not None:
            try:
                return writer.name, record_type.from_avro(value).to_json()
            except pydantic.ValidationError:
                pass
        return writer.name, json.loads(json.dumps(value, default=str))
    return "json", json.loads(json.dumps(parse_json_object(data), default=str))
