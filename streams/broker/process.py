"""The broker JVM as an OS process: storage format, detached spawn, pid/state files, stop, log tail."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from streams.broker.config import (
    format_args,
    is_kafka4,
    logging_config,
    logging_jvm_flag,
    render_properties,
    server_properties,
)
from streams.broker.exceptions import BrokerStartError
from streams.broker.java import Java
from streams.broker.layout import BrokerLayout

# Kafka's reserved ids (Uuid.ZERO_UUID, Uuid.METADATA_TOPIC_ID), never valid as a cluster id.
_RESERVED_IDS = {"AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAQ"}


@dataclass(frozen=True, slots=True)
class RunState:
    """What ``broker.json`` records about the broker started from a kafka_home."""

    pid: int
    version: str
    port: int
    controller_port: int
    started_at: float
    java: str


def read_state(layout: BrokerLayout) -> RunState | None:
    try:
        return RunState(**json.loads(layout.state_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(layout: BrokerLayout, state: RunState) -> None:
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    tmp.replace(layout.state_file)
    layout.pid_file.write_text(f"{state.pid}\n")


def clear_state(layout: BrokerLayout) -> None:
    layout.state_file.unlink(missing_ok=True)
    layout.pid_file.unlink(missing_ok=True)


def is_broker_alive(pid: int) -> bool:
    """True when ``pid`` is a live Kafka JVM (not a zombie, not a recycled pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user; cmdline tells whether it is Kafka
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no procfs: trust the signal
    if stat.rpartition(")")[2].split()[:1] == ["Z"]:
        return False  # exited, not yet reaped by its parent
    # Empty while the kernel is still exec'ing a child spawned a moment ago.
    return not cmdline or b"kafka.Kafka" in cmdline


def live_state(layout: BrokerLayout) -> RunState | None:
    """The recorded state if its process still runs; stale files are removed."""
    state = read_state(layout)
    if state is not None and is_broker_alive(state.pid):
        return state
    clear_state(layout)  # stale or unreadable: it would only mislead the next start
    return None


def new_cluster_id() -> str:
    """Like ``StorageTool random-uuid`` (Kafka's Uuid.randomUuid) without starting a JVM for it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if text not in _RESERVED_IDS and not text.startswith("-"):  # "-..." reads as a CLI flag
            return text


def write_configs(layout: BrokerLayout) -> Path:
    """Write server.properties and the logging config; return the logging config's path."""
    layout.config_dir.mkdir(parents=True, exist_ok=True)
    layout.server_properties.write_text(render_properties(server_properties(layout)))
    name, text = logging_config(layout.version)
    log_config = layout.config_dir / name
    log_config.write_text(text)
    return log_config


def _jvm(java: Java, layout: BrokerLayout, log_config: Path, heap: str) -> list[str]:
    return [
        str(java.path),
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={layout.data_dir / 'logs'}",
        logging_jvm_flag(layout.version, str(log_config)),
        "-cp",
        str(layout.lib_dir / "*"),  # expanded by java itself, no shell involved
    ]


def format_storage(java: Java, layout: BrokerLayout, log_config: Path) -> bool:
    """Format the log dirs unless done before; True when it formatted now."""
    stamp = layout.data_dir / "format.json"
    if (layout.log_dirs / "meta.properties").is_file() and stamp.is_file():
        formatted = json.loads(stamp.read_text())
        # 4.x's standalone format records the controller endpoint in the quorum's first snapshot.
        if is_kafka4(layout.version) and formatted.get("controller_port") != layout.controller_port:
            raise BrokerStartError(
                f"{layout.data_dir} was formatted for controller port {formatted.get('controller_port')}, "
                f"not {layout.controller_port}; start with --fresh to wipe it"
            )
        return False
    cluster_id = new_cluster_id()
    cmd = [
        *_jvm(java, layout, log_config, "256m"),
        "kafka.tools.StorageTool",
        *format_args(layout, cluster_id),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603 -- fixed argv
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BrokerStartError(f"formatting {layout.log_dirs} failed (exit {proc.returncode}):\n{tail}")
    stamp.write_text(json.dumps({"cluster_id": cluster_id, "controller_port": layout.controller_port}) + "\n")
    return True


def spawn(java: Java, layout: BrokerLayout, log_config: Path) -> RunState:
    """Start the broker JVM detached (own session), console to broker.log; record pid and state."""
    layout.home.mkdir(parents=True, exist_ok=True)
    if layout.console_log.exists():  # keep one previous run's log for post-mortems
        layout.console_log.replace(layout.console_log.with_suffix(".log.1"))
    cmd = [*_jvm(java, layout, log_config, layout.heap), "kafka.Kafka", str(layout.server_properties)]
    # A throw-away sh backgrounds the JVM and exits, so the JVM is orphaned to init: it outlives
    # us, never becomes our zombie, and no Popen object is left to warn about a running child.
    # Arguments travel as "$@", never through the shell's parser.
    launcher = subprocess.run(  # noqa: S603 -- fixed argv; sh only sees positional parameters
        [
            "/bin/sh",
            "-c",
            'log=$1; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!',
            "sh",
            str(layout.console_log),
            *cmd,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=layout.home,
        start_new_session=True,  # no controlling terminal: Ctrl-C in the caller's shell won't reach it
        timeout=30,
        check=False,
    )
    if launcher.returncode != 0 or not launcher.stdout.strip().isdigit():
        raise BrokerStartError(f"could not launch the broker JVM: {launcher.stderr.strip() or launcher.stdout}")
    pid = int(launcher.stdout.strip())
    state = RunState(
        pid=pid,
        version=layout.version,
        port=layout.port,
        controller_port=layout.controller_port,
        started_at=time.time(),
        java=f"{java.path} ({java.major})",
    )
    _write_state(layout, state)
    return state


def terminate(pid: int, grace: float) -> bool:
    """SIGTERM the broker, SIGKILL after ``grace`` seconds; True if it had to kill."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # Kafka shuts down cleanly on TERM (flushes, closes logs)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_broker_alive(pid):
            return False
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if not is_broker_alive(pid):
            break
        time.sleep(0.1)
    return True


def tail_log(layout: BrokerLayout, lines: int = 40) -> list[str]:
    """The last ``lines`` lines of broker.log (empty when there is none)."""
    try:
        with layout.console_log.open(errors="replace") as log:
            return [line.rstrip("\n") for line in deque(log, maxlen=lines)]
    except OSError:
        return []
