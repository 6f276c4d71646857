"""The Python models and the Avro schemas describe the same records."""

from __future__ import annotations

import json
import types
import typing
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from streams.models import RECORD_TYPES, HookEvent, Record

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _schema_for(model: type[Record]) -> dict[str, Any]:
    name = model.avro_name.split(".")[-1]
    for path in SCHEMAS.glob("*.avsc"):
        data = json.loads(path.read_text())
        if data["name"] == name:
            return data
    raise AssertionError(f"no schema for {model.avro_name}")


def _avro_kind(avro_type: Any) -> tuple[bool, str]:
    """(nullable, kind) of an Avro field type."""
    nullable = False
    if isinstance(avro_type, list):
        nullable = "null" in avro_type
        rest = [t for t in avro_type if t != "null"]
        assert len(rest) == 1, f"only [null, T] unions are used: {avro_type}"
        avro_type = rest[0]
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "decimal":
            assert (avro_type["precision"], avro_type["scale"]) == (18, 9)
            return nullable, "decimal"
        if logical == "timestamp-micros":
            return nullable, "timestamp"
        if avro_type["type"] == "array":
            return nullable, f"array<{_avro_kind(avro_type['items'])[1]}>"
        if avro_type["type"] == "record":
            return nullable, f"record:{avro_type['name']}"
        return nullable, avro_type["type"]
    return nullable, avro_type


def _python_kind(model: type[Record], name: str, annotation: Any) -> tuple[bool, str]:
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        nullable = type(None) in args
        rest = [a for a in args if a is not type(None)]
        assert len(rest) == 1
        annotation = rest[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return nullable, "string"
    if origin is list:
        return nullable, f"array<{_python_kind(model, name, typing.get_args(annotation)[0])[1]}>"
    if origin is dict and model is HookEvent and name == "payload":
        return nullable, "string"  # free-form JSON travels as a JSON string
    if isinstance(annotation, type):
        if issubclass(annotation, Record):
            return nullable, f"record:{annotation.avro_name.split('.')[-1]}"
        if issubclass(annotation, Enum | str):
            return nullable, "string"
        if issubclass(annotation, bool):
            return nullable, "boolean"
        if issubclass(annotation, int):
            return nullable, "int|long"
        if issubclass(annotation, Decimal):
            return nullable, "decimal"
        if issubclass(annotation, datetime):
            return nullable, "timestamp"
        if issubclass(annotation, bytes):
            return nullable, "bytes"
    raise AssertionError(f"{model.__name__}.{name}: no Avro mapping for {annotation!r}")


def _check(model: type[Record], schema: dict[str, Any]) -> None:
    avro_fields = {f["name"]: f for f in schema["fields"]}
    py_fields = model.model_fields
    assert set(avro_fields) == set(py_fields), f"{model.__name__}: field sets differ"
    hints = typing.get_type_hints(model, include_extras=True)
    for name, field in avro_fields.items():
        nullable, kind = _avro_kind(field["type"])
        py_nullable, py_kind = _python_kind(model, name, hints[name])
        assert nullable == py_nullable, f"{model.__name__}.{name}: nullability differs"
        if py_kind == "int|long":
            assert kind in ("int", "long"), f"{model.__name__}.{name}: {kind} vs integer"
        else:
            assert kind == py_kind, f"{model.__name__}.{name}: Avro {kind} vs Python {py_kind}"
            if kind.startswith("record:"):
                nested = typing.get_args(hints[name])[0] if typing.get_args(hints[name]) else hints[name]
                _check(nested, field["type"])
        has_default = "default" in field
        if not py_fields[name].is_required():
            assert has_default, f"{model.__name__}.{name}: optional in Python but no Avro default"


@pytest.mark.parametrize("model", RECORD_TYPES, ids=lambda m: m.__name__)
def test_model_mirrors_schema(model: type[Record]) -> None:
    _check(model, _schema_for(model))


def test_every_schema_has_a_model() -> None:
    names = {m.avro_name.split(".")[-1] for m in RECORD_TYPES}
    for path in SCHEMAS.glob("*.avsc"):
        assert json.loads(path.read_text())["name"] in names, f"{path.name} has no model in streams/models.py"


def test_drift_is_detected() -> None:
    """The checker itself fails on a drifted schema (a test that cannot fail is a defect)."""
    schema = _schema_for(HookEvent)
    drifted = {**schema, "fields": [f for f in schema["fields"] if f["name"] != "region"]}
    with pytest.raises(AssertionError, match="field sets differ"):
        _check(HookEvent, drifted)
    retyped = {
        **schema,
        "fields": [{**f, "type": "string"} if f["name"] == "latency_ms" else f for f in schema["fields"]],
    }
    with pytest.raises(AssertionError):
        _check(HookEvent, retyped)


def test_no_float_in_any_schema() -> None:
    for path in SCHEMAS.rglob("*.avsc"):
        assert '"float"' not in path.read_text() and '"double"' not in path.read_text(), path.name
