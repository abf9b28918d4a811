"""The worker's /health document and metrics probe, from a sampled (fake) scoring loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streams.config.settings import Settings
from streams.ops.liveness import Watchdog
from streams.scoring.routing import Routing
from streams.worker.health import WorkerObservability, _kind


class FakeLoop:
    def __init__(self) -> None:
        self.batches = 0
        self.lock = asyncio.Lock()
        self.lags: dict[int, int | None] = {0: 0, 1: 0}

    async def lag(self) -> dict[int, int | None]:
        return dict(self.lags)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def _runtime(monitor: Any = None) -> SimpleNamespace:
    models = SimpleNamespace(
        champion=SimpleNamespace(version="3"),
        challenger=SimpleNamespace(version="4"),
        routing=Routing(mode="shadow"),
    )
    models.describe = lambda: {"champion": "3", "challenger": "4", "routing": {"mode": "shadow"}}
    return SimpleNamespace(
        model="credit", current=models, swaps=2, monitor=monitor, loop=FakeLoop()
    )


def _observability(tmp_path: Path, runtime: SimpleNamespace) -> tuple[WorkerObservability, Clock]:
    settings = Settings(data_dir=tmp_path, watchdog_s=10, metrics_enabled=False)
    obs = WorkerObservability(settings, runtime)  # type: ignore[arg-type]
    clock = Clock()
    obs.watchdog = Watchdog(10, clock=clock)
    return obs, clock


def test_starting_then_ready_with_versions_and_lag(tmp_path: Path) -> None:
    runtime = _runtime()
    obs, _ = _observability(tmp_path, runtime)
    doc = obs.health()
    assert doc["status"] == "starting" and not doc["ready"] and doc["live"]
    runtime.loop.lags = {0: 5, 1: None, 2: 7}
    asyncio.run(obs.take_sample())
    doc = obs.health()
    assert doc["status"] == "ok" and doc["ready"] and doc["live"]
    assert doc["versions"]["champion"] == "3" and doc["swaps"] == 2
    assert doc["scoring"]["partitions"] == [0, 1, 2]
    assert doc["scoring"]["lag"] == {"0": 5, "1": None, "2": 7}
    assert doc["scoring"]["lag_total"] == 12
    assert doc["monitoring"] is None
    assert doc["watchdog"] == {
        "enabled": True,
        "limit_s": 10,
        "state": "ok",
        "stalled_s": 0.0,
        "reason": None,
    }
    families = text_string_to_metric_families(obs.metrics.render().decode())
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    info = (
        "driftline_model_version_info",
        (("model", "credit"), ("role", "challenger"), ("routing", "shadow"), ("version", "4")),
    )
    assert samples[info] == 1
    assert samples[("driftline_worker_ready", (("model", "credit"),))] == 1


def test_stuck_is_not_live_and_says_why(tmp_path: Path) -> None:
    runtime = _runtime()
    obs, clock = _observability(tmp_path, runtime)
    runtime.loop.lags = {0: 40}
    asyncio.run(obs.take_sample())
    clock.now += 6
    asyncio.run(obs.take_sample())  # no batch committed since, 40 events waiting
    doc = obs.health()
    assert doc["status"] == "stuck" and not doc["live"] and not doc["ready"]
    assert "40 events waiting" in doc["watchdog"]["reason"]
    runtime.loop.batches += 1  # progress again
    asyncio.run(obs.take_sample())
    assert obs.health()["status"] == "ok"


def test_monitoring_degraded_keeps_the_worker_ready(tmp_path: Path) -> None:
    monitor = SimpleNamespace(degraded=None)
    runtime = _runtime(monitor)
    obs, _ = _observability(tmp_path, runtime)
    asyncio.run(obs.take_sample())  # no Faust app attached: not the owner
    assert obs.health()["monitoring"] == {"owner": False, "status": None, "degraded": None}
    monitor.degraded = "redis snapshot: connection refused"
    doc = obs.health()
    assert doc["status"] == "degraded" and doc["ready"] and doc["live"]
    assert doc["monitoring"]["degraded"].startswith("redis")


def test_fault_injection_stalls_the_loop(tmp_path: Path) -> None:
    runtime = _runtime()
    obs, _ = _observability(tmp_path, runtime)
    obs.settings = Settings(data_dir=tmp_path, fault_stall_after_batches=2)
    runtime.loop.batches = 1

    async def run() -> None:
        await obs.take_sample()
        assert not runtime.loop.lock.locked()
        runtime.loop.batches = 2
        await obs.take_sample()
        assert runtime.loop.lock.locked() and obs.sample.busy

    asyncio.run(run())


def test_alert_kinds_are_read_from_the_payload() -> None:
    assert _kind(b'{"kind": "fairness"}') == "fairness"
    assert _kind(b"not json") == "unknown"
    assert _kind(b"[1]") == "unknown"
