"""Prometheus metrics of incident detection and escalation, created on first use.

Label values come only from bounded sets (incident type, severity, status, adapter,
outcome, skip reason): never a tenant, fingerprint or URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class IncidentMetrics:
    incidents: Any
    skipped: Any
    deliveries: Any
    delivery_seconds: Any
    queue_dropped: Any


def _build(registry: Any) -> IncidentMetrics:
    from prometheus_client import Counter, Histogram

    return IncidentMetrics(
        incidents=Counter(
            "streams_incidents_total",
            "Incident records emitted.",
            ["type", "severity", "status"],
            registry=registry,
        ),
        skipped=Counter(
            "streams_detector_skipped_events_total",
            "Events a detector could not use (a needed field missing, too late).",
            ["type", "reason"],
            registry=registry,
        ),
        deliveries=Counter(
            "streams_escalation_deliveries_total",
            "Notification deliveries by adapter and outcome.",
            ["adapter", "outcome"],
            registry=registry,
        ),
        delivery_seconds=Histogram(
            "streams_escalation_delivery_seconds",
            "Time to deliver one notification through one adapter, retries included.",
            ["adapter"],
            registry=registry,
        ),
        queue_dropped=Counter(
            "streams_escalation_queue_dropped_total",
            "Notifications refused because the dispatcher queue was full.",
            registry=registry,
        ),
    )


@lru_cache(maxsize=1)
def get_metrics() -> IncidentMetrics:
    """The process-wide metrics in prometheus_client's default registry."""
    from prometheus_client import REGISTRY

    return _build(REGISTRY)


def new_metrics() -> IncidentMetrics:
    """Metrics in a private registry (tests)."""
    from prometheus_client import CollectorRegistry

    return _build(CollectorRegistry())
