"""Local Kafka (or Tansu) and Redis: fetch, start, probe and stop them.

One code path serves ``driftline services up|status|down`` and the pytest fixtures. What is
running is recorded in ``<data_dir>/services.json`` so that later commands find the services by
themselves, and so that ``down`` stops exactly the processes that ``up`` started. Each program
is started by :mod:`~streams.local.broker_process` or :mod:`~streams.local.redis_process`, as a
process of :mod:`~streams.local.processes`.

Security follows the settings, as for every other client: with
``DRIFTLINE_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT`` and a SCRAM mechanism, user and password,
the local broker gets a SASL listener that knows that user, and its endpoint is the one
recorded; with ``DRIFTLINE_REDIS_PASSWORD`` (and ``DRIFTLINE_REDIS_USERNAME``), redis-server
requires it. Without them both start exactly as before: plain, no password.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import asdict
from typing import Any

import orjson

from streams.adapters.kafka_admin import kafka_healthy
from streams.config.settings import BrokerKind, Settings, redact_url
from streams.errors import ServiceError
from streams.local.broker_process import (
    fetch_kafka_jars,
    node_layout,
    start_kafka,
    start_kafka_cluster,
    start_tansu,
)
from streams.local.kafka_jars import JarCache, default_jars_dir, is_complete

# ``kafka_version`` and ``_start_time`` are re-exported: the tests import them from here.
from streams.local.kafka_jars import kafka_version as kafka_version
from streams.local.postgres_process import find_postgres, postgres_healthy, start_postgres
from streams.local.processes import ServiceRecord, free_port, freeze, stop, tail
from streams.local.processes import _start_time as _start_time
from streams.local.redis_cluster import cluster_ok, form_cluster, node_roles, start_redis_cluster
from streams.local.redis_process import redis_healthy, start_redis
from streams.local.toolchain import find_java, find_redis_server

STATE_FILE = "services.json"


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

    # -- endpoints ----------------------------------------------------------------------
    def kafka_bootstrap(self) -> str:
        """Return the broker to use: from settings, else the one ``up`` started."""
        if self.settings.kafka_bootstrap:
            return self.settings.kafka_bootstrap
        nodes = self._nodes("kafka", self._load())
        if not any(rec.alive() for rec in nodes.values()):
            raise ServiceError(
                "kafka",
                "no broker configured: set DRIFTLINE_KAFKA_BOOTSTRAP "
                "or run `driftline services up`",
            )
        # Every node, down ones included: a client tries the next, and one back is found again.
        return ",".join(rec.endpoint for rec in nodes.values())

    @staticmethod
    def _nodes(service: str, records: dict[str, ServiceRecord]) -> dict[str, ServiceRecord]:
        """The nodes of ``service`` (kafka or redis) that ``up`` started, by name: ``kafka``
        (or ``redis``) and, of a cluster, ``kafka-2``…"""
        return {
            name: rec for name, rec in records.items() if re.fullmatch(rf"{service}(-\d+)?", name)
        }

    def redis_url(self) -> str:
        """Return the Redis to use: from settings, else the one ``up`` started (of a cluster,
        the first node alive: the client finds the others)."""
        if self.settings.redis_url:
            return self.settings.redis_url
        alive = [r for r in self._nodes("redis", self._load()).values() if r.alive()]
        if not alive:
            raise ServiceError(
                "redis",
                "no server configured: set DRIFTLINE_REDIS_URL or run `driftline services up`",
            )
        return alive[0].endpoint

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
            nodes = self._nodes("kafka", records)
            wanted_nodes = self.settings.kafka_brokers
            if rec is not None and rec.alive() and len(nodes) != wanted_nodes:
                raise ServiceError(
                    "kafka",
                    f"the running broker has {len(nodes)} node(s), the settings ask for "
                    f"{wanted_nodes}: run `driftline services down` first",
                )
            if rec is None or not rec.alive():
                started = self._start_broker(kind, wanted_nodes)
                records.update(started)
                self._save(records)
                for name, node in started.items():
                    self._wait(name, node, timeout_s)
        if not self.settings.redis_url:
            self._redis_up(records, timeout_s)
        return self.status()

    def _redis_up(self, records: dict[str, ServiceRecord], timeout_s: float) -> None:
        nodes = self._nodes("redis", records)
        running = [r for r in nodes.values() if r.alive()]
        cluster = self.settings.redis_cluster
        if running and (len(nodes) > 1) != cluster:
            kind = "a cluster" if len(nodes) > 1 else "one server"
            raise ServiceError(
                "redis",
                f"the running Redis is {kind}, the settings ask for "
                f"{'a cluster' if cluster else 'one server'}: run `driftline services down` first",
            )
        if running:
            return
        started = (
            start_redis_cluster(self.settings, self.data_dir)
            if cluster
            else {"redis": start_redis(self.settings, self.data_dir)}
        )
        records.update(started)
        self._save(records)
        for name, node in started.items():
            self._wait(name, node, timeout_s)
        if cluster:
            form_cluster(started, self.settings, self.data_dir, timeout_s)

    def postgres_up(self, timeout_s: float = 60.0) -> str:
        """Start a local PostgreSQL server unless one runs; return its URL once it answers.

        Not part of :meth:`up`: only the SQL features need it (training from a query, the
        SQL window, the history sink); :meth:`down` stops it with the rest.
        """
        records = self._load()
        rec = records.get("postgres")
        if rec is None or not rec.alive():
            port = int(rec.endpoint.rsplit(":", 1)[1].split("/")[0]) if rec else None
            rec = start_postgres(self.data_dir, port)
            records["postgres"] = rec
            self._save(records)
            self._wait("postgres", rec, timeout_s)
        return rec.endpoint

    def _start_broker(self, kind: BrokerKind, nodes: int) -> dict[str, ServiceRecord]:
        if kind == "tansu":
            if nodes != 1:
                raise ServiceError("kafka", "Tansu runs as one broker: use --broker kafka")
            return {"kafka": start_tansu(self.settings, self.data_dir)}
        if nodes == 1:
            return {"kafka": start_kafka(self.settings, self.data_dir)}
        return start_kafka_cluster(self.settings, self.data_dir, nodes)

    def _wait(self, name: str, rec: ServiceRecord, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not rec.alive():
                raise ServiceError(name, f"exited while starting; last log lines:\n{tail(rec.log)}")
            if self._healthy(name, rec.endpoint):
                return
            time.sleep(0.25)
        stop(rec)
        raise ServiceError(name, f"not healthy after {timeout_s:.0f}s; log:\n{tail(rec.log)}")

    def _healthy(self, name: str, endpoint: str) -> bool:
        if name == "postgres":
            return postgres_healthy(endpoint)
        if name.startswith("kafka"):
            return kafka_healthy(endpoint, self.settings, timeout_s=3.0)
        return redis_healthy(endpoint, self.settings)

    def fetch_jars(self) -> JarCache:
        """Fetch the pinned Kafka jars into the cache unless they are there (see kafka_jars)."""
        return fetch_kafka_jars(self.settings)

    # -- one service down and back ------------------------------------------------------
    def _managed(self, name: str) -> ServiceRecord:
        rec = self._load().get(name)
        if rec is None or rec.kind not in ("kafka", "redis"):
            raise ServiceError(name, "not started here by `up` (or a broker without disk data)")
        return rec

    def stop_service(self, name: str, *, kill: bool = False) -> None:
        """Stop the ``kafka`` (or a node ``kafka-N`` of a cluster) or ``redis`` that :meth:`up`
        started; keep its data and ports. ``kill``: SIGKILL, as a crash would.

        :meth:`start_service` brings it back on the same endpoint, so that clients that hold
        on reconnect by themselves: how the reliability tests restart a broker or Redis.
        """
        stop(self._managed(name), kill=kill)

    def freeze_service(self, name: str, frozen: bool = True) -> None:
        """SIGSTOP (or, ``frozen=False``, SIGCONT) a service that :meth:`up` started: how the
        reliability tests hang a broker without closing its connections."""
        freeze(self._managed(name), frozen)

    def start_service(self, name: str, timeout_s: float = 120.0) -> None:
        """Start a service stopped by :meth:`stop_service` again: same port, same data dir."""
        records = self._load()
        rec = self._managed(name)
        if rec.alive():
            return
        if rec.kind == "kafka":
            home = self.data_dir / name  # node_home of the node called `name`
            ports, node_id, voters = node_layout((home / "server.properties").read_text())
            fresh = start_kafka(self.settings, self.data_dir, ports, node_id=node_id, voters=voters)
        else:
            fresh = start_redis(
                self.settings,
                self.data_dir,
                int(rec.endpoint.rsplit(":", 1)[1].split("/")[0]),
                name=name,
                cluster=(self.data_dir / name / "nodes.conf").exists(),
            )
        records[name] = fresh
        self._save(records)
        self._wait(name, fresh, timeout_s)

    # -- where things come from ---------------------------------------------------------
    def doctor(self) -> dict[str, dict[str, Any]]:
        """Say, for Kafka, Java, Redis and PostgreSQL, where each comes from: source, version
        and path.

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
        try:  # for the SQL features' tests (postgres_up), never started by `up`
            pg = find_postgres()
            report["postgres"] = {"source": pg.source, "version": pg.version, "path": pg.path}
        except ServiceError as exc:
            report["postgres"] = {"source": "missing", "error": str(exc)}
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
            nodes = {} if configured else self._nodes(name, records)
            if len(nodes) > 1:
                alive = [r for r in nodes.values() if r.alive()]
                rec = alive[0] if alive else rec
                # Kafka clients take every node; a Redis Cluster client one and finds the rest
                joined = ",".join(r.endpoint for r in alive)
                endpoint = (joined if name == "kafka" else alive[0].endpoint) if alive else None
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
            entry["nodes"] = [
                {
                    "name": n,
                    "endpoint": r.endpoint,
                    "alive": r.alive(),
                    "healthy": r.alive() and self._healthy(n, r.endpoint),
                }
                for n, r in nodes.items()
            ]
            if name == "redis" and len(nodes) > 1:
                entry["healthy"] = bool(endpoint) and cluster_ok(str(endpoint), self.settings)
                roles = node_roles(nodes, self.settings)
                for node in entry["nodes"]:
                    node["role"] = roles.get(node["name"])
            out[name] = entry
        return out

    def down(self) -> list[str]:
        """Stop every process that ``up`` started; return the names of those stopped."""
        records = self._load()
        stopped = []
        for name, rec in records.items():
            if rec.alive():
                stop(rec)
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
