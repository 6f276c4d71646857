"""Where a broker's jars, data, configs, log and pid file live, derived from the settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from streams.settings import Settings

# Lets a throw-away kafka_home (tests) share the jars already fetched elsewhere.
JARS_HOME_ENV = "STREAMS_KAFKA_JARS_HOME"


@dataclass(frozen=True, slots=True)
class BrokerLayout:
    """Paths of one local broker.

    Jars live per version under ``jars_home`` (by default ``kafka_home``); data and configs
    per version under ``kafka_home/data-<version>`` so that a 3.9 log dir is never opened by
    4.x; the run files (pid, state, console log) once per ``kafka_home``, since one home runs
    one broker at a time.
    """

    version: str
    home: Path
    jars_home: Path
    host: str
    port: int
    controller_port: int
    heap: str

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def version_dir(self) -> Path:
        return self.jars_home / self.version

    @property
    def lib_dir(self) -> Path:
        return self.version_dir / "lib"

    @property
    def data_dir(self) -> Path:
        return self.home / f"data-{self.version}"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def config_dir(self) -> Path:
        return self.data_dir / "config"

    @property
    def server_properties(self) -> Path:
        return self.config_dir / "server.properties"

    @property
    def console_log(self) -> Path:
        return self.home / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def state_file(self) -> Path:
        return self.home / "broker.json"


def layout_for(settings: Settings, *, version: str | None = None, jars_home: Path | None = None) -> BrokerLayout:
    """The layout for ``settings``; ``version`` overrides ``settings.kafka_version``.

    The jar cache is, in order: ``jars_home``, ``$STREAMS_KAFKA_JARS_HOME``, ``settings.kafka_home``.
    """
    env_jars = os.environ.get(JARS_HOME_ENV)
    home = settings.kafka_home.expanduser().resolve()
    jars = jars_home or (Path(env_jars) if env_jars else home)
    return BrokerLayout(
        version=version or settings.kafka_version,
        home=home,
        jars_home=jars.expanduser().resolve(),
        host="127.0.0.1",
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        heap=settings.kafka_heap,
    )
