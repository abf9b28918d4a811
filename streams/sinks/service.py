"""``driftline sinks``: every sink's runner, their health and metrics, until stopped.

The runners are tasks of one asyncio process apart from the workers: a receiver that hangs or
fails only makes its own sink's backlog grow, never a batch wait. Every two seconds the
service measures each sink's backlog and writes the sinks' health to the Redis hash
``driftline:sinks:health`` (one field per sink, JSON). Over HTTP, on ``metrics_host`` and
``sinks_metrics_port`` (0: any free port, written to ``<data_dir>/metrics/sinks-<pid>.json``):

- ``/health`` — JSON, 200 when no sink is failing, else 503; ``/health/live`` — 200 while the
  process serves;
- ``/metrics`` — Prometheus text: per sink (``sink``, ``type``) alerts delivered, failed
  attempts, alerts dropped, conditions resolved, ``driftline_sink_failing`` (1 after
  ``failing_after`` consecutive failed attempts), the backlog and the last success's time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from streams.adapters.redis_client import AsyncClient
from streams.config.settings import Settings
from streams.contracts.names import SINKS_HEALTH_KEY
from streams.sinks.delivery import SinkRunner, pause
from streams.sinks.status import SinkStatus
from streams.sinks.transports import transport

log = logging.getLogger("driftline.sinks")

PUBLISH_S = 2.0


class _SinkCollector(Collector):
    def __init__(self, statuses: list[SinkStatus]) -> None:
        self.statuses = statuses

    def collect(self) -> Iterable[Metric]:
        labels = ["sink", "type"]
        counters = {
            "delivered": CounterMetricFamily(
                "driftline_sink_delivered", "Alerts the sink's receiver accepted.", labels=labels
            ),
            "failed_attempts": CounterMetricFamily(
                "driftline_sink_failures", "Delivery attempts that failed.", labels=labels
            ),
            "dropped": CounterMetricFamily(
                "driftline_sink_dropped",
                "Alerts the receiver refused for good (HTTP 4xx, SMTP 5xx).",
                labels=labels,
            ),
            "resolved": CounterMetricFamily(
                "driftline_sink_resolved", "Conditions resolved (PagerDuty).", labels=labels
            ),
        }
        failing = GaugeMetricFamily(
            "driftline_sink_failing",
            "1 when the sink's last failing_after attempts or more all failed.",
            labels=labels,
        )
        backlog = GaugeMetricFamily(
            "driftline_sink_backlog_alerts",
            "Alerts on the stream the sink has yet to deliver.",
            labels=labels,
        )
        last = GaugeMetricFamily(
            "driftline_sink_last_success_timestamp_seconds",
            "Unix time of the sink's last accepted delivery.",
            labels=labels,
        )
        for s in self.statuses:
            values = [s.name, s.type]
            for attr, family in counters.items():
                family.add_metric(values, float(getattr(s, attr)))
            failing.add_metric(values, float(s.failing))
            if s.backlog is not None:
                backlog.add_metric(values, float(s.backlog))
            if s.last_success_at is not None:
                last.add_metric(values, s.last_success_at)
        return [*counters.values(), failing, backlog, last]


class SinkService:
    """The runners of ``settings.sinks`` on ``redis``, with their health and metrics."""

    def __init__(self, settings: Settings, redis: AsyncClient) -> None:
        self.settings = settings
        self.redis = redis
        self.runners = [
            SinkRunner(
                name,
                sink,
                redis,
                transport(name, sink),
                settings.worker_id,
                settings.sinks_resolve_interval_s,
                settings.sinks_claim_after_s,
            )
            for name, sink in settings.sinks.items()
        ]
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_SinkCollector([r.status for r in self.runners]))
        self.port: int | None = None
        self.started_at = time.time()

    def health(self) -> dict[str, Any]:
        """Every sink's status; ``failing`` when any sink is."""
        sinks = {r.name: r.status.to_dict() for r in self.runners}
        ready = all(r.ready.is_set() for r in self.runners)
        failing = any(r.status.failing for r in self.runners)
        status = "failing" if failing else "ok" if ready else "starting"
        return {
            "status": status,
            "pid": os.getpid(),
            "consumer": self.settings.worker_id,
            "uptime_s": round(time.time() - self.started_at, 3),
            "sinks": sinks,
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then let each runner end its attempt in hand."""
        server = await self._serve()
        tasks = [asyncio.create_task(r.run(stop), name=f"sink-{r.name}") for r in self.runners]
        try:
            while not stop.is_set():
                await self._publish()
                await pause(stop, PUBLISH_S)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for r in self.runners:
                await r.transport.close()
            if server is not None:
                await server.cleanup()
            self._forget_port()

    async def _publish(self) -> None:
        try:
            for r in self.runners:
                if r.ready.is_set():
                    await r.measure_backlog()
            if self.runners:
                doc = {
                    r.name: orjson.dumps({**r.status.to_dict(), "at": time.time()})
                    for r in self.runners
                }
                await self.redis.hset(SINKS_HEALTH_KEY, mapping=doc)  # type: ignore[arg-type]
        except RedisError as exc:
            log.warning("sinks: cannot publish health (%s)", exc)

    async def _serve(self) -> web.AppRunner | None:
        app = web.Application()

        async def health(request: web.Request) -> web.Response:
            doc = self.health()
            live = request.path.rstrip("/").endswith("/live")
            code = 200 if live or doc["status"] == "ok" else 503
            return web.Response(
                status=code, body=orjson.dumps(doc), content_type="application/json"
            )

        async def metrics(request: web.Request) -> web.Response:
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get("/health", health)
        app.router.add_get("/health/live", health)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = self.settings.metrics_host, self.settings.sinks_metrics_port
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            # delivery matters more than its metrics
            print(
                f"sinks: cannot listen on {host}:{port} ({exc}); no /metrics nor /health",
                file=sys.stderr,
            )
            await runner.cleanup()
            return None
        sockets = list(runner.addresses or [])
        self.port = int(sockets[0][1]) if sockets else port
        path = self._port_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps({"pid": os.getpid(), "host": host, "port": self.port}))
        print(
            f"sinks: metrics and health on http://{host}:{self.port}/metrics /health",
            file=sys.stderr,
        )
        return runner

    def _port_file(self) -> Path:
        return self.settings.data_dir / "metrics" / f"sinks-{os.getpid()}.json"

    def _forget_port(self) -> None:
        self._port_file().unlink(missing_ok=True)


__all__ = ["SinkService"]
