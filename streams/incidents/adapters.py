"""Delivery adapters: Slack incoming webhook, PagerDuty Events API v2, e-mail over SMTP.

Each ``send`` returns a DeliveryResult and never raises for a delivery problem. Retries
(tenacity, exponential backoff with jitter) on 429 (honouring Retry-After), 5xx and
connection errors; any other 4xx is final ("rejected") with the reason recorded.
Reasons hold status codes, short response bodies and exception *type names* only:
aiohttp exception texts can contain the webhook URL, which is a secret.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

import aiohttp
from pydantic import SecretStr
from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from streams.incidents.escalation import (
    PD_SUMMARY_MAX,
    DeliveryConfig,
    EscalationSecrets,
    Notification,
    SmtpSettings,
    describe,
)

log = logging.getLogger(__name__)
Outcome = Literal["delivered", "rejected", "failed", "duplicate"]
PD_SEVERITY = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}
_BODY_MAX = 200
_SLACK_TEXT_MAX = 2900  # a section block holds 3000 characters


@dataclass(frozen=True)
class DeliveryResult:
    adapter: str
    outcome: Outcome
    attempts: int
    status: int | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "attempts": self.attempts, "status": self.status, "reason": self.reason}


class Adapter(Protocol):
    name: str

    async def send(self, notification: Notification) -> DeliveryResult: ...

    async def aclose(self) -> None: ...


class _Retry(Exception):
    """A transient failure; ``retry_after`` is the server's wish in seconds, if it said."""

    def __init__(self, status: int | None, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.retry_after = status, reason, retry_after


class _Rejected(Exception):
    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Waiter:
    """Exponential backoff with jitter, unless the server named a Retry-After (then that, capped)."""

    def __init__(self, policy: DeliveryConfig) -> None:
        self._backoff = wait_random_exponential(
            multiplier=policy.backoff_initial_seconds, max=policy.backoff_max_seconds
        )
        self._cap = policy.retry_after_max_seconds

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.retry_after is not None:
            return min(exc.retry_after, self._cap)
        return float(self._backoff(state))


async def _with_retries(name: str, policy: DeliveryConfig, attempt: Any) -> DeliveryResult:
    """Run ``attempt()`` (raises _Retry/_Rejected, returns the status) under the retry policy."""
    tries = 0
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=_Waiter(policy),
        retry=retry_if_exception_type(_Retry),
        reraise=False,
    )
    try:
        async for step in retrying:
            with step:
                tries += 1
                status = await attempt()
        return DeliveryResult(name, "delivered", tries, status)
    except _Rejected as exc:
        log.warning("%s delivery rejected: %s", name, exc.reason)
        return DeliveryResult(name, "rejected", tries, exc.status, exc.reason)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        status = last.status if isinstance(last, _Retry) else None
        reason = f"gave up after {tries} attempts: " + (last.reason if isinstance(last, _Retry) else describe(last))
        log.warning("%s delivery failed: %s", name, reason)
        return DeliveryResult(name, "failed", tries, status, reason)


class _HttpAdapter:
    """Shared POST-JSON-with-retries; the session is made on first use, inside the loop."""

    name = "http"

    def __init__(self, policy: DeliveryConfig) -> None:
        self.policy = policy
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} adapter>"  # never the URL or key

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, url: str, body: dict[str, Any]) -> DeliveryResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.policy.timeout_seconds))
        session = self._session

        async def attempt() -> int:
            try:
                async with session.post(url, json=body) as resp:
                    text = (await resp.text(errors="replace"))[:_BODY_MAX]
                    if 200 <= resp.status < 300:
                        return resp.status
                    reason = f"HTTP {resp.status}: {text.strip()}"
                    if resp.status == 429 or resp.status >= 500:
                        raise _Retry(resp.status, reason, parse_retry_after(resp.headers.get("Retry-After")))
                    raise _Rejected(resp.status, reason)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise _Retry(None, f"connection error: {describe(exc)}") from None

        return await _with_retries(self.name, self.policy, attempt)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackAdapter(_HttpAdapter):
    name = "slack"

    def __init__(self, webhook_url: SecretStr, policy: DeliveryConfig) -> None:
        super().__init__(policy)
        self._url = webhook_url

    @staticmethod
    def body(n: Notification) -> dict[str, Any]:
        state = "RESOLVED" if n.action == "resolve" else n.severity.upper()
        text = _slack_escape(f"[{state}] {n.kind}: {n.summary}")
        fields = [
            {"type": "mrkdwn", "text": f"*{_slack_escape(k)}*\n{_slack_escape(v)}"} for k, v in n.details.items()
        ][:10]  # Slack allows 10 fields per section
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:_SLACK_TEXT_MAX]}}]
        if fields:
            blocks.append({"type": "section", "fields": fields})
        if n.runbook:
            runbook = _slack_escape(n.runbook)[:_SLACK_TEXT_MAX]
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Runbook*\n```{runbook}```"}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"dedup key `{n.dedup_key}`"}]})
        return {"text": text, "blocks": blocks}

    async def send(self, notification: Notification) -> DeliveryResult:
        return await self._post(self._url.get_secret_value(), self.body(notification))


