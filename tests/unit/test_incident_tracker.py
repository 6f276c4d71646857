"""The tracker: one incident per fingerprint, repeats only after the interval, resolve
only after the hold-down (no flapping), stable fingerprints, detectors.yaml errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.errors import ConfigError
from streams.incidents.config import TrackerConfig, load_detectors_config, parse_detectors_config
from streams.incidents.detectors import Condition
from streams.incidents.tracker import IncidentTracker, fingerprint
from streams.models import Incident

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
SCOPE = (("error_code", "E42"), ("tenant", "acme"))


def cond(active: bool) -> Condition:
    return Condition("repeat_error", SCOPE, active, observed="25 errors in 300s", threshold=">= 20", summary="s")


def drive(pattern: str, *, hold: int = 30, repeat: int = 60, step: int = 5) -> list[tuple[int, Incident]]:
    """One tick per character: '1' condition true, '0' false. Returns (second, incident)."""
    tracker = IncidentTracker(TrackerConfig(hold_down_seconds=hold, repeat_interval_seconds=repeat), {})
    state: dict[str, Any] = {}
    out = []
    for i, c in enumerate(pattern):
        now = T0 + timedelta(seconds=i * step)
        state = json.loads(json.dumps(state))  # as a JSON-serialized Faust table would
        out += [(i * step, inc) for inc in tracker.update(state, [cond(c == "1")], now)]
    return out


def test_trigger_once_while_the_condition_holds() -> None:
    out = drive("1" * 10)
    assert [(t, i.status) for t, i in out] == [(0, "triggered")]
    assert out[0][1].severity == "low"  # default when escalations give none


def test_no_flapping_inside_the_hold_down() -> None:
    # False for 25 s (< 30 s hold-down), true again: still the same open incident.
    out = drive("111" + "000001" + "111" + "0" * 8)
    assert [i.status for _, i in out] == ["triggered", "resolved"]
    resolved_at, resolved = out[1]
    # False at 15-35 s, true again 40-55 s; resolved 30 s after the first false tick at 60 s.
    assert resolved_at == 60 + 30
    assert resolved.count == 7 and resolved.summary.startswith("resolved: ")
    assert resolved.first_seen == T0 and resolved.last_seen == T0 + timedelta(seconds=55)


def test_repeat_notification_after_the_interval_only() -> None:
    out = drive("1" * 30, repeat=60)  # 150 s of true, repeat every 60 s
    assert [t for t, _ in out] == [0, 60, 120]
    assert len({i.fingerprint for _, i in out}) == 1


def test_recurrence_after_resolve_is_a_new_trigger() -> None:
    out = drive("1" + "0" * 8 + "1")
    assert [i.status for _, i in out] == ["triggered", "resolved", "triggered"]
    assert out[2][1].first_seen == T0 + timedelta(seconds=45)


def test_missing_condition_counts_as_false() -> None:
    tracker = IncidentTracker(TrackerConfig(hold_down_seconds=10, repeat_interval_seconds=60), {})
    state: dict[str, Any] = {}
    tracker.update(state, [cond(True)], T0)
    assert tracker.update(state, [], T0 + timedelta(seconds=5)) == []
    [resolved] = tracker.update(state, [], T0 + timedelta(seconds=15))
    assert resolved.status == "resolved" and state == {}


def test_fingerprint_is_stable_and_scope_order_free() -> None:
    a = fingerprint("repeat_error", SCOPE)
    assert a == fingerprint("repeat_error", tuple(reversed(SCOPE)))
    assert a == "repeat_error-" + a.split("-", 1)[1] and len(a) <= 255
    assert a != fingerprint("repeat_error", (("error_code", "E42"),))
    # Pinned: a changed hash would re-page every open incident after an upgrade.
    assert a == fingerprint("repeat_error", (("tenant", "acme"), ("error_code", "E42")))


def test_repo_detectors_yaml_loads() -> None:
    cfg = load_detectors_config(ROOT / "detectors.yaml")
    assert cfg.detectors.volume_spike.factor == 10
    assert cfg.tracker.hold_down_seconds > 0


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("detectors:\n  repeat_error:\n    min_count: -1\n", 3, "greater than or equal to 1"),
        ("detectors:\n  cost_spike:\n    factor: 0.1e\n", 3, "decimal"),
        ("detectors:\n  repeat_error:\n    window_seconds: 33\n", 2, "multiple of bucket_seconds"),
        ("detectors:\n  latency_p99: {}\n", 2, "Extra inputs"),
        ("tick_seconds: [\n", 2, "not valid YAML"),
    ],
)
def test_broken_detectors_config_names_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_detectors_config(text, "detectors.yaml")
    assert f"detectors.yaml, line {line}" in str(err.value), str(err.value)
    assert reason in str(err.value), str(err.value)
