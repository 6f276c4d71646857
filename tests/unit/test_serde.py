from __future__ import annotations

import json
from decimal import Decimal

import pytest

from streams import serde
from streams.errors import DecodeError, ValidationError
from streams.models import HookEvent, format_money

GOOD = {
    "event_id": "0b6f1c",
    "event_type": "post_agent_call",
    "user_id": "acme-corp",
    "run_id": "run-42",
    "timestamp": "2026-11-27T20:01:51.123Z",
    "source": "kairos@host-1",
    "model": "claude-sonnet-4-5",
    "cost_usd": "0.0123",
    "latency_ms": 1234,
    "error_code": None,
    "region": "us-east",
    "payload": {"prompt": "hello", "n": [1, 2.5, {"deep": True}]},
}


def _json(data: dict[str, object]) -> bytes:
    return json.dumps(data).encode()


def test_json_and_avro_decode_to_the_same_event() -> None:
    from_json = serde.decode(HookEvent, _json(GOOD))
    assert serde.decode(HookEvent, serde.encode_avro(from_json)) == from_json
    assert serde.decode(HookEvent, serde.encode_json(from_json)) == from_json
    assert from_json.cost_usd == Decimal("0.0123")
    assert from_json.payload["n"][1] == 2.5


def test_json_number_cost_is_exact() -> None:
    raw = _json(GOOD).replace(b'"0.0123"', b"0.1")
    event = serde.decode(HookEvent, raw)
    assert event.cost_usd == Decimal("0.1")
    assert format_money(event.cost_usd) == "0.100000"


def test_float_cost_from_python_is_rejected() -> None:
    with pytest.raises(ValidationError, match="cost_usd: must be a decimal string or integer, not a float"):
        serde.validate(HookEvent, {**GOOD, "cost_usd": 0.1})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"event_type": "post_agent_cal"}, "event_type: Input should be"),
        ({"timestamp": "2026-11-27T20:01:51"}, "timestamp: needs a time zone"),
        ({"timestamp": "yesterday"}, "timestamp: is not an ISO 8601 timestamp"),
        ({"cost_usd": "-1"}, "cost_usd: must not be negative"),
        ({"cost_usd": "abc"}, "cost_usd: is not a decimal number"),
        ({"cost_usd": "0.0000000001"}, "cost_usd: has more than 9 decimal places"),
        ({"latency_ms": -5}, "latency_ms: Input should be greater than or equal to 0"),
        ({"payload": [1, 2]}, "payload: must be a JSON object"),
        ({"surprise": 1}, "surprise: is not a field of the contract"),
        ({"user_id": ""}, "user_id: String should have at least 1 character"),
    ],
)
def test_validation_names_field_and_problem(change: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        serde.decode(HookEvent, _json({**GOOD, **change}))
    assert expected in str(info.value)


def test_missing_fields_are_all_named() -> None:
    with pytest.raises(ValidationError) as info:
        serde.decode(HookEvent, b'{"event_type": "tool_call"}')
    for field in ("event_id", "user_id", "timestamp", "source"):
        assert f"{field}: is required" in str(info.value)


def test_validation_errors_never_echo_values() -> None:
    secret = "jane.doe@example.com"
    with pytest.raises(ValidationError) as info:
        serde.decode(HookEvent, _json({**GOOD, "latency_ms": secret, "timestamp": secret, "cost_usd": secret}))
    assert secret not in str(info.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not json", "neither Avro"),
        (b'{"event_id": ', "malformed JSON"),
        (b"[1, 2]", "neither Avro"),
        (b"\xc3\x01\x00\x00\x00\x00\x00\x00\x00\x00rest", "unknown Avro schema fingerprint"),
        (b"{\xff\xfe}", "not UTF-8"),
        (None, "tombstone"),
    ],
)
def test_undecodable_bytes_get_a_clear_error(data: bytes | None, expected: str) -> None:
    with pytest.raises(DecodeError, match=expected):
        serde.decode(HookEvent, data)


def test_corrupt_avro_body() -> None:
    good = serde.encode_avro(serde.validate(HookEvent, GOOD))
    with pytest.raises(DecodeError, match="corrupt Avro body"):
        serde.decode(HookEvent, good[:14])


def test_oversized_value_is_rejected() -> None:
    big = _json({**GOOD, "payload": {"text": "x" * 5000}})
    with pytest.raises(DecodeError, match="exceeds the limit of 1024"):
        serde.decode(HookEvent, big, max_bytes=1024)


def test_timestamp_normalized_to_utc() -> None:
    event = serde.decode(HookEvent, _json({**GOOD, "timestamp": "2026-11-27T22:01:51+02:00"}))
    assert event.to_json()["timestamp"] == "2026-11-27T20:01:51.000000Z"


def test_deeply_nested_payload_is_rejected() -> None:
    payload: dict[str, object] = {}
    node = payload
    for _ in range(80):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]  # building a nested dict
    with pytest.raises(ValidationError, match="nested deeper"):
        serde.validate(HookEvent, {**GOOD, "payload": payload})


def test_decode_any_reports_kind() -> None:
    event = serde.validate(HookEvent, GOOD)
    kind, data = serde.decode_any(serde.encode_avro(event))
    assert kind == "streams.HookEvent" and data["cost_usd"] == "0.012300"
    kind, data = serde.decode_any(serde.encode_json(event))
    assert kind == "json" and data["user_id"] == "acme-corp"
