"""The measured scenarios: each runs one contender on fresh topics and returns its figures."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.kafkaio import Collected, Collector, event_payloads, paced, preload, rate_from_timestamps
from bench.world import PARTITIONS, World, peak_rss_mb, running, wait_alive


class BenchError(RuntimeError):
    """A scenario could not produce its figure (the contender died or stalled)."""


@contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Keep the harness's own cycle collector out of what it times.

    The paced sender and the collector share one process whose heap holds the run's
    payloads and arrival maps (hundreds of thousands of objects): a full collection there
    took 90-120 ms and a young one up to 35 ms, during which nothing was sent or read, and
    both counted as the contender's latency (or as a gap in its predictions). What exists
    before the run is frozen out of the collector's reach and the collector is off during
    the run; reference counting still frees everything that is not a cycle.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


@dataclass(frozen=True)
class Throughput:
    events_per_s: float  # by arrival at the collector
    by_broker_time_per_s: float  # by the predictions' timestamps: a check on the collector
    predicted: int
    duplicates: int
    peak_rss_mb: float


def _extra(world: World, kind: str, monitoring: bool, guarantee: str) -> dict[str, str]:
    if kind == "quix":
        return {"BENCH_PEER_MODEL": str(world.peer_model())}
    if kind != "driftline":
        return {}
    tuning = os.environ.get("BENCH_WORKER_ENV", "")  # KEY=VALUE,... to try settings
    pairs = dict(item.split("=", 1) for item in tuning.split(",") if "=" in item)
    return {
        "DRIFTLINE_MONITORING": "true" if monitoring else "false",
        "DRIFTLINE_PROCESSING_GUARANTEE": guarantee,
        **pairs,
    }


def throughput(
    world: World,
    kind: str,
    n: int,
    *,
    monitoring: bool = True,
    guarantee: str = "at_least_once",
    timeout_s: float = 300,
    profile: Path | None = None,
) -> Throughput:
    """Preload ``n`` events, start the contender, time how fast it drains them (Driftline:
    with ``monitoring`` and under ``guarantee``; the collector reads committed, so exactly
    once a prediction counts when its transaction commits)."""
    topics = world.topics()
    events = event_payloads(world.rows, prefix="t", n=n, partitions=PARTITIONS)
    asyncio.run(preload(world.bootstrap, topics["events"], events))
    env = world.env(topics, **_extra(world, kind, monitoring, guarantee))
    log = world.root / "logs" / f"{kind}-{topics['events']}.log"

    async def drain(pid: int) -> tuple[bool, float, Collected]:
        async with Collector(world.bootstrap, topics["predictions"], PARTITIONS) as col:
            done = await col.wait_for(n, timeout_s)
            rss = peak_rss_mb(pid)
            await asyncio.sleep(0.5)  # let duplicates in flight arrive
            return done, rss, col.seen

    with running(kind, env, log, profile) as proc:
        wait_alive(proc, 0.5)
        done, rss, seen = asyncio.run(drain(proc.pid))
    if not done:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise BenchError(f"{kind}: {seen.unique} of {n} predicted in {timeout_s} s\n{tail}")
    return Throughput(
        rate_from_timestamps(list(seen.arrived.values())),
        rate_from_timestamps([ms / 1000 for ms in seen.broker_ms]),
        seen.unique,
        seen.duplicates,
        rss,
    )


@dataclass(frozen=True)
class Latency:
    offered_per_s: float
    achieved_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    lost: int


def latency(
    world: World,
    rate: float,
    seconds: float,
    *,
    warmup_s: float = 3.0,
    kind: str = "driftline",
    timeout_s: float = 120,
) -> Latency:
    """Offer ``rate`` events/s for ``seconds`` to a running contender; percentiles.

    The figures are of the steady state: once the contender scores, the same load is offered
    for ``warmup_s`` first (not measured), so that a fresh process's first second at this
    rate (where most of the slowest 1 % sat in earlier runs) is not counted as the latency
    of the load.
    """
    topics = world.topics()
    n = max(50, int(rate * seconds))
    events = event_payloads(world.rows, prefix="l", n=n, partitions=PARTITIONS)
    steady = event_payloads(
        world.rows, prefix="warmup", n=int(rate * warmup_s), partitions=PARTITIONS
    )
    log = world.root / "logs" / f"latency-{topics['events']}.log"

    async def offer() -> tuple[dict[str, float], dict[str, float], float]:
        async with Collector(world.bootstrap, topics["predictions"], PARTITIONS) as col:
            warm = event_payloads(world.rows, prefix="warm", n=200, partitions=PARTITIONS)
            await paced(world.bootstrap, topics["events"], warm, rate=min(rate, 2000))
            if not await col.wait_for(len(warm), 120):
                raise BenchError("the worker did not start scoring within 120 s")
            await paced(world.bootstrap, topics["events"], steady, rate)
            started = time.perf_counter()
            sent = await paced(world.bootstrap, topics["events"], events, rate)
            elapsed = time.perf_counter() - started
            await col.wait_for(n + len(warm) + len(steady), timeout_s)
            return sent, dict(col.seen.arrived), elapsed

    env = world.env(topics, **_extra(world, kind, True, "at_least_once"))
    with running(kind, env, log) as proc, no_gc_pauses():
        wait_alive(proc, 0.5)
        sent, arrived, elapsed = asyncio.run(offer())
    lat = np.array([(arrived[k] - t) * 1000.0 for k, t in sent.items() if k in arrived])
    lost = sum(1 for k in sent if k not in arrived)
    if not len(lat):
        raise BenchError("no prediction arrived")
    p50, p95, p99 = np.percentile(lat, [50, 95, 99]).tolist()
    return Latency(rate, len(sent) / elapsed, p50, p95, p99, lost)


def logs_dir(world: World) -> Path:
    return world.root / "logs"


__all__ = ["BenchError", "Latency", "Throughput", "latency", "throughput"]


@dataclass(frozen=True)
class HotSwap:
    offered_per_s: float
    max_gap_ms: float
    median_gap_ms: float
    sent: int
    lost: int
    swapped_after_s: float  # promotion announced -> first prediction of the new version


def hot_swap(world: World, rate: float, seconds: float, new_version: str) -> HotSwap:
    """Promote ``new_version`` halfway through ``seconds`` of load at ``rate``; the largest
    gap between predictions around the swap, and what was lost."""
    from streams.config.settings import load_settings
    from streams.contracts.messages import ModelUpdate
    from streams.control.updates import publish_update

    topics = world.topics()
    n = max(100, int(rate * seconds))
    events = event_payloads(world.rows, prefix="s", n=n, partitions=PARTITIONS)
    log = world.root / "logs" / f"swap-{topics['events']}.log"
    settings = load_settings(kafka_bootstrap=world.bootstrap, topic_model_updates=topics["updates"])
    old = world.registry.aliases(world.model)["champion"].version

    async def offer() -> tuple[dict[str, float], Collected, float]:
        async with Collector(
            world.bootstrap, topics["predictions"], PARTITIONS, keep_versions=True
        ) as col:
            warm = event_payloads(world.rows, prefix="warm", n=200, partitions=PARTITIONS)
            await paced(world.bootstrap, topics["events"], warm, rate=min(rate, 2000))
            if not await col.wait_for(len(warm), 120):
                raise BenchError("the worker did not start scoring within 120 s")
            sending = asyncio.create_task(paced(world.bootstrap, topics["events"], events, rate))
            await asyncio.sleep(seconds / 2)
            world.registry.promote(world.model, new_version)
            promoted = time.perf_counter()
            update = ModelUpdate(model=world.model, action="promote", version=new_version)
            await publish_update(settings, world.bootstrap, update)
            sent = await sending
            await col.wait_for(n + len(warm), 60)
            return sent, col.seen, promoted

    try:
        with running("driftline", world.env(topics), log) as proc, no_gc_pauses():
            wait_alive(proc, 0.5)
            sent, seen, promoted = asyncio.run(offer())
    finally:
        world.registry.promote(world.model, old)
    arrivals = np.array(sorted(t for t, _ in seen.versions))
    window = arrivals[(arrivals > promoted - 2.0) & (arrivals < promoted + 5.0)]
    gaps = np.diff(window) * 1000.0 if len(window) > 1 else np.array([float("nan")])
    first_new = min((t for t, v in seen.versions if v == new_version), default=float("nan"))
    lost = sum(1 for k in sent if k not in seen.ids)
    return HotSwap(
        rate,
        float(gaps.max()),
        float(np.median(gaps)),
        len(sent),
        lost,
        first_new - promoted,
    )
