"""The metrics, health and liveness watchdog of the part of a worker that serves one model.

The process's HTTP server (:mod:`streams.worker.endpoints`) runs in threads of its own, not
on the event loop: when the loop is blocked (the case the watchdog exists for) ``/health``
still answers, and says ``stuck``. So what it reads here is only what is safe to read from
another thread: a :class:`Sample` that the event loop replaces whole once a second (consumer
lag, batch in hand, the monitors' metric families when this worker owns them), immutable model
sets, counters, the watchdog.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from prometheus_client.metrics_core import Metric

from streams.config.settings import Settings
from streams.ops.liveness import Watchdog, WatchdogThread
from streams.ops.observability import Probe, WorkerMetrics
from streams.ops.quality_metrics import monitor_families
from streams.scoring.inflight import BatchStats
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
    """Metrics, health and watchdog of one model's scoring in a worker: ``on_batch`` for
    ``create_app``, then :meth:`attach` to the app and :meth:`start` before running it."""

    def __init__(self, settings: Settings, runtime: WorkerRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.metrics = WorkerMetrics(runtime.model, self.probe)
        self.watchdog = Watchdog(settings.watchdog_s)
        self.sample = Sample()
        self.started_at = time.time()
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
    def start(self) -> None:
        """Start the watchdog thread (the process's endpoints serve the rest)."""
        if self.settings.watchdog_s > 0:
            self._dog = WatchdogThread(self.watchdog)
            self._dog.start()

    def stop(self) -> None:
        """Stop the watchdog thread."""
        if self._dog is not None:
            self._dog.stop()


def _kind(payload: bytes) -> str:
    try:
        return str(orjson.loads(payload).get("kind", "unknown"))
    except (orjson.JSONDecodeError, AttributeError):
        return "unknown"


__all__ = ["SAMPLE_S", "Sample", "WorkerObservability"]
