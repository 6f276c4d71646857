"""Schema evolution rules of schemas/README.md: every frozen version stays readable."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.utils import generate_many

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
HISTORY = sorted((SCHEMAS / "history").glob("*.avsc"))
_VERSIONED = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<n>\d+)\.avsc$")


def _parse(path: Path) -> Any:
    return fastavro.parse_schema(json.loads(path.read_text()), named_schemas={})


def _versions() -> dict[str, list[tuple[int, Path]]]:
    out: dict[str, list[tuple[int, Path]]] = {}
    for path in HISTORY:
        m = _VERSIONED.match(path.name)
        assert m, f"history file {path.name} must be named <schema>.v<N>.avsc"
        out.setdefault(m["name"], []).append((int(m["n"]), path))
    return {k: sorted(v) for k, v in out.items()}


def test_every_current_schema_is_frozen_as_its_newest_version() -> None:
    versions = _versions()
    for current in SCHEMAS.glob("*.avsc"):
        name = current.stem
        assert name in versions, f"{name}: freeze it as history/{name}.v1.avsc"
        newest = versions[name][-1][1]
        assert json.loads(newest.read_text()) == json.loads(current.read_text()), (
            f"{name}.avsc differs from {newest.name}: freeze the change as the next version"
        )


def _readable(writer: Path, reader: Path) -> None:
    writer_schema, reader_schema = _parse(writer), _parse(reader)
    for record in generate_many(writer_schema, 25):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, writer_schema, record)
        buf.seek(0)
        fastavro.schemaless_reader(buf, writer_schema, reader_schema)


@pytest.mark.parametrize("path", HISTORY, ids=lambda p: p.name)
def test_frozen_version_is_readable_by_current(path: Path) -> None:
    name = _VERSIONED.match(path.name)["name"]  # type: ignore[index]  # names checked above
    _readable(path, SCHEMAS / f"{name}.avsc")


def test_incompatible_change_is_caught(tmp_path: Path) -> None:
    """A new required field without a default breaks old data: the check must say so."""
    old = SCHEMAS / "history" / "hook_event.v1.avsc"
    data = json.loads(old.read_text())
    data["fields"].append({"name": "tenant_tier", "type": "string"})
    broken = tmp_path / "hook_event.avsc"
    broken.write_text(json.dumps(data))
    with pytest.raises(Exception, match=r"tenant_tier|default"):
        _readable(old, broken)


def test_old_avro_bytes_decode_as_current_model() -> None:
    """Single-object encoded v1 bytes (found by fingerprint) decode into today's HookEvent."""
    from streams import serde
    from streams.models import HookEvent

    v1 = json.loads((SCHEMAS / "history" / "hook_event.v1.avsc").read_text())
    record = {
        "event_id": "e-1",
        "event_type": "post_agent_call",
        "user_id": "acme",
        "run_id": "run-1",
        "timestamp": 1_764_273_711_123_000,
        "source": "kairos@host-1",
        "model": "claude-sonnet-4-5",
        "cost_usd": None,
        "latency_ms": 12,
        "error_code": None,
        "region": None,
        "payload": "{}",
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(v1, named_schemas={}), record)
    fingerprint = serde._fingerprint(v1)
    event = serde.decode(HookEvent, serde.MAGIC + fingerprint + buf.getvalue())
    assert event.event_id == "e-1" and event.input_tokens is None and event.latency_ms == 12
