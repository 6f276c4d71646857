"""Start, reuse, stop and inspect the local broker: the API for the CLI and test fixtures."""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streams.broker.config import parse_version
from streams.broker.exceptions import BrokerStartError, PortConflictError
from streams.broker.jars import fetch_jars
from streams.broker.java import find_java
from streams.broker.layout import BrokerLayout, layout_for
from streams.broker.probe import ClusterInfo, describe_cluster, port_open
from streams.broker.process import (
    RunState,
    clear_state,
    format_storage,
    is_broker_alive,
    live_state,
    spawn,
    tail_log,
    terminate,
    write_configs,
)
from streams.settings import Settings, get_settings

DEFAULT_START_TIMEOUT = 120.0
DEFAULT_STOP_GRACE = 30.0


@dataclass(frozen=True, slots=True)
class BrokerHandle:
    """A broker that answers metadata on ``bootstrap``.

    ``version`` and ``pid`` are None for a broker this kafka_home did not start (reused as is).
    """

    bootstrap: str
    version: str | None
    pid: int | None
    started_by_us: bool
    startup_seconds: float
    cluster_id: str | None


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """``state`` is "ready" (answers metadata), "starting" (our JVM runs, no answer yet),
    "foreign" (the port answers Kafka but this kafka_home did not start it),
    "blocked" (the port is held by something else), or "stopped"."""

    state: str
    bootstrap: str
    version: str | None
    pid: int | None
    uptime_seconds: float | None
    cluster_id: str | None


