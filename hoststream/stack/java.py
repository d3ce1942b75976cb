"""Finding a Java runtime new enough for a service."""

from __future__ import annotations

import os
import re
import shutil
from functools import cache
from pathlib import Path

from hoststream.errors import PrerequisiteMissingError

__all__ = ["find_java", "java_major_version"]


def java_major_version(java_home: Path) -> int | None:
    """The feature version of the JDK or JRE at ``java_home``, from its ``release`` file."""
    try:
        release = (java_home / "release").read_text()
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', release, re.MULTILINE)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8".
    return int(match.group(2)) if major == 1 and match.group(2) else major


def _candidate_homes() -> list[Path]:
    homes: list[Path] = []
    for var in ("HOSTSTREAM_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            homes.append(Path(os.environ[var]))  # HOSTSTREAM_JAVA_HOME is a setting too
    on_path = shutil.which("java")
    if on_path:
        homes.append(Path(on_path).resolve().parent.parent)
    jvm_dir = Path("/usr/lib/jvm")
    if jvm_dir.is_dir():
        homes.extend(sorted(p for p in jvm_dir.iterdir() if p.is_dir() and not p.is_symlink()))
    return homes


@cache
def find_java(minimum: int) -> Path:
    """The ``java`` binary of the first JDK found with at least version ``minimum``."""
    seen: list[str] = []
    for home in _candidate_homes():
        version = java_major_version(home)
        binary = home / "bin" / "java"
        if version is not None and version >= minimum and binary.exists():
            return binary
        seen.append(f"{home} ({version or 'unknown'})")
    raise PrerequisiteMissingError(
        f"need Java {minimum} or newer; found {', '.join(seen) or 'none'}. "
        f"Install a JDK {minimum}+ "
        f"(e.g. `apt-get install openjdk-{max(minimum, 17)}-jre-headless`) "
        "or point HOSTSTREAM_JAVA_HOME at one"
    )
