"""Per-type runbook templates, rendered with the incident's evidence.

Values that land in a command are shell-quoted (``$q_...``): a tenant or model name comes
from event data and must not turn a copy-pasted command into a different one.
"""

from __future__ import annotations

import shlex
from string import Template

from streams.models import IncidentEvidence

_COMMON = """\
Follow this incident: streams tail incidents --filter fingerprint=$q_fingerprint
Detector pool: streams worker --only incidents (its state is in the incidents tables)"""

TEMPLATES: dict[str, str] = {
    "repeat_error": """\
Error $error_code repeated for $who: $observed (threshold $threshold).
1. See the failing calls: streams tail hook.events.sanitized$f_tenant --filter error_code=$q_error_code
2. Group them by source (agent host) and model in what you see: one host points at that daemon,
   every host points at the model provider or a shared dependency.
3. Worker pool to look at: the agent daemons of $who; if the code is the pipeline's own,
   the sanitize pool (streams worker --only sanitize) and hook.events.dlq.
""",
    "cost_spike": """\
Cost spike for $who: $observed (threshold $threshold).
1. See the charges: streams tail cost.ledger$f_tenant
2. See the calls behind them: streams tail hook.events.sanitized$f_tenant
3. Check budgets and kills: streams tail budget.alerts$f_tenant ; streams tail budget.kills$f_tenant
4. Worker pool to look at: the cost pool (streams worker --only cost); a runaway run_id in the
   events points at one agent loop of $who.
""",
    "latency_regression_p99": """\
p99 latency regression for model $model$in_region: $observed (threshold $threshold).
1. See the slow calls: streams tail hook.events.sanitized --filter model=$q_model$f_region
2. Compare regions and hosts (source) in what you see: one region points at the provider's
   region, every region at the model itself.
3. Worker pool to look at: the agent daemons calling $model$in_region (their source hosts).
""",
    "volume_spike": """\
Call volume spike for $who: $observed (threshold $threshold).
1. See the calls: streams tail hook.events.sanitized$f_tenant
2. Look for one run_id or one source dominating: a loop in an agent, or a retry storm.
3. Worker pool to look at: the sanitize and cost pools (streams worker --only sanitize,
   streams worker --only cost) carry the extra load; check their lag.
""",
}

_DEFAULT = """\
$incident_type for $who: $observed (threshold $threshold).
1. See the events: streams tail hook.events.sanitized$f_tenant
"""


def render_runbook(incident_type: str, fingerprint: str, evidence: IncidentEvidence) -> str:
    """The runbook text for one incident, every placeholder filled."""
    tenant, model, region = evidence.tenant, evidence.model, evidence.region
    values = {
        "incident_type": incident_type,
        "fingerprint": fingerprint,
        "q_fingerprint": shlex.quote(fingerprint),
        "who": f"tenant {tenant}" if tenant else "all tenants",
        "tenant": tenant or "",
        "f_tenant": f" --filter user_id={shlex.quote(tenant)}" if tenant else "",
        "model": model or "(any)",
        "q_model": shlex.quote(model or ""),
        "region": region or "",
        "in_region": f" in region {region}" if region else "",
        "f_region": f" --filter region={shlex.quote(region)}" if region else "",
        "error_code": evidence.error_code or "",
        "q_error_code": shlex.quote(evidence.error_code or ""),
        "observed": evidence.observed,
        "threshold": evidence.threshold,
    }
    body = Template(TEMPLATES.get(incident_type, _DEFAULT)).substitute(values)
    return body + Template(_COMMON).substitute(values)
