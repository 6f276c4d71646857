"""Spend against budget per tenant for Prometheus, with bounded labels.

Only tenants named in budgets.yaml get their own label value (operators add them one by
one, so the set is bounded); everyone else is summed under ``_other``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from streams.metrics import BUDGET_LIMIT, BUDGET_SPEND

log = logging.getLogger(__name__)
OTHER = "_other"


def spend_by_label(totals: Iterable[tuple[str, Decimal]], named: Iterable[str]) -> dict[str, Decimal]:
    names = set(named)
    out: dict[str, Decimal] = dict.fromkeys(names, Decimal(0))
    out[OTHER] = Decimal(0)
    for tenant, total in totals:
        label = tenant if tenant in names else OTHER
        out[label] += total
    return out


def monthly_limits(config: Any) -> dict[str, Decimal]:
    """tenant -> monthly limit for the tenants named in the budgets config."""
    out = {}
    for tenant, budgets in config.tenants.items():
        monthly = [b.limit_usd for b in budgets.budgets if b.period.value == "monthly"]
        if monthly:
            out[tenant] = monthly[0]
    return out


def export(states: Mapping[str, Any], config: Any, now: datetime) -> None:
    from streams.cost.chargeback import report_from_states

    rows = report_from_states(states, f"{now:%Y-%m}")
    spend = spend_by_label(((r.user_id, r.total_usd) for r in rows), config.tenants.keys())
    for label, total in spend.items():
        BUDGET_SPEND.labels(tenant=label).set(float(total))  # a gauge; the exact sum is in /chargeback
    for tenant, limit in monthly_limits(config).items():
        BUDGET_LIMIT.labels(tenant=tenant).set(float(limit))
