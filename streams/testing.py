"""Helpers for tests and benchmarks that run against a real broker: read a topic, run a worker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from streams import serde
from streams.kafka import consumer, producer, topic_partitions


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int,
    seconds: float = 60.0,
    worker: WorkerProcess | None = None,
    distinct: str | None = None,
    decode: bool = True,
) -> list[tuple[bytes | None, Any]]:
    """Read from the beginning until ``expect`` records arrived: (key, decoded).

    ``decode=False`` keeps the values as bytes. With ``distinct`` (a field name), read until
    ``expect`` distinct values of that field arrived: at-least-once stages may repeat a
    record, and a repeat must not end the wait early.
    Gives up after ``seconds``, or at once when ``worker`` has died.
    """
    client = consumer(bootstrap, group_id=None, auto_offset_reset="earliest")
    await client.start()
    out: list[tuple[bytes | None, Any]] = []
    try:
        deadline = time.monotonic() + seconds
        tps: list[TopicPartition] = []
        while not tps and time.monotonic() < deadline:
            tps = await topic_partitions(client, topic)  # the topic may be created meanwhile
            if not tps:
                await asyncio.sleep(0.5)
        if not tps:
            return out
        client.assign(tps)
        await client.seek_to_beginning()

        def arrived() -> int:
            return len({v[distinct] for _, v in out if v}) if distinct else len(out)

        while arrived() < expect and time.monotonic() < deadline:
            if worker is not None and not worker.alive:
                raise AssertionError(f"worker exited ({worker.returncode}):\n{worker.log_text()[-4000:]}")
            batches = await client.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    value = message.value
                    if decode and value is not None:
                        value = serde.decode_any(value)[1]
                    out.append((message.key, value))
    finally:
        await client.stop()
    return out


async def send_raw(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    client = producer(bootstrap)
    await client.start()
    try:
        for key, value in items:
            await client.send(topic, value=value, key=key)
        await client.flush()
    finally:
        await client.stop()


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    """The real `streams` command in a child process (our interpreter), output captured."""
    return subprocess.run(  # noqa: S603  # our own interpreter and module, fixed arguments
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """A TCP port nobody listens on right now (for a worker's web server or a test broker)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class WorkerProcess:
    """``streams worker`` as a child process, so tests can SIGTERM or SIGKILL it for real."""

    env: dict[str, str]
    stages: list[str] = field(default_factory=list)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        args = [sys.executable, "-m", "streams.cli", "worker"]
        if self.stages:
            args += ["--only", *self.stages]
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115  # closed with the process
        self.proc = subprocess.Popen(  # noqa: S603  # our own interpreter and module, fixed arguments
            args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc else None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no flush; what a crash looks like."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, grace: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