@contextmanager
def _home_lock(layout: BrokerLayout) -> Iterator[None]:
    # One start/stop at a time per kafka_home: parallel test sessions share one broker.
    layout.home.mkdir(parents=True, exist_ok=True)
    with (layout.home / ".broker.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _failure(layout: BrokerLayout, message: str, lines: int = 25) -> str:
    tail = "\n".join(f"  | {line}" for line in tail_log(layout, lines))
    return f"{message}\nlast lines of {layout.console_log}:\n{tail or '  (empty)'}"


def _wait_ready(layout: BrokerLayout, state: RunState, timeout: float) -> ClusterInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_broker_alive(state.pid):
            clear_state(layout)
            raise BrokerStartError(_failure(layout, f"broker {state.version} (pid {state.pid}) exited during start"))
        if port_open(layout.host, layout.port):
            info = describe_cluster(layout.bootstrap, timeout=5.0)
            if info is not None and info.broker_ids:  # listed brokers = registered and unfenced
                return info
        time.sleep(0.3)
    raise BrokerStartError(
        _failure(
            layout,
            f"broker {state.version} (pid {state.pid}) did not answer on {layout.bootstrap} within {timeout:.0f} s",
        )
    )


def ensure_broker(
    settings: Settings | None = None,
    *,
    version: str | None = None,
    fresh: bool = False,
    jars_home: Path | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
) -> BrokerHandle:
    """Return a broker answering on ``127.0.0.1:<kafka_port>``, starting one if needed.

    Idempotent: a broker that already answers metadata there is reused at once, and one this
    kafka_home is still starting is waited for. ``fresh`` stops ours and wipes this version's
    data first. Raises PortConflictError when the port is held by something that is not Kafka,
    or by our broker of another version; BrokerStartError (with the log's tail) when the JVM
    exits or does not answer within ``timeout`` seconds.
    """
    settings = settings or get_settings()
    layout = layout_for(settings, version=version, jars_home=jars_home)
    parse_version(layout.version)  # a bad version fails before anything is touched
    began = time.monotonic()
    with _home_lock(layout):
        running = live_state(layout)
        if running is not None and (running.version, running.port) != (layout.version, layout.port):
            raise PortConflictError(
                f"broker {running.version} from {layout.home} runs on 127.0.0.1:{running.port} "
                f"(pid {running.pid}); stop it before starting {layout.version} on {layout.bootstrap}"
            )
        if fresh:
            if running is not None:
                terminate(running.pid, DEFAULT_STOP_GRACE)
                clear_state(layout)
                running = None
            shutil.rmtree(layout.data_dir, ignore_errors=True)
        if running is not None:
            info = _wait_ready(layout, running, timeout)
            return _handle(layout, running, info, started_by_us=False, began=began)
        if port_open(layout.host, layout.port):
            found = describe_cluster(layout.bootstrap, timeout=5.0)
            if found is None:
                raise PortConflictError(f"{layout.bootstrap} is held by something that does not answer Kafka metadata")
            if fresh:
                raise PortConflictError(f"--fresh: {layout.bootstrap} runs a broker {layout.home} did not start")
            return BrokerHandle(layout.bootstrap, None, None, False, time.monotonic() - began, found.cluster_id)
        if port_open(layout.host, layout.controller_port):
            raise PortConflictError(f"controller port 127.0.0.1:{layout.controller_port} is already in use")
        state = _start(layout)
        info = _wait_ready_or_kill(layout, state, timeout)
        return _handle(layout, state, info, started_by_us=True, began=began)


def _start(layout: BrokerLayout) -> RunState:
    fetch_jars(layout)
    java = find_java()
    log_config = write_configs(layout)
    format_storage(java, layout, log_config)
    return spawn(java, layout, log_config)


def _wait_ready_or_kill(layout: BrokerLayout, state: RunState, timeout: float) -> ClusterInfo:
    try:
        return _wait_ready(layout, state, timeout)
    except BaseException:
        # Don't leave a half-started JVM holding the ports (timeout, or Ctrl-C while waiting).
        if is_broker_alive(state.pid):
            terminate(state.pid, 5.0)
        clear_state(layout)
        raise


def _handle(
    layout: BrokerLayout, state: RunState, info: ClusterInfo, *, started_by_us: bool, began: float
) -> BrokerHandle:
    return BrokerHandle(
        bootstrap=layout.bootstrap,
        version=state.version,
        pid=state.pid,
        started_by_us=started_by_us,
        startup_seconds=time.monotonic() - began,
        cluster_id=info.cluster_id,
    )


def stop_broker(settings: Settings | None = None, *, grace: float = DEFAULT_STOP_GRACE) -> RunState | None:
    """Stop the broker this kafka_home started: SIGTERM, then SIGKILL after ``grace`` seconds.

    Returns the stopped broker's state, or None when this kafka_home runs none (a broker
    started elsewhere on the port is left alone).
    """
    settings = settings or get_settings()
    layout = layout_for(settings)
    with _home_lock(layout):
        running = live_state(layout)
        if running is None:
            return None
        terminate(running.pid, grace)
        clear_state(layout)
        return running


def broker_status(settings: Settings | None = None) -> BrokerStatus:
    """What runs on the configured port, and whether this kafka_home started it."""
    settings = settings or get_settings()
    layout = layout_for(settings)
    running = live_state(layout)
    if running is not None:
        bootstrap = f"{layout.host}:{running.port}"
        info = describe_cluster(bootstrap, timeout=3.0)
        return BrokerStatus(
            state="ready" if info is not None else "starting",
            bootstrap=bootstrap,
            version=running.version,
            pid=running.pid,
            uptime_seconds=time.time() - running.started_at,
            cluster_id=info.cluster_id if info else None,
        )
    if port_open(layout.host, layout.port):
        info = describe_cluster(layout.bootstrap, timeout=3.0)
        state = "foreign" if info is not None else "blocked"
        return BrokerStatus(state, layout.bootstrap, None, None, None, info.cluster_id if info else None)
    return BrokerStatus("stopped", layout.bootstrap, None, None, None, None)


def broker_log_tail(settings: Settings | None = None, lines: int = 40) -> tuple[Path, list[str]]:
    """The console log's path and its last ``lines`` lines."""
    layout = layout_for(settings or get_settings())
    return layout.console_log, tail_log(layout, lines)
