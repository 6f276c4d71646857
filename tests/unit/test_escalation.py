"""Escalation: config errors with lines, secrets kept out of logs and reprs, and adapters
against real servers on loopback (aiohttp for Slack and PagerDuty, aiosmtpd for mail)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from streams.errors import ConfigError
from streams.incidents.adapters import PagerDutyAdapter, SlackAdapter, build_adapters, parse_retry_after
from streams.incidents.dispatch import Dispatcher
from streams.incidents.escalation import (
    DeliveryConfig,
    EscalationSecrets,
    Notification,
    load_escalations,
    parse_escalations,
)
from streams.incidents.metrics import new_metrics
from streams.models import BudgetAlert, BudgetKill, Incident, IncidentEvidence

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
FAST = DeliveryConfig(
    max_attempts=4, backoff_initial_seconds=0.01, backoff_max_seconds=0.02, retry_after_max_seconds=0.05
)
SLACK_PATH = "/services/T000/B000/XXXXSECRETXXXX"
ROUTING_KEY = "R0UTINGKEYSECRET0000000000000000"
SMTP_PASSWORD = "smtp-pass-SECRET"


# ------------------------------------------------------------------------------ config


def test_repo_escalations_yaml_loads() -> None:
    config = load_escalations(ROOT / "escalations.yaml")
    assert config.severities()["latency_regression_p99"] == "high"
    assert config.route("latency_regression_p99").adapters == ("pagerduty", "slack")  # type: ignore[union-attr]
    assert config.route("budget_kill") is not None


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("escalations:\n  repeat_error: {severity: urgent, adapters: [slack]}\n", 2, "severity"),
        ("escalations:\n  repeat_error:\n    severity: low\n    adapters: [slack, fax]\n", 4, "adapters"),
        ("escalations:\n  repeat_eror: {severity: low, adapters: [slack]}\n", 2, "unknown incident type"),
        ("escalations:\n  repeat_error: {severity: low, adapters: []}\n", 2, "adapters"),
        ("escalations:\n  repeat_error: {severity: low, adapters: [slack]}\n", 1, "no route for cost_spike"),
        ("escalations:\n  a: 1\n  a: 2\n", 3, "duplicate key"),
        ("escalations: [\n", 2, "not valid YAML"),
    ],
)
def test_broken_escalation_config_names_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_escalations(text, "escalations.yaml")
    message = str(err.value)
    assert f"escalations.yaml, line {line}" in message, message
    assert reason in message, message


def test_missing_secret_for_a_routed_adapter_is_refused_at_start() -> None:
    config = load_escalations(ROOT / "escalations.yaml")
    secrets = EscalationSecrets.from_env({"STREAMS_SLACK_WEBHOOK_URL": "http://x/hook"})
    with pytest.raises(ConfigError, match=r"adapter (email|pagerduty) is routed to but"):
        secrets.check(config)


def test_secrets_from_files_never_in_reprs_or_errors(tmp_path: Path) -> None:
    key_file = tmp_path / "pd"
    key_file.write_text(ROUTING_KEY + "\n")
    secrets = EscalationSecrets.from_env(
        {
            "STREAMS_SLACK_WEBHOOK_URL": "https://hooks.slack.com" + SLACK_PATH,
            "STREAMS_PAGERDUTY_ROUTING_KEY_FILE": str(key_file),
            "STREAMS_SMTP_HOST": "127.0.0.1",
            "STREAMS_SMTP_PASSWORD": SMTP_PASSWORD,
            "STREAMS_SMTP_FROM": "streams@example.org",
            "STREAMS_SMTP_TO": "oncall@example.org, sre@example.org",
        }
    )
    assert secrets.pagerduty_routing_key is not None
    assert secrets.pagerduty_routing_key.get_secret_value() == ROUTING_KEY
    adapters = build_adapters(secrets, FAST)
    shown = repr(secrets) + str(secrets) + repr(adapters) + json.dumps(secrets.model_dump(mode="json"))
    for secret in (SLACK_PATH, ROUTING_KEY, SMTP_PASSWORD):
        assert secret not in shown
    with pytest.raises(ConfigError) as err:
        EscalationSecrets.from_env({"STREAMS_SLACK_WEBHOOK_URL": "a", "STREAMS_SLACK_WEBHOOK_URL_FILE": "b"})
    assert "not both" in str(err.value)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None


# --------------------------------------------------------------------- loopback servers


@dataclass
class Recorder:
    """A fake Slack + PagerDuty: records every request, answers from a script per path."""

    url: str = ""
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((request.path, body))
        queue = self.script.get(request.path) or []
        status, headers = queue.pop(0) if queue else (200 if "services" in request.path else 202, {})
        text = "ok" if status == 200 else ("invalid_payload" if status == 400 else '{"status":"x"}')
        return web.Response(status=status, text=text, headers=headers)


@pytest.fixture
async def server() -> AsyncIterator[Recorder]:
    rec = Recorder()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None)  # its access log is the server's, not ours
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    box = _Mailbox()
    with socket.socket() as probe:  # a free port: aiosmtpd does not report the one it got for 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    yield box, port
    ctl.stop()


def incident(status: str = "triggered", at: datetime = NOW, kind: str = "latency_regression_p99") -> Incident:
    return Incident(
        fingerprint=f"{kind}-0123456789abcdef",
        incident_type=kind,
        severity="high",
        status=status,  # type: ignore[arg-type]
        first_seen=NOW,
        last_seen=at,
        count=3,
        summary="p99 latency 60000 ms above 30000 ms (model model-b, region eu-west)",
        evidence=IncidentEvidence(model="model-b", region="eu-west", observed="p99 60000 ms", threshold="> 30000"),
        runbook="streams tail hook.events.sanitized --filter model=model-b",
        emitted_at=at,
    )


def env_for(rec: Recorder, smtp_port: int | None = None) -> dict[str, str]:
    env = {
        "STREAMS_SLACK_WEBHOOK_URL": rec.url + SLACK_PATH,
        "STREAMS_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "STREAMS_PAGERDUTY_EVENTS_URL": rec.url + "/v2/enqueue",
    }
    if smtp_port:
        env |= {
            "STREAMS_SMTP_HOST": "127.0.0.1",
            "STREAMS_SMTP_PORT": str(smtp_port),
            "STREAMS_SMTP_FROM": "streams@example.org",
            "STREAMS_SMTP_TO": "oncall@example.org",
            "STREAMS_SMTP_STARTTLS": "false",
        }
    return env


async def test_pagerduty_trigger_and_resolve_share_the_dedup_key(server: Recorder) -> None:
    secrets = EscalationSecrets.from_env(env_for(server))
    pd = build_adapters(secrets, FAST)["pagerduty"]
    try:
        trig = await pd.send(Notification.from_incident(incident()))
        res = await pd.send(Notification.from_incident(incident("resolved", NOW.replace(minute=5))))
    finally:
        await pd.aclose()
    assert trig.outcome == res.outcome == "delivered" and trig.status == 202
    (p1, b1), (p2, b2) = server.requests
    assert p1 == p2 == "/v2/enqueue"
    assert b1["event_action"] == "trigger" and b2["event_action"] == "resolve"
    assert b1["dedup_key"] == b2["dedup_key"] == "latency_regression_p99-0123456789abcdef"
    assert b1["routing_key"] == ROUTING_KEY
    assert b1["payload"]["severity"] == "error" and b1["payload"]["source"]
    assert len(b1["payload"]["summary"]) <= 1024
    assert "runbook" in b1["payload"]["custom_details"]


async def test_429_then_accepted_honours_retry_after(server: Recorder) -> None:
    server.script["/v2/enqueue"] = [(429, {"Retry-After": "0"}), (202, {})]
    pd = PagerDutyAdapter(
        EscalationSecrets.from_env(env_for(server)).pagerduty_routing_key,  # type: ignore[arg-type]
        server.url + "/v2/enqueue",
        FAST,
    )
    try:
        result = await pd.send(Notification.from_incident(incident()))
    finally:
        await pd.aclose()
    assert result.outcome == "delivered" and result.attempts == 2


async def test_500_then_ok_retries_and_400_gives_up_with_reason(
    server: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = EscalationSecrets.from_env(env_for(server))
    slack = SlackAdapter(secrets.slack_webhook_url, FAST)  # type: ignore[arg-type]
    n = Notification.from_incident(incident())
    try:
        server.script[SLACK_PATH] = [(500, {}), (200, {})]
        ok = await slack.send(n)
        server.script[SLACK_PATH] = [(400, {})]
        bad = await slack.send(n)
        server.script[SLACK_PATH] = [(503, {})] * 10
        down = await slack.send(n)
    finally:
        await slack.aclose()
    assert ok.outcome == "delivered" and ok.attempts == 2
    assert bad.outcome == "rejected" and bad.attempts == 1 and bad.status == 400
    assert "invalid_payload" in bad.reason
    assert down.outcome == "failed" and down.attempts == FAST.max_attempts and "503" in down.reason
    body = server.requests[0][1]
    assert body["text"].startswith("[HIGH] latency_regression_p99") and body["blocks"]
    assert SLACK_PATH not in caplog.text and "SECRET" not in caplog.text


async def test_connection_refused_is_retried_then_failed_without_leaking_the_url() -> None:
    slack = SlackAdapter(
        EscalationSecrets.from_env({"STREAMS_SLACK_WEBHOOK_URL": "http://127.0.0.1:9" + SLACK_PATH}).slack_webhook_url,
        FAST,
    )  # type: ignore[arg-type]
    try:
        result = await slack.send(Notification.from_incident(incident()))
    finally:
        await slack.aclose()
    assert result.outcome == "failed" and "connection error" in result.reason
    assert SLACK_PATH not in result.reason


async def test_email_over_smtp(smtp: Any, server: Recorder) -> None:
    box, port = smtp
    adapters = build_adapters(EscalationSecrets.from_env(env_for(server, port)), FAST)
    result = await adapters["email"].send(Notification.from_incident(incident()))
    assert result.outcome == "delivered"
    assert len(box.messages) == 1
    mail = box.messages[0].decode()
    assert "Subject: [HIGH] latency_regression_p99" in mail and "Runbook" in mail


# ----------------------------------------------------------------------- dispatcher


async def test_dispatcher_routes_and_is_idempotent_across_restarts(server: Recorder, smtp: Any) -> None:
    _, port = smtp
    config = load_escalations(ROOT / "escalations.yaml").model_copy(update={"delivery": FAST})
    secrets = EscalationSecrets.from_env(env_for(server, port))
    secrets.check(config)
    ledger: dict[str, Any] = {}
    n = Notification.from_incident(incident())

    first = Dispatcher(config, build_adapters(secrets, FAST), ledger, metrics=new_metrics())
    await first.start()
    assert first.submit(n)
    await first.join()
    await first.stop()
    assert sorted(server.paths()) == sorted(["/v2/enqueue", SLACK_PATH])  # high: pagerduty + slack

    # A restarted worker with the same ledger reads the same record again: nothing resent.
    ledger = json.loads(json.dumps(ledger))
    second = Dispatcher(config, build_adapters(secrets, FAST), ledger, metrics=new_metrics())
    results = await second.deliver(n)
    await second.stop()
    assert {r.outcome for r in results} == {"duplicate"}
    assert len(server.requests) == 2
    # The resolve is another notification of the same incident: delivered.
    await second.deliver(Notification.from_incident(incident("resolved", NOW.replace(minute=9))))
    assert len(server.requests) == 4


async def test_failed_delivery_is_recorded_and_retried_later(server: Recorder) -> None:
    config = load_escalations(ROOT / "escalations.yaml").model_copy(update={"delivery": FAST})
    ledger: dict[str, Any] = {}
    adapters = build_adapters(EscalationSecrets.from_env(env_for(server)), FAST)
    dispatcher = Dispatcher(config, adapters, ledger, metrics=new_metrics())
    n = Notification.from_incident(incident(kind="repeat_error"))  # slack only
    server.script[SLACK_PATH] = [(503, {})] * FAST.max_attempts
    [result] = await dispatcher.deliver(n)
    assert result.outcome == "failed"
    assert ledger[n.ledger_key("slack")]["outcome"] == "failed"
    [again] = await dispatcher.deliver(n)
    assert again.outcome == "delivered"
    server.script[SLACK_PATH] = [(400, {})]
    other = Notification.from_incident(incident(kind="repeat_error", at=NOW.replace(minute=1)))
    [rejected] = await dispatcher.deliver(other)
    assert rejected.outcome == "rejected" and "400" in ledger[other.ledger_key("slack")]["reason"]
    await dispatcher.stop()


async def test_submit_never_blocks_and_refuses_when_full(server: Recorder) -> None:
    config = load_escalations(ROOT / "escalations.yaml").model_copy(
        update={"delivery": FAST.model_copy(update={"queue_size": 2})}
    )
    adapters = build_adapters(EscalationSecrets.from_env(env_for(server)), FAST)
    dispatcher = Dispatcher(config, adapters, {}, metrics=new_metrics())
    await dispatcher.start()
    accepted = [
        dispatcher.submit(Notification.from_incident(incident(kind="repeat_error", at=NOW.replace(second=i))))
        for i in range(5)
    ]
    assert accepted[:2] == [True, True] and not all(accepted)
    await dispatcher.stop()


async def test_budget_records_route_through_the_same_config(server: Recorder) -> None:
    config = load_escalations(ROOT / "escalations.yaml").model_copy(update={"delivery": FAST})
    dispatcher = Dispatcher(
        config, build_adapters(EscalationSecrets.from_env(env_for(server)), FAST), {}, metrics=new_metrics()
    )
    alert = BudgetAlert(
        alert_id="al-1", user_id="acme", period="monthly", period_key="2026-11", threshold_pct=80,
        limit_usd="100", spent_usd="80.5", hard_kill=False, event_id="e1", timestamp=NOW,
    )  # fmt: skip
    kill = BudgetKill(
        kill_id="k-1", user_id="acme", period="monthly", period_key="2026-11", limit_usd="100",
        spent_usd="100.01", reason="hard budget exhausted", event_ids=["e2"], timestamp=NOW,
    )  # fmt: skip
    na, nk = dispatcher.for_budget(alert), dispatcher.for_budget(kill)
    assert na is not None and nk is not None
    assert na.severity == "medium" and nk.severity == "high"
    await dispatcher.deliver(nk)  # budget_kill: pagerduty + slack + email; email has no secret here
    pd = next(b for p, b in server.requests if p == "/v2/enqueue")
    assert pd["dedup_key"] == "budget_kill-k-1" and "$100.01" in pd["payload"]["summary"]
    await dispatcher.stop()


def test_pagerduty_dedup_key_stays_within_255() -> None:
    n = Notification.from_incident(incident().model_copy(update={"fingerprint": "f" * 256}))
    assert len(n.dedup_key) <= 255
