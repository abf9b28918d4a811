"""The pinned Apache Kafka broker jars: where they are cached and how they get there.

``streams/local/kafka/pom.xml`` names the broker; ``streams/local/kafka/jars.lock`` lists every
runtime jar Maven resolves from it, each with the SHA-1 that the repository publishes beside
the file. With Maven installed, Maven fetches the pom; without it (or asked for the
package-only path), each jar of the lock is downloaded over HTTPS from the repository. Either
way every file is checked against the lock before the cache is marked complete, so both paths
give the same bytes, and a half-finished fetch is never mistaken for a cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streams.errors import ServiceError

_POM = resources.files("streams.local") / "kafka" / "pom.xml"
_LOCK = resources.files("streams.local") / "kafka" / "jars.lock"
_COMPLETE = ".complete"
_DOWNLOAD_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Jar:
    """One locked jar: its Maven coordinates and the SHA-1 the repository publishes."""

    group: str
    artifact: str
    version: str
    sha1: str

    @property
    def filename(self) -> str:
        """The name Maven's ``copy-dependencies`` gives the file."""
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repository: str) -> str:
        """Where ``repository`` (a Maven 2 layout) serves the jar."""
        folder = "/".join([*self.group.split("."), self.artifact, self.version])
        return f"{repository.rstrip('/')}/{folder}/{self.filename}"


@dataclass(frozen=True)
class JarCache:
    """A complete jar cache and how it was filled: ``maven``, ``download`` or ``cached``."""

    path: Path
    source: str


def kafka_version() -> str:
    """Return the Apache Kafka version pinned in the packaged ``pom.xml``."""
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", _POM.read_text())
    if not found:
        raise ServiceError("kafka", "the packaged pom.xml names no kafka.version")
    return found.group(1)


