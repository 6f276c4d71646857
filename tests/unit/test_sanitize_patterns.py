"""The pattern catalogue: screens are supersets of their regexes; validators follow the specs."""

from __future__ import annotations

import re

import pytest

from streams.sanitize.patterns import SPECS
from streams.sanitize.screening import Screen
from streams.sanitize.validators import iban_ok, luhn_ok, refine_ipv4, ssn_ok

# One text per recognizer that its regex matches; the screen must report it.
SAMPLES = {
    "email": "to a.b@example.com",
    "phone_nanp": "call (428) 495-7953",
    "phone_intl": "ring +44 20 7946 0958",
    "phone_context": "phone: 4155550123",
    "us_ssn": "ssn 165-12-7295",
    "us_ssn_context": "SSN: 165127295",
    "credit_card": "card 4401 9516 9631 5010",
    "ipv4": "from 92.126.89.110",
    "ipv6": "from 2001:db8::1",
    "iban": "iban GB36ZKHU66316743195466",
    "anthropic_key": "sk-ant-api03-" + "aB3" * 10,
    "openai_key": "sk-proj-" + "aB3" * 10,
    "aws_access_key": "AKIA" + "IOSFODNN7EXAMPLE",
    "aws_secret_key": "aws_secret_access_key=" + "aB3/" * 10,
    "github_token": "ghp_" + "aB3" * 12,
    "slack_token": "xoxb-" + "1234567890-abc",
    "stripe_key": "sk_" + "test_" + "aB3" * 5,
    "google_api_key": "AIza" + "aB3" * 11 + "xy",
    "jwt": "eyJhbGciOi.eyJzdWIiOi.sig",
    "bearer_token": "Bearer " + "aB3" * 8,
    "url_password": "redis://user:pw12@host",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    "password_assignment": "password=hunter22",
    "secret_assignment": "api_key: abcd1234efgh",
    "secret_flag": "--password hunter22",
    "person_cue": "my name is Chloe Sanford",
    "person_contact": "Call Arjun Patel back",
}


@pytest.fixture(scope="module")
def screen() -> Screen:
    return Screen(SPECS)


def test_every_spec_has_a_sample() -> None:
    assert {s.name for s in SPECS} == set(SAMPLES)


@pytest.mark.parametrize("index", range(len(SPECS)), ids=[s.name for s in SPECS])
def test_screen_reports_what_the_regex_matches(screen: Screen, index: int) -> None:
    spec = SPECS[index]
    text = SAMPLES[spec.name]
    assert re.search(spec.regex, text, spec.flags | re.ASCII), f"sample does not match {spec.name}"
    assert index in screen.hits(text)


def test_screen_is_quiet_on_identifiers(screen: Screen) -> None:
    assert screen.hits("run-42 req_abc123 worker-7f9c8d-x2x9z 70682 ms v1.2.3") == []


def test_validators() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")
    assert ssn_ok("165-12-7295")
    assert not any(ssn_ok(v) for v in ("000-12-7295", "666-12-7295", "912-12-7295", "165-00-7295", "165-12-0000"))
    text = "a 10.0.0.1:8080 b 8.8.8.8:53 c 127.0.0.1 d 10.0.0.1"
    spans = {text[m.start() : m.end()]: refine_ipv4(text, m.start(), m.end()) for m in re.finditer(r"[\d.]{7,}", text)}
    assert spans["8.8.8.8"] is not None
    assert refine_ipv4(text, 2, 10) is None  # private address with a port: an endpoint
    assert refine_ipv4(text, 27, 36) is None  # loopback
    assert refine_ipv4(text, len(text) - 8, len(text)) is not None  # private address alone


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Call Arjun Patel back at noon", "Arjun Patel"),
        ("please email Maria Garcia today", "Maria Garcia"),
        ("customer Wesley Jones called", "Wesley Jones"),
    ],
)
def test_contact_cue_takes_a_full_name(text: str, name: str) -> None:
    from streams.sanitize.engine import Sanitizer

    out = Sanitizer("").sanitize_texts([text])[0].text
    assert name not in out and "<PERSON>" in out


def test_contact_cue_leaves_teams_alone() -> None:
    from streams.sanitize.engine import Sanitizer

    assert (
        Sanitizer("").sanitize_texts(["Contact Support Team about v2.3.1"])[0].text
        == "Contact Support Team about v2.3.1"
    )
