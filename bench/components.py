"""Monitoring cost by component, in µs per event, measured in-process on real Redis.

The throughput ratio (monitoring on / off) says what monitoring costs the whole path; this
says where. The ``monitoring:`` rows, and their total, are the path of a worker that owns the
model's monitors (the default): the feature columns (the scorer's own, in-process), the drift
monitors, the label-join store, and the label side (join, label monitors, window, online
challenger). The ``owner in another process:`` rows are what the ``monitor-input`` topic adds
when the monitors run elsewhere: encoding, decoding, and reading the features from the input.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.world import World
from models.scorer import OnnxScorer
from streams.messages import card_event_model
from streams.monitor_agents import _scored_parts, scored_records
from streams.monitor_runtime import MonitorRuntime
from streams.scoring import BatchScorer, ModelSet, RawRecord, Scored
from streams.settings import load_settings


def _per_event(fn: Callable[[], Any], events: int, repeat: int) -> float:
    fn()  # warm
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat / events * 1e6


def _renamed(parts: list[Scored], tag: str) -> list[Scored]:
    return [
        Scored(
            p.variant,
            p.version,
            [f"{e}-{tag}" for e in p.event_ids],
            p.features,
            p.labels,
            p.scores,
            p.numeric,
        )
        for p in parts
    ]


def monitoring_cost(world: World, batch: int = 1024, repeat: int = 10) -> dict[str, float]:
    """µs per event of each stage, scoring stages included for scale."""
    scorer = OnnxScorer.from_registry(world.registry, f"{world.model}@champion")
    models = ModelSet(scorer, card_event_model(scorer.card))
    now_ms = int(time.time() * 1000)
    records = [
        RawRecord(
            orjson.dumps({"event_id": f"c{i}", "features": world.rows[i % len(world.rows)]}),
            f"c{i}".encode(),
            "events",
            0,
            i,
            now_ms,
        )
        for i in range(batch)
    ]
    batch_scorer = BatchScorer(world.model)
    out: dict[str, float] = {}
    out["scoring: decode, validate, score, encode"] = _per_event(
        lambda: batch_scorer.process(records, models), batch, repeat
    )
    result = batch_scorer.process(records, models)
    out["owner in another process: encode input (worker)"] = _per_event(
        lambda: scored_records(result), batch, repeat
    )
    raw = scored_records(result)
    out["owner in another process: decode input (owner)"] = _per_event(
        lambda: [_scored_parts(orjson.loads(r)) for r in raw], batch, repeat
    )
    decoded = [p for r in raw for p in _scored_parts(orjson.loads(r))]
    parts = result.scored  # what the owner's own batches bring (in-process)
    settings = load_settings(redis_url=world.redis_url, window_size=100)

    async def measure() -> None:
        async def send(topic: str, payloads: list[bytes]) -> None:
            return None

        name = f"bench-cost-{time.time_ns()}"
        monitor = MonitorRuntime(settings, name, scorer.card, world.redis_url, send)
        await monitor.on_scored(_renamed(parts, "warm"))
        mon = monitor.monitor
        numeric, categorical = monitor._vectors(parts[0])
        out["owner in another process: feature vectors from the input"] = _per_event(
            lambda: [monitor._vectors(p) for p in decoded], batch, repeat
        )
        out["monitoring: feature vectors"] = _per_event(
            lambda: [monitor._vectors(p) for p in parts], batch, repeat
        )
        out["monitoring: drift monitors"] = _per_event(
            lambda: [
                mon.observe_batch(numeric, categorical, p.scores, p.version, p.variant)
                for p in parts
            ],
            batch,
            repeat,
        )
        started = time.perf_counter()
        for k in range(repeat):
            await monitor.on_scored(_renamed(parts, str(k)))
        whole = (time.perf_counter() - started) / repeat / batch * 1e6
        out["monitoring: label-join store (Redis) and bookkeeping"] = max(
            0.0,
            whole - out["monitoring: feature vectors"] - out["monitoring: drift monitors"],
        )
        labels = [(f"{e}-{k}", int(y)) for k in range(repeat) for e, y in _labelled(parts)]
        started = time.perf_counter()
        for i in range(0, len(labels), batch):
            await monitor.on_labels(labels[i : i + batch])
        out["monitoring: labels (join, metrics, window, challenger)"] = (
            (time.perf_counter() - started) / max(1, len(labels)) * 1e6
        )
        keys = [k async for k in monitor.redis.scan_iter(match=f"driftline:*{name}*")]
        if keys:
            await monitor.redis.delete(*keys)
        await monitor.redis.aclose()

    quiet = logging.getLogger("driftline.monitor")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the synthetic stream drifts: its alerts are not news
    try:
        asyncio.run(measure())
    finally:
        quiet.setLevel(level)
    out["monitoring: total per event"] = sum(  # the owner in the worker
        v for k, v in out.items() if k.startswith("monitoring")
    )
    return out


def _labelled(parts: list[Scored]) -> list[tuple[str, int]]:
    return [(e, int(y)) for p in parts for e, y in zip(p.event_ids, p.labels.tolist(), strict=True)]


__all__ = ["monitoring_cost"]
