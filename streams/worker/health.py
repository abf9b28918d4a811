"""A worker's ``/metrics`` and ``/health`` endpoints and its liveness watchdog.

The HTTP server runs in threads of its own, not on the event loop: when the loop is blocked
(the case the watchdog exists for) ``/health`` still answers, and says ``stuck``. So the
endpoints read only what is safe to read from another thread: a :class:`Sample` that the
event loop replaces whole once a second (consumer lag, batch in hand, the monitors' metric
families when this worker owns them), immutable model sets, counters, the watchdog.

Endpoints (``metrics_host``:``metrics_port``; port 0 picks a free one, printed and written
to ``<data_dir>/metrics/worker-<pid>.json``):

- ``/metrics`` — Prometheus text format (:mod:`streams.ops.observability`);
- ``/health`` — JSON, 200 when live and ready, else 503; ``/health/live`` and
  ``/health/ready`` answer the same JSON with the status code of one question each.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import faust
import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from streams.config.settings import Settings, env_name
from streams.ops.liveness import Watchdog, WatchdogThread
from streams.ops.observability import Probe, WorkerMetrics
from streams.ops.quality_metrics import monitor_families
from streams.scoring.loop import BatchStats
from streams.worker.app import WorkerRuntime

log = logging.getLogger("driftline.worker")

SAMPLE_S = 1.0


@dataclass(frozen=True)
class Sample:
    """What the event loop saw at ``at`` (wall clock); replaced whole, never mutated."""

    at: float | None = None
    lag: Mapping[int, int | None] = field(default_factory=dict)
    busy: bool = False
    monitor_owner: bool = False
    monitor_status: str | None = None
    monitor: Sequence[Metric] = ()


class WorkerObservability:
    """Metrics, health and watchdog of one worker: ``on_batch`` for ``create_app``, then
    :meth:`attach` to the app and :meth:`start` before running it."""

    def __init__(self, settings: Settings, runtime: WorkerRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.metrics = WorkerMetrics(runtime.model, self.probe)
        self.watchdog = Watchdog(settings.watchdog_s)
        self.sample = Sample()
        self.started_at = time.time()
        self.server: ThreadingHTTPServer | None = None
        self.port_file: Path | None = None
        self.app: faust.App | None = None
        self._dog: WatchdogThread | None = None
        self._stalled = False
        self._logged: set[str] = set()

    # -- event loop side ------------------------------------------------------------------
    def on_batch(self, stats: BatchStats) -> None:
        """The scoring loop's callback after every committed batch."""
        self.metrics.on_batch(stats, time.time())

    def attach(self, app: faust.App) -> None:
        """Sample once a second on the app's loop; count alerts; stop cleanly with the app."""
        self.app = app
        app.task(self._sample_forever)
        monitor = self.runtime.monitor
        if monitor is not None:
            inner, alerts_topic = monitor.send, self.settings.topic_alerts

            async def send(topic: str, payloads: list[bytes]) -> None:
                await inner(topic, payloads)
                if topic == alerts_topic:
                    self.metrics.on_alerts(_kind(p) for p in payloads)

            monitor.send = send

        async def on_shutdown(sender: Any, /, *args: Any, **kwargs: Any) -> None:
            self.watchdog.disarm()  # a slow stop is not a hang
            await asyncio.get_running_loop().run_in_executor(None, self.stop)

        app.on_before_shutdown.connect(on_shutdown)

    async def _sample_forever(self) -> None:
        while True:
            await self.take_sample()
            await asyncio.sleep(SAMPLE_S)

    async def take_sample(self) -> None:
        """Read lag and monitors on the loop; report to the watchdog (its heartbeat)."""
        loop, previous = self.runtime.loop, self.sample
        lag, busy, progress = previous.lag, False, 0
        if loop is not None:
            stall = self.settings.fault_stall_after_batches
            if stall and loop.batches >= stall and not self._stalled:
                self._stalled = True  # holding the lock stops the loop before its next batch
                await loop.lock.acquire()
                log.warning("fault injection: scoring stalled after %d batches", loop.batches)
            busy, progress = loop.lock.locked(), loop.batches
            try:
                lag = await loop.lag()
            except Exception:  # never let a metric kill the heartbeat
                self._failed("cannot read the consumer lag")
        self.watchdog.observe(progress, sum(v for v in lag.values() if v), busy)
        owner, status, families = False, None, previous.monitor
        monitor = self.runtime.monitor
        if monitor is not None:
            try:
                owner = monitor.owned
                health = monitor.health() if owner else {}
                status = health.get("status")
                drift = monitor.monitor.drift_statistics() if owner else {}
                families = monitor_families(self.runtime.model, health, drift) if owner else ()
            except Exception:
                self._failed("cannot read the monitors' state")
        self.sample = Sample(time.time(), lag, busy, owner, status, tuple(families))

    def _failed(self, what: str) -> None:
        # once a second would flood the log: the first time with its traceback, then quietly
        if what not in self._logged:
            self._logged.add(what)
            log.exception("%s (logged once)", what)
        else:
            log.debug("%s", what, exc_info=True)

    # -- any thread -----------------------------------------------------------------------
    def probe(self) -> Probe:
        """The worker's state for the metrics (read at scrape time, from the server thread)."""
        s, verdict, models = self.sample, self.watchdog.verdict(), self.runtime.current
        monitor = self.runtime.monitor
        return Probe(
            versions={
                "champion": models.champion.version,
                "challenger": models.challenger.version if models.challenger else None,
            },
            routing=models.routing.mode,
            swaps=self.runtime.swaps,
            topic=self.settings.topic_events,
            lag=s.lag,
            last_batch_at=self.metrics.last_batch_at,
            ready=self._ready(s, verdict.state),
            stalled_s=verdict.stalled_s,
            stuck=verdict.state == "stuck",
            monitor_owner=s.monitor_owner if monitor is not None else None,
            monitor_degraded=monitor is not None and monitor.degraded is not None,
            monitor=s.monitor,
        )

    def _ready(self, s: Sample, state: str) -> bool:
        # The model set was loaded before the app started; the first sample means it runs.
        return s.at is not None and state != "stuck"

    def health(self) -> dict[str, Any]:
        """Liveness and readiness, versions, scoring progress, lag, monitoring, watchdog."""
        s, verdict, models = self.sample, self.watchdog.verdict(), self.runtime.current
        now, loop, monitor = time.time(), self.runtime.loop, self.runtime.monitor
        live, ready = verdict.state != "stuck", self._ready(s, verdict.state)
        degraded = monitor.degraded if monitor is not None else None
        status = "stuck" if not live else "starting" if not ready else "ok"
        if status == "ok" and degraded:
            status = "degraded"  # scoring goes on: still ready
        last = self.metrics.last_batch_at
        known = [v for v in s.lag.values() if v is not None]
        return {
            "status": status,
            "live": live,
            "ready": ready,
            "model": self.runtime.model,
            "worker_id": self.settings.worker_id,
            "pid": os.getpid(),
            "uptime_s": round(now - self.started_at, 3),
            "versions": models.describe(),
            "swaps": self.runtime.swaps,
            "scoring": {
                "partitions": sorted(s.lag),
                "lag": {str(p): v for p, v in sorted(s.lag.items())},
                "lag_total": sum(known) if known else None,
                "batches": loop.batches if loop is not None else 0,
                "batch_in_hand": s.busy,
                "last_batch_at": last,
                "last_batch_age_s": None if last is None else round(now - last, 3),
                "sampled_at": s.at,
            },
            "watchdog": {
                "enabled": self.settings.watchdog_s > 0,
                "limit_s": self.settings.watchdog_s,
                "state": verdict.state,
                "stalled_s": round(verdict.stalled_s, 3),
                "reason": verdict.reason,
            },
            "monitoring": None
            if monitor is None
            else {"owner": s.monitor_owner, "status": s.monitor_status, "degraded": degraded},
        }

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> int | None:
        """Start the HTTP server and the watchdog thread; return the bound port (None: off).

        A port in use is logged, not fatal: scoring matters more than its metrics.
        """
        if self.settings.watchdog_s > 0:
            self._dog = WatchdogThread(self.watchdog)
            self._dog.start()
        if not self.settings.metrics_enabled:
            return None
        host, port = self.settings.metrics_host, self.settings.metrics_port
        server_class = _Server6 if ":" in host else ThreadingHTTPServer
        try:
            self.server = server_class((host, port), _handler(self))
        except OSError as exc:
            print(
                f"metrics: cannot listen on {host}:{port} ({exc}); no /metrics nor /health. "
                f"Set {env_name('metrics_port')}=0 for any free port.",
                file=sys.stderr,
            )
            return None
        self.server.daemon_threads = True
        bound = int(self.server.server_address[1])
        Thread(target=self.server.serve_forever, name="driftline-metrics", daemon=True).start()
        self.port_file = self.settings.data_dir / "metrics" / f"worker-{os.getpid()}.json"
        self.port_file.parent.mkdir(parents=True, exist_ok=True)
        doc = {"model": self.runtime.model, "pid": os.getpid(), "host": host, "port": bound}
        self.port_file.write_bytes(orjson.dumps(doc))
        where = f"[{host}]" if ":" in host else host
        print(f"metrics and health on http://{where}:{bound}/metrics /health", file=sys.stderr)
        return bound

    def stop(self) -> None:
        """Stop the server and the watchdog thread; remove the port file."""
        if self._dog is not None:
            self._dog.stop()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.port_file is not None:
            self.port_file.unlink(missing_ok=True)


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _kind(payload: bytes) -> str:
    try:
        return str(orjson.loads(payload).get("kind", "unknown"))
    except (orjson.JSONDecodeError, AttributeError):
        return "unknown"


def _handler(obs: WorkerObservability) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/metrics":
                self._send(200, obs.metrics.render(), CONTENT_TYPE_LATEST)
                return
            if path not in ("/health", "/health/live", "/health/ready"):
                self._send(404, b"not found: try /metrics or /health\n", "text/plain")
                return
            doc = obs.health()
            ok = {"/health": doc["live"] and doc["ready"], "/health/live": doc["live"]}
            code = 200 if ok.get(path, doc["ready"]) else 503
            self._send(code, orjson.dumps(doc) + b"\n", "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not worth a log line

    return Handler


__all__ = ["SAMPLE_S", "Sample", "WorkerObservability"]
