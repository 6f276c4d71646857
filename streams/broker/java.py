"""Finding a Java runtime the broker supports (>= 17)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.errors import ConfigError

MIN_JAVA = 17
_VERSION_LINE = re.compile(r'version "(\d+)(?:\.(\d+))?')


@dataclass(frozen=True, slots=True)
class Java:
    path: Path
    major: int


def java_major(java: Path) -> int | None:
    """The feature release of ``java`` (8 for "1.8.0_x", 17 for "17.0.15"), None if it does not run."""
    try:
        proc = subprocess.run(  # noqa: S603 -- argv of a path we found, no shell
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION_LINE.search(proc.stderr + proc.stdout)
    if match is None:
        return None
    first = int(match[1])
    return int(match[2] or 0) if first == 1 else first


def _explicit() -> list[Path]:
    found: list[Path] = []
    if home := os.environ.get("JAVA_HOME"):
        found.append(Path(home) / "bin" / "java")
    if on_path := shutil.which("java"):
        found.append(Path(on_path))
    return found


def find_java(min_major: int = MIN_JAVA) -> Java:
    """JAVA_HOME first, then ``java`` on PATH, then the lowest release >= ``min_major`` in /usr/lib/jvm.

    The lowest qualifying release is preferred among the fallbacks because Kafka 3.9 predates
    Java 24's removal of the security-manager APIs it still calls.
    """
    seen: list[str] = []

    def usable(path: Path) -> Java | None:
        major = java_major(path) if path.exists() else None
        seen.append(f"{path} ({major or 'not runnable'})")
        return Java(path=path, major=major) if major is not None and major >= min_major else None

    for path in _explicit():
        if java := usable(path):
            return java
    fallbacks = [java for path in sorted(Path("/usr/lib/jvm").glob("*/bin/java")) if (java := usable(path))]
    if fallbacks:
        return min(fallbacks, key=lambda j: j.major)
    raise ConfigError(f"no Java >= {min_major} found (set JAVA_HOME); tried: {', '.join(seen) or 'nothing'}")
