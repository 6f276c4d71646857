"""ensure/stop/status decisions that need no JVM: conflicts, stale files, stopping by pid."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import broker_status, ensure_broker, stop_broker
from streams.broker.cli import main as cli_main
from streams.broker.exceptions import PortConflictError
from streams.broker.layout import layout_for
from streams.broker.process import is_broker_alive, read_state
from streams.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(kafka_home=tmp_path / "kafka", kafka_port=_free_port(), kafka_controller_port=_free_port())


@pytest.fixture
def silent_listener(settings: Settings) -> Iterator[None]:
    """Something on the broker port that accepts connections and never speaks Kafka."""
    server = socket.create_server(("127.0.0.1", settings.kafka_port))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield
    server.close()
    for conn in accepted:
        conn.close()


@pytest.fixture
def fake_broker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line says kafka.Kafka, recorded as this home's 4.1.1 broker."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "kafka.Kafka"], start_new_session=True
    )
    layout = layout_for(settings)
    layout.home.mkdir(parents=True)
    state = {"pid": proc.pid, "version": "4.1.1", "port": settings.kafka_port}
    state |= {"controller_port": settings.kafka_controller_port, "started_at": time.time(), "java": "fake"}
    layout.state_file.write_text(json.dumps(state))
    yield proc
    proc.kill()
    proc.wait()


def test_port_held_by_non_kafka_fails_clearly(settings: Settings, silent_listener: None) -> None:
    with pytest.raises(PortConflictError, match="does not answer Kafka"):
        ensure_broker(settings, timeout=10)
    assert broker_status(settings).state == "blocked"


def test_nothing_running(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert stop_broker(settings) is None
    assert broker_status(settings).state == "stopped"


def test_stale_state_is_cleared(settings: Settings) -> None:
    layout = layout_for(settings)
    layout.home.mkdir(parents=True)
    layout.state_file.write_text(json.dumps({"pid": 2**22 + 7, "version": "3.9.1", "port": 1}))
    assert broker_status(settings).state == "stopped"
    assert not layout.state_file.exists()


def test_other_version_running_is_a_conflict_then_stop_kills_it(
    settings: Settings, fake_broker: subprocess.Popen[bytes]
) -> None:
    assert is_broker_alive(fake_broker.pid)
    with pytest.raises(PortConflictError, match=r"broker 4\.1\.1 .* stop it before starting 3\.9\.1"):
        ensure_broker(settings, version="3.9.1", timeout=5)
    stopped = stop_broker(settings, grace=5)
    assert stopped is not None
    assert stopped.pid == fake_broker.pid
    fake_broker.wait(timeout=10)  # already reaped by stop_broker; returns at once
    assert not is_broker_alive(fake_broker.pid)
    assert read_state(layout_for(settings)) is None


def test_cli_status_and_logs_when_stopped(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMS_KAFKA_HOME", str(settings.kafka_home))
    monkeypatch.setenv("STREAMS_KAFKA_PORT", str(settings.kafka_port))
    from streams.settings import get_settings

    get_settings.cache_clear()
    try:
        assert cli_main(["status"]) == 1
        assert cli_main(["stop"]) == 0
        assert cli_main(["logs", "-n", "5"]) == 1
        assert cli_main(["start", "--version", "nope"]) == 1
    finally:
        get_settings.cache_clear()
    out, err = capsys.readouterr()
    assert f"broker stopped (127.0.0.1:{settings.kafka_port} free)" in out
    assert "no broker running from this kafka_home" in out
    assert "no broker log at" in err
    assert "error: kafka_version 'nope'" in err