def default_jars_dir() -> Path:
    """Return the per-user cache of the Kafka jars, outside any git checkout."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "driftline" / f"kafka-{kafka_version()}"


def is_complete(jars_dir: Path) -> bool:
    """Whether ``jars_dir`` holds a finished, verified fetch."""
    return (jars_dir / _COMPLETE).exists()


def locked_jars(text: str | None = None) -> list[Jar]:
    """Parse the jar lock (the packaged one unless ``text`` is given).

    Examples
    --------
    >>> [jar] = locked_jars("# a comment\\norg.lz4:lz4-java:1.8.0 " + "a" * 40 + "\\n")
    >>> jar.filename
    'lz4-java-1.8.0.jar'
    >>> jar.url("https://repo.example/m2")
    'https://repo.example/m2/org/lz4/lz4-java/1.8.0/lz4-java-1.8.0.jar'
    """
    jars = []
    for number, raw in enumerate((text if text is not None else _LOCK.read_text()).splitlines()):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        found = re.fullmatch(r"([\w.-]+):([\w.-]+):([\w.-]+)\s+([0-9a-f]{40})", line)
        if found is None:
            raise ServiceError("kafka", f"jars.lock line {number + 1} is not 'g:a:v sha1': {raw!r}")
        jars.append(Jar(*found.groups()))
    return jars


def _sha1(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ServiceError(
            "kafka", f"cannot download {url}: {exc}; set DRIFTLINE_MAVEN_REPOSITORY to a mirror"
        ) from exc


def _download(jar: Jar, repository: str, target: Path) -> None:
    """Fetch one jar and its published ``.sha1``; keep it only when both agree with the lock."""
    url = jar.url(repository)
    published = _get(url + ".sha1").decode("ascii", "replace").split()
    if not published or published[0].lower() != jar.sha1:
        raise ServiceError(
            "kafka",
            f"{url}.sha1 says {published[:1]}, jars.lock says {jar.sha1}: the lock is stale "
            "or the repository is not the one it was made from",
        )
    path = target / jar.filename
    path.write_bytes(_get(url))
    if _sha1(path) != jar.sha1:
        path.unlink()
        raise ServiceError("kafka", f"{url}: the downloaded bytes do not match their SHA-1")


def _fetch_with_maven(mvn: str, target: Path) -> None:
    with resources.as_file(_POM) as pom:
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies"]
        cmd += [f"-DoutputDirectory={target}", "-DincludeScope=runtime"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServiceError("kafka", f"Maven could not fetch the jars:\n{done.stdout}{done.stderr}")


def _verify(jars: list[Jar], directory: Path) -> None:
    """Every locked jar is there with its locked SHA-1, and nothing else is."""
    wanted = {jar.filename: jar.sha1 for jar in jars}
    present = {p.name for p in directory.glob("*.jar")}
    if present != set(wanted):
        extra, missing = sorted(present - set(wanted)), sorted(set(wanted) - present)
        raise ServiceError(
            "kafka",
            f"the fetched jars differ from jars.lock (extra {extra}, missing {missing}): "
            "regenerate it with `driftline services fetch --lock`",
        )
    for name, sha1 in wanted.items():
        if _sha1(directory / name) != sha1:
            raise ServiceError("kafka", f"{name} does not match its SHA-1 in jars.lock")


def ensure_kafka_jars(jars_dir: Path | None, *, repository: str, maven: bool = True) -> JarCache:
    """Fetch the locked Kafka broker jars unless a complete cache is already there.

    Parameters
    ----------
    jars_dir
        The cache (default :func:`default_jars_dir`).
    repository
        The Maven 2 repository to download from without Maven (``maven_repository``).
    maven
        Let Maven fetch the pom when ``mvn`` is on the PATH; False always downloads directly.

    Returns
    -------
    JarCache
        The directory holding the jars (for a ``-cp 'DIR/*'`` class path) and its source.
    """
    target = jars_dir or default_jars_dir()
    if is_complete(target):
        return JarCache(target, "cached")
    jars = locked_jars()
    mvn = shutil.which("mvn") if maven else None
    target.parent.mkdir(parents=True, exist_ok=True)
    # Fill a sibling folder and rename it into place: a fetch that dies halfway leaves no
    # cache that looks complete, and two fetches at once cannot mix their files.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        if mvn is not None:
            _fetch_with_maven(mvn, staging)
        else:
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(lambda jar: _download(jar, repository, staging), jars))
        _verify(jars, staging)
        (staging / _COMPLETE).write_text(kafka_version())
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return JarCache(target, "maven" if mvn is not None else "download")


def write_lock(repository: str) -> list[Jar]:
    """Resolve the pom with Maven; rewrite ``jars.lock`` with each jar's published SHA-1.

    For maintainers changing ``pom.xml`` in a checkout; users never need it.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("kafka", "writing jars.lock resolves the pom with Maven: install mvn")
    with tempfile.TemporaryDirectory() as tmp, resources.as_file(_POM) as pom:
        listing = Path(tmp) / "deps.txt"
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:list", "-DincludeScope=runtime"]
        cmd.append(f"-DoutputFile={listing}")
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServiceError("kafka", f"Maven could not resolve the pom:\n{done.stdout}")
        coords = re.findall(r"^\s+([\w.-]+):([\w.-]+):jar:([\w.-]+):\w+", listing.read_text(), re.M)
    jars = []
    for group, artifact, version in sorted(coords):
        jar = Jar(group, artifact, version, "0" * 40)
        sha1 = _get(jar.url(repository) + ".sha1").decode("ascii").split()[0].lower()
        jars.append(Jar(group, artifact, version, sha1))
    body = [f"{j.group}:{j.artifact}:{j.version} {j.sha1}" for j in jars]
    with resources.as_file(_LOCK) as path:
        kept = [line for line in path.read_text().splitlines() if line.startswith("#")]
        path.write_text("\n".join([*kept, *body]) + "\n")
    return jars


__all__ = [
    "Jar",
    "JarCache",
    "default_jars_dir",
    "ensure_kafka_jars",
    "is_complete",
    "kafka_version",
    "locked_jars",
    "write_lock",
]
