"""The broker's jars, fetched from Maven Central once per version into ``<jars_home>/<version>/lib``."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from pathlib import Path

from streams.broker.config import is_kafka4
from streams.broker.exceptions import JarFetchError
from streams.broker.layout import BrokerLayout

MARKER = ".complete"
# Pinned so that a fetch is reproducible; the super-POM's default plugin is years older.
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_SLF4J_RELOAD4J = "1.7.36"
_LOG4J2 = "2.26.1"
_FETCH_TIMEOUT_S = 900


def logging_artifacts(version: str) -> list[tuple[str, str, str]]:
    """The logging backend, which kafka_2.13 leaves out: reload4j on 3.x, log4j2 on 4.x."""
    if is_kafka4(version):
        # Both SLF4J bridges: Kafka 4.1 still resolves slf4j-api 1.7.36, which only sees the
        # 1.x binding (log4j-slf4j-impl); with only the 2.x one it logs nothing at all. An
        # slf4j-api 2.x picks the 2.x provider and merely warns about the other.
        return [
            ("org.apache.logging.log4j", "log4j-core", _LOG4J2),
            ("org.apache.logging.log4j", "log4j-slf4j-impl", _LOG4J2),
            ("org.apache.logging.log4j", "log4j-slf4j2-impl", _LOG4J2),
        ]
    return [("org.slf4j", "slf4j-reload4j", _SLF4J_RELOAD4J)]


def render_pom(version: str) -> str:
    """A POM whose runtime dependencies are exactly the broker's classpath."""
    deps = [("org.apache.kafka", "kafka_2.13", version), *logging_artifacts(version)]
    dep_xml = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.streams</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dep_xml}
  </dependencies>
</project>
"""


def jars_ready(layout: BrokerLayout) -> bool:
    """True when a previous fetch completed (the marker is written last)."""
    return (layout.version_dir / MARKER).is_file() and layout.lib_dir.is_dir()


def fetch_jars(layout: BrokerLayout, *, mvn: str = "mvn") -> Path:
    """Return the lib dir, fetching the jars first unless a completed fetch is there.

    A second call is instant and offline. Fetches into a temporary dir and renames it, under
    a file lock, so concurrent callers (parallel test sessions) neither race nor see half a lib.
    """
    if jars_ready(layout):
        return layout.lib_dir
    layout.version_dir.mkdir(parents=True, exist_ok=True)
    with (layout.version_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jars_ready(layout):  # another process finished while we waited
            return layout.lib_dir
        _fetch_locked(layout, mvn)
    return layout.lib_dir


def _fetch_locked(layout: BrokerLayout, mvn: str) -> None:
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise JarFetchError(f"Kafka {layout.version} jars are not in {layout.lib_dir} and `{mvn}` is not on PATH")
    pom = layout.version_dir / "pom.xml"
    pom.write_text(render_pom(layout.version))
    tmp_lib = Path(tempfile.mkdtemp(prefix="lib.", dir=layout.version_dir))
    cmd = [
        mvn_path,
        "-q",
        "-B",
        "-f",
        str(pom),
        f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={tmp_lib}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_FETCH_TIMEOUT_S, check=False)  # noqa: S603 -- fixed argv, no shell
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(tmp_lib, ignore_errors=True)
        raise JarFetchError(f"fetching Kafka {layout.version} jars timed out after {_FETCH_TIMEOUT_S} s") from exc
    jars = sorted(p.name for p in tmp_lib.glob("*.jar"))
    if proc.returncode != 0 or not any(name.startswith("kafka_2.13-") for name in jars):
        shutil.rmtree(tmp_lib, ignore_errors=True)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise JarFetchError(f"mvn could not fetch Kafka {layout.version} (exit {proc.returncode}):\n{tail}")
    shutil.rmtree(layout.lib_dir, ignore_errors=True)  # a half-written lib from an interrupted older run
    tmp_lib.rename(layout.lib_dir)
    (layout.version_dir / MARKER).write_text("\n".join(jars) + "\n")
