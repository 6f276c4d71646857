from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streams.errors import ConfigError
from streams.topics_admin import ActualTopic, plan
from streams.topology import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[2]


def _one(key: str, **overrides: object) -> str:
    body = {
        "name": key,
        "purpose": "p",
        "partitions": 1,
        "cleanup_policy": "delete",
        "retention_ms": 1,
        "schema": None,
    }
    return yaml.safe_dump({"topics": {key: {**body, **overrides}}})


REQUIRED = {
    "raw",
    "sanitized",
    "dlq",
    "vault",
    "ledger",
    "budget_alerts",
    "budget_kills",
    "incidents",
    "audit",
    "deletions",
}


def test_topics_yaml_has_every_pipeline_topic() -> None:
    topology = load_topology(ROOT / "topics.yaml", ROOT / "schemas")
    assert topology.topics.keys() >= REQUIRED
    raw = topology["raw"]
    assert raw.retention_ms <= 24 * 3600 * 1000, "raw intake holds PII: hours, not months"
    assert topology["vault_keys"].cleanup_policy == "compact"
    for spec in topology.topics.values():
        assert spec.purpose


def test_bad_topics_yaml_is_rejected_with_location() -> None:
    with pytest.raises(ConfigError, match=r"topics\.raw\.partitions"):
        parse_topology(_one("raw", partitions=0))
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_topology("topics: [")
    with pytest.raises(ConfigError, match=r"no schemas/nope\.avsc"):
        parse_topology(_one("raw", schema="nope"), schemas_dir=ROOT / "schemas")


def test_plan_detects_each_kind_of_drift() -> None:
    spec = load_topology(ROOT / "topics.yaml")["raw"]
    assert plan(spec, None).create
    same = ActualTopic(spec.name, spec.partitions, 1, spec.desired_configs())
    assert plan(spec, same).in_sync
    drifted = ActualTopic(spec.name, 3, 1, {**spec.desired_configs(), "retention.ms": "604800000"})
    p = plan(spec, drifted)
    assert p.add_partitions == spec.partitions
    assert p.config_changes["retention.ms"] == ("604800000", str(spec.retention_ms))
    assert not plan(spec, ActualTopic(spec.name, 12, 1, spec.desired_configs())).in_sync


def test_cleanup_policy_order_is_not_drift() -> None:
    spec = parse_topology(_one("t", cleanup_policy="compact,delete"))["t"]
    actual = ActualTopic("t", 1, 1, {**spec.desired_configs(), "cleanup.policy": "delete,compact"})
    assert plan(spec, actual).in_sync
