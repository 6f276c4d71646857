"""docker-compose.yml loads the way `docker compose` loads it (compose-go, tools/compose-check)
and describes the system `scripts/run-local` starts: one worker service per stage.

Needs `compose-check` on PATH (`go install ./tools/compose-check`, as .ci/run does); skipped
with the reason otherwise. No Docker engine is needed: this is the loader, not the runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from streams.app import STAGES

ROOT = Path(__file__).resolve().parents[2]
CHECK = shutil.which("compose-check")

pytestmark = pytest.mark.skipif(CHECK is None, reason="compose-check is not on PATH (go install ./tools/compose-check)")


def load(*profiles: str, master_key: str | None = "test-key") -> subprocess.CompletedProcess[str]:
    assert CHECK is not None
    env = {k: v for k, v in os.environ.items() if k != "STREAMS_MASTER_KEY"}
    if master_key is not None:
        env["STREAMS_MASTER_KEY"] = master_key
    return subprocess.run(
        [CHECK, "-json", str(ROOT / "docker-compose.yml"), *profiles], capture_output=True, text=True, env=env
    )


def project(*profiles: str) -> dict[str, Any]:
    result = load(*profiles)
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_one_worker_service_per_stage_behind_topic_setup() -> None:
    services = project()["services"]
    for stage in STAGES:
        service = services[stage]
        assert service["command"] == ["worker", "--only", stage]
        assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert service["environment"]["STREAMS_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert "healthcheck" in service and service["stop_grace_period"] == "30s"
    assert services["topics"]["command"] == ["topics", "apply"]
    assert {"kafka", "prometheus", "grafana"} <= set(services)
    assert "simulator" not in services  # profile "demo" only


def test_profiles_add_the_simulator_and_tail() -> None:
    services = project("demo", "tools")["services"]
    assert services["simulator"]["command"][0] == "simulate"
    assert services["tail"]["depends_on"]["topics"]


def test_a_missing_master_key_stops_compose_with_the_hint() -> None:
    result = load(master_key=None)
    assert result.returncode == 1
    assert "STREAMS_MASTER_KEY" in result.stderr and "generate-key" in result.stderr
