"""Monitoring cost by component, in µs per event, measured in-process on real Redis.

The throughput ratio (monitoring on / off) says what monitoring costs the whole path; this
says where. The ``monitoring:`` rows, and their total, are the path of a worker that owns the
model's monitors (the default): the batch's summaries (its feature columns, the scorer's own,
counted on the reference bins, and the detectors' block inputs), the drift monitors observing
them, the label-join store, and the label side (join, label monitors, window, online
challenger). The ``owner in another process:`` rows are what the ``monitor-input`` topic adds
when the monitors run elsewhere: encoding a batch's summaries and join columns, and decoding
them (the transport; the summaries themselves are made either way, ``monitoring: summaries``),
with every event past the feature budget (no features travel: the steady state above
``DRIFTLINE_WINDOW_FEATURES_RATE`` events/s).

Beside them, figures that are parts of a row or another input, not summed into the total:
``scoring: ONNX call alone`` (one ``OnnxScorer.predict_batch`` per batch), ``scoring, half
malformed`` (the same batch with every other record broken, per record: dead letters with
their reasons instead of predictions; :func:`malformed_slowdown` sets it against the clean
batch), and ``monitors alone`` (the model's monitors and the online challenger, in memory,
without the label join).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from bench.world import World
from models.data import synthetic
from models.scorer import OnnxScorer
from monitoring import ModelMonitor
from monitoring.challenger import OnlineChallenger
from streams.config.settings import load_settings
from streams.contracts.messages import card_event_model
from streams.monitors.agents import scored_parts, scored_records
from streams.monitors.runtime import MonitorRuntime
from streams.monitors.summaries import Reduced, make_reducer
from streams.scoring.batch import BatchScorer, ModelSet, RawRecord, Scored


def _per_event(fn: Callable[[], Any], events: int, repeat: int) -> float:
    fn()  # warm
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat / events * 1e6


# Row names of the figures that are not summed into the monitoring total.
ONNX_ALONE = "scoring: ONNX call alone (OnnxScorer.predict_batch)"
CLEAN = "scoring: decode, validate, score, encode"
MALFORMED = "scoring, half malformed (dead letters), per record"
MONITORS_ALONE = "monitors alone: observe_batch + observe_labels"
CHALLENGER_ALONE = "monitors alone: online challenger (logreg), per label"
TRANSPORT = "owner in another process: monitor-input transport (encode + decode)"


def malformed(i: int, row: dict[str, float]) -> bytes:
    """A broken record, of one of the kinds a careless producer sends (``i`` picks which)."""
    features: dict[str, object] = dict(row)
    event = {"event_id": f"bad-{i}", "features": features}
    first = next(iter(row))
    kind = i % 9
    if kind == 0:
        return b"\x00\xff not json at all"
    if kind == 1:
        return orjson.dumps(event)[: 20 + i % 40]  # cut short
    if kind == 2:
        features[first] = "rich"  # a string for a number
    elif kind == 3:
        del features[first]  # a feature missing
    elif kind == 4:
        features["shoe_size"] = 44.0  # a feature the model does not know
    elif kind == 5:
        return orjson.dumps(event).replace(b'"bad-', b'"surprise":true,"event_id":"bad-', 1)
    elif kind == 6:
        return orjson.dumps(event).replace(orjson.dumps(row[first]), b"1e39", 1)  # > float32
    elif kind == 7:
        features[first] = "x" * 100_000  # beyond the worker's size limit
    else:
        return orjson.dumps({"event_id": f"bad-{i}", "features": [[[[1]]]]})  # nested
    return orjson.dumps(event)


def malformed_slowdown(costs: dict[str, float]) -> float:
    """Per record, the batch with half its records broken against the clean batch."""
    return costs[MALFORMED] / costs[CLEAN]


def _renamed(reduced: list[Reduced], tag: str) -> list[Reduced]:
    return [
        Reduced(
            r.summary,
            Scored(
                r.part.variant,
                r.part.version,
                [f"{e}-{tag}" for e in r.part.event_ids],
                r.part.features,
                r.part.labels,
                r.part.scores,
            ),
            r.groups,
            r.slices,
        )
        for r in reduced
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
    out[CLEAN] = _per_event(lambda: batch_scorer.process(records, models), batch, repeat)
    rows = [world.rows[i % len(world.rows)] for i in range(batch)]
    out[ONNX_ALONE] = _per_event(lambda: scorer.predict_batch(rows), batch, repeat)
    mixed = [
        RawRecord(malformed(i, rows[i]), r.key, r.topic, r.partition, r.offset, r.timestamp_ms)
        if i % 2
        else r
        for i, r in enumerate(records)
    ]
    result = batch_scorer.process(mixed, models)
    assert len(result.dead_letters) == batch // 2, "every malformed record is a dead letter"
    out[MALFORMED] = _per_event(lambda: batch_scorer.process(mixed, models), batch, repeat)
    out.update(_monitors_alone(scorer, batch, repeat))
    result = batch_scorer.process(records, models)
    parts = result.scored  # what the owner's own batches bring (in-process)
    settings = load_settings(redis_url=world.redis_url, window_size=100)
    # past the feature budget: no event keeps its features (the steady state at high rates)
    lean = make_reducer(load_settings(window_features_rate=1e-9), scorer.card, None)
    lean.budget.tokens = 0.0
    reduced = lean.reduce(parts)
    out["owner in another process: encode input (worker)"] = _per_event(
        lambda: scored_records(reduced), batch, repeat
    )
    raw = scored_records(reduced)
    out["owner in another process: decode input (owner)"] = _per_event(
        lambda: [scored_parts(orjson.loads(r)) for r in raw], batch, repeat
    )
    out[TRANSPORT] = (
        out["owner in another process: encode input (worker)"]
        + out["owner in another process: decode input (owner)"]
    )

    async def measure() -> None:
        async def send(topic: str, payloads: list[bytes]) -> None:
            return None

        name = f"bench-cost-{time.time_ns()}"
        monitor = MonitorRuntime(settings, name, scorer.card, world.redis_url, send)
        reducer = monitor.reducer
        await monitor.on_scored(_renamed(reducer.reduce(parts), "warm"))
        mon = monitor.monitor
        out["monitoring: summaries (reference bins, detector inputs)"] = _per_event(
            lambda: reducer.reduce(parts), batch, repeat
        )
        mine = reducer.reduce(parts)
        out["monitoring: drift monitors"] = _per_event(
            lambda: [mon.observe_summary(r.summary) for r in mine], batch, repeat
        )
        started = time.perf_counter()
        for k in range(repeat):
            await monitor.on_scored(_renamed(mine, str(k)))
        whole = (time.perf_counter() - started) / repeat / batch * 1e6
        out["monitoring: label-join store (Redis) and bookkeeping"] = max(
            0.0, whole - out["monitoring: drift monitors"]
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


def _monitors_alone(scorer: OnnxScorer, batch: int, repeat: int) -> dict[str, float]:
    """The model's monitors (drift and label monitors) and the online challenger, in memory:
    µs per event of a labelled hyperplane stream in batches of ``batch``, without Redis, the
    label join or the runtime around them."""
    card = scorer.card
    live = synthetic("hyperplane", rows=batch * repeat, seed=1, features=len(card.features))
    num = {n: live.numeric[:, j] for j, n in enumerate(live.numeric_names)}
    labels, proba = scorer.predict_batch(
        [dict(zip(live.numeric_names, r, strict=True)) for r in live.numeric.tolist()]
    )
    scores = proba[:, 1].astype(np.float64)
    y = live.y.astype(np.int64)
    preds = np.asarray(labels, dtype=np.int64)
    slices = [slice(s, s + batch) for s in range(0, len(live), batch)]

    def monitors() -> None:
        mon = ModelMonitor(card)
        for sl in slices:
            part = {n: col[sl] for n, col in num.items()}
            mon.observe_batch(part, {}, scores[sl], "1", "champion")
            mon.observe_labels(y[sl], preds[sl], scores[sl], None, "1", "champion")

    rows = [dict(zip(live.numeric_names, r, strict=True)) for r in live.numeric.tolist()]

    def challenger() -> None:
        learner = OnlineChallenger(card, "logreg")
        for sl in slices:
            learner.learn(rows[sl], y[sl])

    return {
        MONITORS_ALONE: _per_event(monitors, len(live), 1),
        CHALLENGER_ALONE: _per_event(challenger, len(live), 1),
    }


def _labelled(parts: list[Scored]) -> list[tuple[str, int]]:
    return [(e, int(y)) for p in parts for e, y in zip(p.event_ids, p.labels.tolist(), strict=True)]


__all__ = [
    "CHALLENGER_ALONE",
    "CLEAN",
    "MALFORMED",
    "MONITORS_ALONE",
    "ONNX_ALONE",
    "TRANSPORT",
    "malformed",
    "malformed_slowdown",
    "monitoring_cost",
]
