"""escalations.yaml -> routes (severity + adapters per incident type and budget record),
the secrets the adapters need, and the Notification every adapter delivers.

Secrets come from the environment or from files named by ``*_FILE`` variables and are
held as SecretStr: a repr, a log line or a ConfigError never shows them.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from streams.errors import ConfigError
from streams.incidents.config import INCIDENT_TYPES
from streams.incidents.configfile import config_error, parse_yaml, read_config_text, validate
from streams.models import BudgetAlert, BudgetKill, Incident, format_money, format_ts

Severity = Literal["low", "medium", "high", "critical"]
AdapterName = Literal["slack", "pagerduty", "email"]
BUDGET_KINDS = ("budget_alert", "budget_kill")
ROUTE_NAMES = (*INCIDENT_TYPES, *BUDGET_KINDS)
PD_DEDUP_MAX = 255
PD_SUMMARY_MAX = 1024


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Route(_Strict):
    severity: Severity
    adapters: Annotated[tuple[AdapterName, ...], Field(min_length=1)]

    @field_validator("adapters")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists an adapter twice")
        return value


class DeliveryConfig(_Strict):
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_initial_seconds: float = Field(default=1.0, ge=0, le=60)
    backoff_max_seconds: float = Field(default=60.0, ge=0, le=3600)
    # Retry-After above this is cut to it: one slow endpoint must not hold the queue for hours.
    retry_after_max_seconds: float = Field(default=120.0, ge=0, le=3600)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)


class EscalationConfig(_Strict):
    escalations: dict[str, Route]
    default: Route | None = None
    delivery: DeliveryConfig = DeliveryConfig()

    def route(self, kind: str) -> Route | None:
        return self.escalations.get(kind, self.default)

    def severities(self) -> dict[str, Severity]:
        """Severity per incident type, for the IncidentTracker."""
        return {k: r.severity for k in INCIDENT_TYPES if (r := self.route(k)) is not None}

    def adapters_in_use(self) -> set[str]:
        routes = [*self.escalations.values(), *([self.default] if self.default else [])]
        return {a for r in routes for a in r.adapters}


def parse_escalations(text: str, source: str = "escalations.yaml") -> EscalationConfig:
    data = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}, line 1: expected a mapping with an 'escalations' mapping")
    routes = data.get("escalations")
    if isinstance(routes, dict):
        for name in routes:
            if name not in ROUTE_NAMES:
                reason = f"unknown incident type {name!r}; known: {', '.join(ROUTE_NAMES)}"
                raise config_error(source, data, ["escalations", name], reason)
    config = validate(EscalationConfig, data, source)
    missing = [t for t in INCIDENT_TYPES if config.route(t) is None]
    if missing:
        reason = f"no route for {', '.join(missing)} (add them or a 'default' route)"
        raise config_error(source, data, ["escalations"], reason)
    return config


def load_escalations(path: Path) -> EscalationConfig:
    """Read and validate escalations.yaml; a ConfigError names the file, line and reason."""
    return parse_escalations(read_config_text(path), str(path))


# ------------------------------------------------------------------------------ secrets


class SmtpSettings(_Strict):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = True
    implicit_tls: bool = False


class EscalationSecrets(_Strict):
    slack_webhook_url: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    smtp: SmtpSettings | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EscalationSecrets:
        """Read ``STREAMS_*`` variables (pass ``os.environ``); ``X_FILE`` names a file holding X."""
        host = environ.get("STREAMS_SMTP_HOST")
        smtp = None
        if host:
            recipients = tuple(a.strip() for a in environ.get("STREAMS_SMTP_TO", "").split(",") if a.strip())
            sender = environ.get("STREAMS_SMTP_FROM", "")
            if not sender or not recipients:
                raise ConfigError("STREAMS_SMTP_HOST is set but STREAMS_SMTP_FROM or STREAMS_SMTP_TO is empty")
            try:
                port = int(environ.get("STREAMS_SMTP_PORT", "587"))
            except ValueError:
                raise ConfigError("STREAMS_SMTP_PORT: not a number") from None
            smtp = SmtpSettings(
                host=host,
                port=port,
                user=environ.get("STREAMS_SMTP_USER") or None,
                password=_secret(environ, "STREAMS_SMTP_PASSWORD"),
                sender=sender,
                recipients=recipients,
                starttls=_flag(environ, "STREAMS_SMTP_STARTTLS", default=True),
                implicit_tls=_flag(environ, "STREAMS_SMTP_TLS", default=False),
            )
        return cls(
            slack_webhook_url=_secret(environ, "STREAMS_SLACK_WEBHOOK_URL"),
            pagerduty_routing_key=_secret(environ, "STREAMS_PAGERDUTY_ROUTING_KEY"),
            pagerduty_events_url=environ.get("STREAMS_PAGERDUTY_EVENTS_URL")
            or "https://events.pagerduty.com/v2/enqueue",
            smtp=smtp,
        )

    def check(self, config: EscalationConfig, source: str = "escalations.yaml") -> None:
        """Refuse to start when a route names an adapter whose secret is not configured."""
        needs = {
            "slack": (self.slack_webhook_url, "STREAMS_SLACK_WEBHOOK_URL(_FILE)"),
            "pagerduty": (self.pagerduty_routing_key, "STREAMS_PAGERDUTY_ROUTING_KEY(_FILE)"),
            "email": (self.smtp, "STREAMS_SMTP_HOST, STREAMS_SMTP_FROM and STREAMS_SMTP_TO"),
        }
        for adapter in sorted(config.adapters_in_use()):
            value, variable = needs[adapter]
            if value is None:
                raise ConfigError(f"{source}: adapter {adapter} is routed to but {variable} is not set")


def _secret(environ: Mapping[str, str], name: str) -> SecretStr | None:
    direct, file_name = environ.get(name), environ.get(f"{name}_FILE")
    if direct and file_name:
        raise ConfigError(f"set {name} or {name}_FILE, not both")
    if file_name:
        try:
            text = Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            # The path is not secret; the content never reaches this message.
            raise ConfigError(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from None
        if not text:
            raise ConfigError(f"{name}_FILE: {file_name} is empty")
        return SecretStr(text)
    return SecretStr(direct) if direct else None


def _flag(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false")


# -------------------------------------------------------------------------- notification


class Notification(_Strict):
    """What an adapter sends: one incident record or one budget record, with its dedup key."""

    kind: str
    action: Literal["trigger", "resolve"]
    dedup_key: Annotated[str, Field(min_length=1, max_length=PD_DEDUP_MAX)]
    # Unique per emission of the same dedup key: the delivery ledger's notion of "this one".
    notification_id: Annotated[str, Field(min_length=1, max_length=256)]
    severity: Severity
    summary: str
    source: str
    timestamp: datetime
    details: dict[str, str] = Field(default_factory=dict)
    runbook: str | None = None

    def ledger_key(self, adapter: str) -> str:
        return f"{self.dedup_key}|{self.action}|{self.notification_id}|{adapter}"

    @classmethod
    def from_incident(cls, incident: Incident) -> Notification:
        ev = incident.evidence
        details = {
            k: v
            for k, v in {
                "incident_type": incident.incident_type,
                "status": incident.status,
                "tenant": ev.tenant,
                "model": ev.model,
                "region": ev.region,
                "error_code": ev.error_code,
                "observed": ev.observed,
                "threshold": ev.threshold,
                "first_seen": format_ts(incident.first_seen),
                "last_seen": format_ts(incident.last_seen),
                "count": str(incident.count),
            }.items()
            if v is not None
        }
        return cls(
            kind=incident.incident_type,
            action="trigger" if incident.status == "triggered" else "resolve",
            dedup_key=_bounded_key(incident.fingerprint),
            # emitted_at differs for each notification of one incident (trigger, repeats,
            # resolve) and is the same when the record is read again after a restart.
            notification_id=format_ts(incident.emitted_at),
            severity=incident.severity,
            summary=incident.summary,
            source="streams-incidents",
            timestamp=incident.emitted_at,
            details=details,
            runbook=incident.runbook,
        )

    @classmethod
    def from_budget_alert(cls, alert: BudgetAlert, route: Route) -> Notification:
        scope = f"run {alert.run_id}" if alert.run_id else f"{alert.period.value} {alert.period_key}"
        return cls(
            kind="budget_alert",
            action="trigger",
            dedup_key=_bounded_key(f"budget_alert-{alert.alert_id}"),
            notification_id=alert.alert_id,
            severity=route.severity,
            summary=f"budget {alert.threshold_pct}% reached for tenant {alert.user_id} ({scope}): "
            f"${format_money(alert.spent_usd)} of ${format_money(alert.limit_usd)}",
            source="streams-cost",
            timestamp=alert.timestamp,
            details=_budget_details(alert.user_id, alert.run_id, alert.period.value, alert.period_key)
            | {"threshold_pct": str(alert.threshold_pct), "hard_kill": str(alert.hard_kill).lower()},
            runbook=_budget_runbook(alert.user_id),
        )

    @classmethod
    def from_budget_kill(cls, kill: BudgetKill, route: Route) -> Notification:
        return cls(
            kind="budget_kill",
            action="trigger",
            dedup_key=_bounded_key(f"budget_kill-{kill.kill_id}"),
            notification_id=kill.kill_id,
            severity=route.severity,
            summary=f"budget kill for tenant {kill.user_id}"
            + (f" run {kill.run_id}" if kill.run_id else "")
            + f": ${format_money(kill.spent_usd)} of ${format_money(kill.limit_usd)} ({kill.reason})",
            source="streams-cost",
            timestamp=kill.timestamp,
            details=_budget_details(kill.user_id, kill.run_id, kill.period.value, kill.period_key),
            runbook=_budget_runbook(kill.user_id),
        )


def _budget_details(tenant: str, run_id: str | None, period: str, period_key: str) -> dict[str, str]:
    out = {"tenant": tenant, "period": period, "period_key": period_key}
    return out | ({"run_id": run_id} if run_id else {})


def _budget_runbook(tenant: str) -> str:
    q = shlex.quote(tenant)
    return (
        f"See the spend: streams tail cost.ledger --filter user_id={q}\n"
        f"See alerts and kills: streams tail budget.alerts --filter user_id={q} ; "
        f"streams tail budget.kills --filter user_id={q}\n"
        "Worker pool to look at: the cost pool (streams worker --only cost); budgets in budgets.yaml."
    )


def _bounded_key(key: str) -> str:
    """PagerDuty caps dedup_key at 255 characters: hash a longer key instead of cutting it."""
    if len(key) <= PD_DEDUP_MAX:
        return key
    return f"{key[:180]}-{hashlib.sha256(key.encode()).hexdigest()}"


def describe(value: Any) -> str:
    """A type name, safe for logs: exception texts can carry URLs with secrets in them."""
    return type(value).__name__
