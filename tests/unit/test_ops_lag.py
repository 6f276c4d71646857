"""Consumer lag arithmetic and the swarm_queue_depth gauge's label hygiene."""

from __future__ import annotations

from prometheus_client import REGISTRY

from streams.ops.lag import LagGauge, compute_lag


def gauge_value(topic: str, partition: int) -> float | None:
    value: float | None = REGISTRY.get_sample_value("swarm_queue_depth", {"topic": topic, "partition": str(partition)})
    return value


def test_lag_is_highwater_minus_committed_else_position() -> None:
    high = {("raw", 0): 100, ("raw", 1): 50, ("raw", 2): 7, ("raw", 3): 3}
    committed = {("raw", 0): 90, ("raw", 1): None, ("raw", 2): None, ("raw", 3): 5}
    positions = {("raw", 1): 20, ("raw", 2): None}
    # committed wins; position stands in before the first commit; unknown is left out;
    # a committed offset ahead of a stale high-water mark is 0, never negative.
    assert compute_lag(high, committed, positions) == {("raw", 0): 10, ("raw", 1): 30, ("raw", 3): 0}


def test_gauge_exports_allowed_topics_and_forgets_revoked_partitions() -> None:
    gauge = LagGauge()
    gauge.update({("tlag.raw", 0): 5, ("tlag.raw", 1): 7, ("tlag.other", 0): 9}, allowed_topics={"tlag.raw"})
    assert gauge_value("tlag.raw", 0) == 5
    assert gauge_value("tlag.raw", 1) == 7
    assert gauge_value("tlag.other", 0) is None  # not a source topic of this worker
    gauge.update({("tlag.raw", 1): 2}, allowed_topics={"tlag.raw"})  # partition 0 moved away
    assert gauge_value("tlag.raw", 0) is None
    assert gauge_value("tlag.raw", 1) == 2
    gauge.update({}, allowed_topics={"tlag.raw"})
    assert gauge_value("tlag.raw", 1) is None


def test_budget_labels_are_only_tenants_named_in_budgets_yaml() -> None:
    from decimal import Decimal

    from streams.ops.budget import spend_by_label

    totals = [("acme-corp", Decimal("1.5")), ("someone-new", Decimal("2")), ("another", Decimal("0.25"))]
    assert spend_by_label(totals, ["acme-corp", "globex"]) == {
        "acme-corp": Decimal("1.5"),
        "globex": Decimal(0),
        "_other": Decimal("2.25"),
    }
