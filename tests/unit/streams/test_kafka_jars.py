"""The jar lock and the Maven-less download: every byte checked against the published SHA-1.

The repository here is a folder in the Maven 2 layout served over HTTP on loopback, so the
download code runs exactly as against a real repository, without leaving the machine.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from streams.errors import ServiceError
from streams.local.kafka_jars import Jar, _download, _verify, kafka_version, locked_jars


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP Maven repository on loopback serving ``tmp_path/repo``."""
    root = tmp_path / "repo"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _publish(root: Path, group: str, artifact: str, version: str, body: bytes) -> Jar:
    folder = root.joinpath(*group.split("."), artifact, version)
    folder.mkdir(parents=True)
    sha1 = hashlib.sha1(body, usedforsecurity=False).hexdigest()
    (folder / f"{artifact}-{version}.jar").write_bytes(body)
    (folder / f"{artifact}-{version}.jar.sha1").write_text(f"{sha1}  {artifact}.jar\n")
    return Jar(group, artifact, version, sha1)


def test_the_packaged_lock_pins_the_broker_of_the_pom() -> None:
    jars = locked_jars()
    names = {(j.group, j.artifact): j.version for j in jars}
    assert names[("org.apache.kafka", "kafka_2.13")] == kafka_version()
    assert names[("org.apache.kafka", "kafka-clients")] == kafka_version()
    pom = (resources.files("streams.local") / "kafka" / "pom.xml").read_text()
    log4j = re.search(r"<log4j.version>([^<]+)<", pom)
    assert log4j and names[("org.apache.logging.log4j", "log4j-core")] == log4j[1]
    assert len({j.filename for j in jars}) == len(jars), "one file per jar"


def test_a_malformed_lock_line_is_named() -> None:
    with pytest.raises(ServiceError, match="line 2"):
        locked_jars("# header\norg.x:y:1.0 not-a-sha\n")


def test_a_published_jar_is_downloaded_and_checked(
    repository: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = repository
    jar = _publish(root, "org.example", "thing", "1.2", b"the bytes of a jar")
    target = tmp_path / "jars"
    target.mkdir()
    _download(jar, url, target)
    assert (target / "thing-1.2.jar").read_bytes() == b"the bytes of a jar"
    _verify([jar], target)


def test_bytes_that_differ_from_the_published_sha1_are_refused(
    repository: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = repository
    jar = _publish(root, "org.example", "thing", "1.2", b"the bytes of a jar")
    (root / "org/example/thing/1.2/thing-1.2.jar").write_bytes(b"tampered in transit")
    target = tmp_path / "jars"
    target.mkdir()
    with pytest.raises(ServiceError, match="do not match their SHA-1"):
        _download(jar, url, target)
    assert not (target / "thing-1.2.jar").exists(), "a refused file is not kept"


def test_a_lock_that_disagrees_with_the_repository_is_stale(
    repository: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = repository
    jar = _publish(root, "org.example", "thing", "1.2", b"the bytes of a jar")
    stale = Jar(jar.group, jar.artifact, jar.version, "0" * 40)
    with pytest.raises(ServiceError, match="lock is stale"):
        _download(stale, url, tmp_path)


def test_a_missing_jar_names_its_address_and_the_mirror_setting(
    repository: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = repository
    with pytest.raises(ServiceError, match="DRIFTLINE_MAVEN_REPOSITORY") as err:
        _download(Jar("org.example", "absent", "9", "0" * 40), url, tmp_path)
    assert "absent-9.jar" in str(err.value)


def test_a_cache_must_hold_exactly_the_locked_jars(tmp_path: Path) -> None:
    body = b"jar"
    jar = Jar("g", "a", "1", hashlib.sha1(body, usedforsecurity=False).hexdigest())
    (tmp_path / "a-1.jar").write_bytes(body)
    _verify([jar], tmp_path)
    (tmp_path / "b-2.jar").write_bytes(b"more")
    with pytest.raises(ServiceError, match=r"extra \['b-2.jar'\]"):
        _verify([jar], tmp_path)
    (tmp_path / "b-2.jar").unlink()
    (tmp_path / "a-1.jar").write_bytes(b"changed")
    with pytest.raises(ServiceError, match="does not match"):
        _verify([jar], tmp_path)
