"""Shared fixtures. Broker tests use one real Kafka broker per session: the one named by
STREAMS_TEST_BOOTSTRAP, or a local KRaft broker started from the Maven jars (reused when
already running)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from streams.testing import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    external = os.environ.get("STREAMS_TEST_BOOTSTRAP")
    if external:
        return external
    from streams.broker.api import ensure_broker
    from streams.settings import Settings

    handle = ensure_broker(Settings())
    return handle.bootstrap


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def topics_file(tmp_path: Path, run_id: str) -> Path:
    """topics.yaml with every topic renamed for this test, so tests never share topics."""
    data = yaml.safe_load((ROOT / "topics.yaml").read_text())
    for spec in data["topics"].values():
        spec["name"] = f"t{run_id}.{spec['name']}"
        spec["partitions"] = min(spec["partitions"], 3)
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def test_env(kafka_bootstrap: str, topics_file: Path, run_id: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for `streams` subprocesses pointed at this test's topics."""
    env = {
        **os.environ,
        "STREAMS_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMS_TOPICS_FILE": str(topics_file),
        "STREAMS_APP_ID": f"streams-test-{run_id}",
        "STREAMS_DATA_DIR": str(tmp_path / "faust"),
        "STREAMS_MASTER_KEY": "dev:" + "A" * 43 + "=",
        "PYTHONUNBUFFERED": "1",
        "STREAMS_WEB_PORT": str(free_port()),  # workers of parallel runs must not share a port
        "STREAMS_SESSION_TIMEOUT": "8",  # a SIGKILLed worker's partitions move within seconds
    }
    yield env