class PagerDutyAdapter(_HttpAdapter):
    name = "pagerduty"

    def __init__(self, routing_key: SecretStr, events_url: str, policy: DeliveryConfig) -> None:
        super().__init__(policy)
        self._key = routing_key
        self._url = events_url

    def body(self, n: Notification) -> dict[str, Any]:
        body: dict[str, Any] = {
            "routing_key": self._key.get_secret_value(),
            "event_action": n.action,
            "dedup_key": n.dedup_key,
        }
        if n.action == "trigger":
            details: dict[str, str] = dict(n.details)
            if n.runbook:
                details["runbook"] = n.runbook
            body["payload"] = {
                "summary": n.summary[:PD_SUMMARY_MAX],
                "source": n.source,
                "severity": PD_SEVERITY[n.severity],
                "timestamp": n.timestamp.isoformat(),
                "component": n.kind,
                "custom_details": details,
            }
        return body

    async def send(self, notification: Notification) -> DeliveryResult:
        return await self._post(self._url, self.body(notification))


class EmailAdapter:
    name = "email"

    def __init__(self, smtp: SmtpSettings, policy: DeliveryConfig) -> None:
        self.smtp = smtp
        self.policy = policy

    def __repr__(self) -> str:
        return "<EmailAdapter adapter>"

    async def aclose(self) -> None:
        return None

    def message(self, n: Notification) -> EmailMessage:
        msg = EmailMessage()
        state = "RESOLVED" if n.action == "resolve" else n.severity.upper()
        msg["Subject"] = f"[{state}] {n.kind}: {n.summary}"[:250].replace("\n", " ")
        msg["From"] = self.smtp.sender
        msg["To"] = ", ".join(self.smtp.recipients)
        msg["X-Streams-Dedup-Key"] = n.dedup_key
        lines = [n.summary, "", *(f"{k}: {v}" for k, v in n.details.items())]
        if n.runbook:
            lines += ["", "Runbook", n.runbook]
        msg.set_content("\n".join(lines))
        return msg

    async def send(self, notification: Notification) -> DeliveryResult:
        import aiosmtplib

        msg = self.message(notification)
        smtp = self.smtp

        async def attempt() -> int:
            try:
                await aiosmtplib.send(
                    msg,
                    hostname=smtp.host,
                    port=smtp.port,
                    username=smtp.user,
                    password=smtp.password.get_secret_value() if smtp.password else None,
                    start_tls=smtp.starttls and not smtp.implicit_tls,
                    use_tls=smtp.implicit_tls,
                    timeout=self.policy.timeout_seconds,
                )
            except aiosmtplib.SMTPResponseException as exc:
                reason = f"SMTP {exc.code}: {str(exc.message)[:_BODY_MAX]}"
                # 4xx replies are transient by the SMTP standard, 5xx are permanent.
                if 400 <= exc.code < 500:
                    raise _Retry(exc.code, reason) from None
                raise _Rejected(exc.code, reason) from None
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                raise _Retry(None, f"connection error: {describe(exc)}") from None
            return 250

        return await _with_retries(self.name, self.policy, attempt)


def build_adapters(secrets: EscalationSecrets, policy: DeliveryConfig) -> dict[str, Adapter]:
    """The adapters whose secrets are configured (call ``EscalationSecrets.check`` first)."""
    out: dict[str, Adapter] = {}
    if secrets.slack_webhook_url is not None:
        out["slack"] = SlackAdapter(secrets.slack_webhook_url, policy)
    if secrets.pagerduty_routing_key is not None:
        out["pagerduty"] = PagerDutyAdapter(secrets.pagerduty_routing_key, secrets.pagerduty_events_url, policy)
    if secrets.smtp is not None:
        out["email"] = EmailAdapter(secrets.smtp, policy)
    return out
