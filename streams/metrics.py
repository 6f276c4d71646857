"""Every Prometheus metric of the pipeline. Label values come from bounded sets only:
stage names, entity types, error classes, topics: never user text."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("streams_events_in_total", "Records consumed by a stage", ["stage"])
EVENTS_OUT = Counter("streams_events_out_total", "Records produced by a stage", ["stage", "topic"])
DEAD_LETTERS = Counter("streams_dead_letters_total", "Records sent to the dead-letter topic", ["stage", "error_type"])
STAGE_ERRORS = Counter("streams_stage_errors_total", "Unexpected errors inside a stage", ["stage"])
STAGE_SECONDS = Histogram(
    "streams_stage_seconds",
    "Time to process one record",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
QUEUE_DEPTH = Gauge("swarm_queue_depth", "Consumer lag per topic partition", ["topic", "partition"])
REKEYED = Counter("streams_intake_rekeyed_total", "Intake records re-sent because their Kafka key was not user_id")
# Operations (streams/ops): what /health and /ready saw, for alerts that need no HTTP probe.
HEALTH_FAILURES = Gauge("streams_health_consecutive_failures", "Failed health ticks in a row (3 = not live)")
READY = Gauge("streams_ready", "1 when the last /ready check passed, else 0")
# Monthly spend and limit for tenants *named in budgets.yaml* (a bounded, operator-made set);
# every other tenant is summed under tenant="_other". Per worker: sum by (tenant) across workers.
BUDGET_SPEND = Gauge("streams_budget_spend_usd", "Spend this month of this worker's tenants", ["tenant"])
BUDGET_LIMIT = Gauge("streams_budget_limit_usd", "Monthly budget limit of a tenant named in budgets.yaml", ["tenant"])
# streams/ops/continuity: records a consumer dropped (stale), sought back for (rewind) or
# accepted past a real hole (gap) to keep every partition's offsets contiguous.
CONTINUITY = Counter(
    "streams_consumer_continuity_total", "Offset continuity actions of the consumer", ["topic", "verdict"]
)
