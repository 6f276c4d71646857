"""One readable line (or block) per record, for `streams tail` and operators' terminals."""

from __future__ import annotations

import json
from typing import Any


def get_path(data: dict[str, Any], path: str) -> Any:
    """``evidence.tenant`` -> data["evidence"]["tenant"]; None when any step is missing."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def matches(data: dict[str, Any], filters: list[tuple[str, str]]) -> bool:
    return all(str(get_path(data, field)) == want for field, want in filters)


def _kv(data: dict[str, Any], *fields: str) -> str:
    return " ".join(f"{f}={data[f]}" for f in fields if data.get(f) not in (None, "", [], {}))


def _hook_event(d: dict[str, Any]) -> str:
    parts = [d["timestamp"], f"{d['event_type']:<19}", d["user_id"]]
    parts.append(_kv(d, "run_id", "model", "region"))
    if d.get("cost_usd") is not None:
        parts.append(f"cost=${d['cost_usd']}")
    if d.get("latency_ms") is not None:
        parts.append(f"latency={d['latency_ms']}ms")
    if d.get("error_code"):
        parts.append(f"error={d['error_code']}")
    payload = d.get("payload") or {}
    if payload:
        text = " ".join(
            f"{k}={json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v}" for k, v in payload.items()
        )
        parts.append(f"| {text[:120]}{'…' if len(text) > 120 else ''}")
    return " ".join(p for p in parts if p)


def _incident(d: dict[str, Any]) -> str:
    ev = d.get("evidence") or {}
    head = (
        f"{d['emitted_at']} [{d['severity'].upper()}] {d['status'].upper()} {d['incident_type']} "
        f"tenant={ev.get('tenant') or '*'} count={d['count']} fp={d['fingerprint']}\n  {d['summary']}"
    )
    runbook = "\n".join(f"    {line}" for line in str(d.get("runbook", "")).splitlines())
    return f"{head}\n  runbook:\n{runbook}" if runbook else head


def _budget_alert(d: dict[str, Any]) -> str:
    return (
        f"{d['timestamp']} BUDGET {d['threshold_pct']}% {d['user_id']} {d['period']}={d['period_key']} "
        f"spent=${d['spent_usd']} of ${d['limit_usd']}{' (hard)' if d['hard_kill'] else ' (soft)'}"
    )


def _budget_kill(d: dict[str, Any]) -> str:
    return (
        f"{d['timestamp']} KILL {d['user_id']} run={d.get('run_id') or '*'} {d['period']}={d['period_key']} "
        f"spent=${d['spent_usd']} limit=${d['limit_usd']}: {d['reason']}"
    )


def _dead_letter(d: dict[str, Any]) -> str:
    return (
        f"{d['received_at']} DLQ stage={d['stage']} {d['source_topic']}[{d['source_partition']}]@{d['source_offset']} "
        f"{d['error_type']}: {d['reason']}"
    )


def _ledger(d: dict[str, Any]) -> str:
    return f"{d['timestamp']} {d['kind']:<10} {d['user_id']} ${d['cost_usd']} " + _kv(d, "run_id", "model", "event_id")


_RENDERERS = {
    "streams.HookEvent": _hook_event,
    "streams.Incident": _incident,
    "streams.BudgetAlert": _budget_alert,
    "streams.BudgetKill": _budget_kill,
    "streams.DeadLetter": _dead_letter,
    "streams.CostLedgerEntry": _ledger,
}


def render(kind: str, data: dict[str, Any]) -> str:
    fn = _RENDERERS.get(kind)
    if kind == "json" and {"event_id", "event_type", "user_id", "timestamp"} <= data.keys():
        fn = _hook_event
    if fn is not None:
        try:
            return fn(data)
        except (KeyError, TypeError, AttributeError):
            pass  # an older or partial record: fall back to the generic form
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict | list | bytes)}
    return f"{kind}: " + " ".join(f"{k}={v}" for k, v in scalars.items())
