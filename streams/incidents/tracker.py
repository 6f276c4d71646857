"""Conditions per fingerprint -> Incident records: trigger once, repeat, resolve after hold-down.

State is a ``MutableMapping[str, dict]`` keyed by fingerprint (a Faust Table in
production), JSON values, written back by assignment. Only open incidents are kept: the
resolved record is emitted and the entry deleted, so a later recurrence starts afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import datetime, timedelta
from typing import Any, Literal

from streams.incidents.config import TrackerConfig
from streams.incidents.detectors import Condition, Scope
from streams.incidents.runbooks import render_runbook
from streams.models import Incident, IncidentEvidence, format_ts

Severity = Literal["low", "medium", "high", "critical"]
TrackerState = MutableMapping[str, Any]


def fingerprint(incident_type: str, scope: Scope) -> str:
    """Stable across processes and releases: a hash of the type and the sorted scope keys."""
    canonical = json.dumps([incident_type, sorted([k, v] for k, v in scope)], separators=(",", ":"))
    return f"{incident_type}-{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class IncidentTracker:
    """Turns per-tick conditions into at most one open incident per fingerprint."""

    def __init__(
        self, config: TrackerConfig, severities: Mapping[str, Severity], *, default_severity: Severity = "low"
    ) -> None:
        self.config = config
        self.severities = dict(severities)
        self.default_severity: Severity = default_severity
        self._hold_down = timedelta(seconds=config.hold_down_seconds)
        self._repeat = timedelta(seconds=config.repeat_interval_seconds)

    def update(self, state: TrackerState, conditions: Iterable[Condition], now: datetime) -> list[Incident]:
        """Apply one tick's conditions. A fingerprint absent from ``conditions`` counts as false.

        ``conditions`` must be everything one ``Detectors.tick`` over the matching detector
        state returned; otherwise open incidents of the missing scopes start to resolve.
        """
        out: list[Incident] = []
        seen: set[str] = set()
        for cond in conditions:
            fp = fingerprint(cond.incident_type, cond.scope)
            seen.add(fp)
            entry = state.get(fp)
            if cond.active:
                out.extend(self._on_true(state, fp, entry, cond, now))
            elif entry is not None:
                out.extend(self._on_false(state, fp, entry, now))
        for fp in [k for k in list(state.keys()) if k not in seen]:
            entry = state.get(fp)
            if isinstance(entry, dict):
                out.extend(self._on_false(state, fp, entry, now))
        return out

    def _on_true(
        self, state: TrackerState, fp: str, entry: dict[str, Any] | None, cond: Condition, now: datetime
    ) -> list[Incident]:
        evidence = cond.evidence().to_json()
        if entry is None:
            entry = {
                "type": cond.incident_type,
                "first_seen": format_ts(now),
                "count": 0,
                "seq": 0,
                "notified": format_ts(now),
            }
            notify = True
        else:
            notify = now - _ts(entry["notified"]) >= self._repeat
            if notify:
                entry["seq"] = int(entry["seq"]) + 1
                entry["notified"] = format_ts(now)
        entry.update(
            last_seen=format_ts(now),
            count=int(entry["count"]) + 1,
            false_since=None,
            evidence=evidence,
            summary=cond.summary,
        )
        state[fp] = entry
        return [self._record(fp, entry, "triggered", now)] if notify else []

    def _on_false(self, state: TrackerState, fp: str, entry: dict[str, Any], now: datetime) -> list[Incident]:
        since = entry.get("false_since")
        if since is None:
            entry["false_since"] = format_ts(now)
            state[fp] = entry
            return []
        if now - _ts(since) < self._hold_down:
            return []
        entry["seq"] = int(entry["seq"]) + 1
        del state[fp]
        return [self._record(fp, entry, "resolved", now)]

    def _record(
        self, fp: str, entry: dict[str, Any], status: Literal["triggered", "resolved"], now: datetime
    ) -> Incident:
        evidence = IncidentEvidence.model_validate(entry["evidence"])
        kind = str(entry["type"])
        summary = str(entry["summary"])
        return Incident(
            fingerprint=fp,
            incident_type=kind,
            severity=self.severities.get(kind, self.default_severity),
            status=status,
            first_seen=entry["first_seen"],
            last_seen=entry["last_seen"],
            count=int(entry["count"]),
            summary=summary if status == "triggered" else f"resolved: {summary}",
            evidence=evidence,
            runbook=render_runbook(kind, fp, evidence),
            emitted_at=now,
        )
