"""`streams top`: metrics parsing, rates, open incidents and the rendered frame."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

from streams.ops.top import OpenIncidents, Spend, parse_metrics, render, throughput

METRICS = """\
# TYPE streams_events_in_total counter
streams_events_in_total{stage="sanitize"} 100.0
streams_events_in_total{stage="cost"} 40.0
# TYPE swarm_queue_depth gauge
swarm_queue_depth{partition="0",topic="hook.events.raw"} 5.0
swarm_queue_depth{partition="1",topic="hook.events.raw"} 7.0
swarm_queue_depth{partition="0",topic="hook.events.sanitized"} 1.0
# TYPE streams_ready gauge
streams_ready 1.0
"""


def incident(fingerprint: str, status: str, severity: str = "high") -> SimpleNamespace:
    seen = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
    return SimpleNamespace(
        fingerprint=fingerprint, status=status, severity=severity, incident_type="error_spike", count=3, first_seen=seen
    )


def test_parse_sums_lag_per_topic_and_rates_are_per_second() -> None:
    first = parse_metrics(METRICS, at=10.0)
    assert first.events_in == {"sanitize": 100.0, "cost": 40.0}
    assert first.lag == {"hook.events.raw": 12.0, "hook.events.sanitized": 1.0}
    assert first.ready == 1.0
    later = parse_metrics(METRICS.replace("100.0", "300.0"), at=12.0)
    assert throughput(first, later) == {"sanitize": 100.0, "cost": 0.0}
    assert throughput(None, later) == {"sanitize": 0.0, "cost": 0.0}


def test_incidents_are_open_until_resolved_and_sorted_by_severity() -> None:
    book = OpenIncidents()
    book.add(incident("a", "triggered", "low"))
    book.add(incident("b", "triggered", "critical"))
    book.add(incident("c", "triggered"))
    book.add(incident("c", "resolved"))
    assert [i.fingerprint for i in book.open()] == ["b", "a"]


def test_render_frame() -> None:
    sample = parse_metrics(METRICS, at=1.0)
    frame = render(
        url="http://w:6066",
        rates={"sanitize": 12.5, "cost": 3.0},
        sample=sample,
        spend=[Spend("acme-corp", Decimal("80.000000000"), Decimal("100.00")), Spend("globex", Decimal("1"), None)],
        incidents=[incident("b", "triggered", "critical")],
        now=datetime(2026, 11, 27, 20, 1, tzinfo=UTC),
    )
    assert "worker: ready" in frame
    assert "sanitize" in frame and "12.5" in frame
    assert "hook.events.raw" in frame and "12" in frame
    assert "80.0%" in frame and "################" in frame
    assert "(no monthly budget)" in frame
    assert "open incidents: 1" in frame and "[critical]" in frame
    assert "worker: not reachable" in render(
        url="u", rates={}, sample=None, spend=None, incidents=[], now=datetime(2026, 11, 27, tzinfo=UTC)
    )
