"""One worker or four: the same stream gives the same monitoring (real Kafka and Redis).

The same 8,000 events (a model with numeric and categorical features and a sensitive
attribute; ``salary`` shifts halfway) are scored once by one worker and once by four, each
of the four scoring its own share (a partition's) in batches of 256 and sending what it
scored as monitor-input records: summaries and the label join's columns, no features but the
retraining sample. The owner of each model's monitors consumes its topic with the real
consumer (:class:`streams.monitors.input.MonitorInput`), joins the labels in Redis, and its
counts and label metrics must be identical, its findings of the same kinds and features.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from models.data import synthetic
from models.registry import Registry
from models.scorer import OnnxScorer
from models.workflow import TrainOptions, train
from streams.adapters.kafka_topics import create_topics
from streams.config.settings import Settings, load_settings
from streams.contracts.messages import card_event_model
from streams.local.producer import dataset_events
from streams.monitors.agents import MonitorFeed, record_observer
from streams.monitors.input import MonitorInput
from streams.monitors.runtime import MonitorRuntime
from streams.monitors.summaries import make_reducer
from streams.scoring.batch import BatchScorer, ModelSet, RawRecord
from tests.conftest import Endpoints

EVENTS = 8_000
BATCH = 256


def _events() -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    pairs = list(dataset_events(synthetic("agrawal", rows=EVENTS, seed=8), prefix="e", entities=0))
    events = [event for event, _ in pairs]
    for event in events[EVENTS // 2 :]:
        event["features"]["salary"] = event["features"]["salary"] * 1.5 + 20_000
    labels = [(event["event_id"], int(y)) for event, y in pairs]
    return events, labels


async def _run(
    settings: Settings,
    registry: Registry,
    model: str,
    workers: int,
    events: list[dict[str, Any]],
    labels: list[tuple[str, int]],
    bootstrap: str,
) -> tuple[dict[str, Any], set[tuple[str, str | None]]]:
    """Score ``events`` with ``workers`` workers; return the owner's health and the
    (kind, feature) of every alert it sent."""
    topic = settings.topic_monitor
    await create_topics(bootstrap, [topic], partitions=4)
    card = registry.card(f"{model}@champion")
    scorer = OnnxScorer.from_registry(registry, f"{model}@champion")
    models = ModelSet(scorer, card_event_model(card))
    feeds = [MonitorFeed(model, None, make_reducer(settings, card, None)) for _ in range(workers)]
    shares = [[e for i, e in enumerate(events) if i % workers == w] for w in range(workers)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        rounds = max(len(s) for s in shares) // BATCH + 1
        for r in range(rounds):
            order = range(workers) if r % 2 == 0 else reversed(range(workers))
            for w in order:  # the partitions' batches arrive interleaved, in varying order
                batch = shares[w][r * BATCH : (r + 1) * BATCH]
                if not batch:
                    continue
                raw = [
                    RawRecord(orjson.dumps(e), b"k", "events", w, r * BATCH + i, 1)
                    for i, e in enumerate(batch)
                ]
                result = BatchScorer(model).process(raw, models)
                for key, value in feeds[w].route(result):
                    await producer.send_and_wait(topic, value, key=key)
        key = model.encode()
        for s in range(0, len(labels), 500):  # as the label forwarder sends them
            items = labels[s : s + 500]
            await producer.send_and_wait(
                topic, orjson.dumps({"kind": "labels", "items": items}), key=key
            )
    finally:
        await producer.stop()

    alerts: set[tuple[str, str | None]] = set()

    async def send(to: str, payloads: list[bytes]) -> None:
        if to == settings.topic_alerts:
            for p in payloads:
                alert = orjson.loads(p)
                alerts.add((alert["kind"], alert.get("feature")))

    owner = MonitorRuntime(settings, model, card, settings.redis_url, send)
    reader = MonitorInput(settings, bootstrap, owner, record_observer(owner))
    task = asyncio.create_task(reader.run())
    deadline = time.monotonic() + 120
    expected_labels = len(labels)
    while owner.monitor.labels < expected_labels or owner.monitor.events < len(events):
        assert time.monotonic() < deadline, (
            f"the owner saw {owner.monitor.events} events and {owner.monitor.labels} labels"
        )
        assert not task.done(), task.exception()
        await asyncio.sleep(0.2)
    health = owner.health()
    await reader.stop()
    await task
    await owner.close()
    return health, alerts


def test_one_worker_and_four_give_the_same_monitoring(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    registry = Registry(tmp_path / "registry")
    result = train(synthetic("agrawal", rows=3000, seed=4), TrainOptions(name="x", folds=3))
    events, labels = _events()
    names = {1: f"one-{unique}", 4: f"four-{unique}"}
    for name in names.values():
        card = result.card.model_copy(update={"name": name})
        registry.promote(name, registry.register(result.payload, card).version)

    def settings(workers: int) -> Settings:
        return load_settings(
            registry=registry.root,
            kafka_bootstrap=services.kafka,
            redis_url=services.redis,
            topic_monitor=f"monitor-input-{workers}-{unique}",
            topic_alerts=f"drift-alerts-{unique}",
        )

    async def both() -> dict[int, tuple[dict[str, Any], set[tuple[str, str | None]]]]:
        return {
            k: await _run(settings(k), registry, names[k], k, events, labels, services.kafka)
            for k in (1, 4)
        }

    got = asyncio.run(both())
    (one, one_alerts), (four, four_alerts) = got[1], got[4]
    assert one["events"] == four["events"] == EVENTS
    assert one["labels"] == four["labels"] == EVENTS
    assert one["ungrouped"] == four["ungrouped"]
    assert one["scopes"] == four["scopes"]
    version = registry.card(f"{names[1]}@champion").version
    m1, m4 = one["metrics"][f"{version}/champion"], four["metrics"][f"{version}/champion"]
    assert m1["labels"] == m4["labels"] == EVENTS
    assert m1["cumulative"] == m4["cumulative"]  # label metrics are counts: identical
    e1, e4 = m1.pop("estimated"), m4.pop("estimated")
    assert m1 == m4  # rolling ones too: the labels joined in the same order
    # The estimate's window is whole blocks: four workers' merged blocks hold other events
    # than one worker's; the figures agree within what that moves.
    assert min(e1["events"], e4["events"]) >= 2000
    for name in ("accuracy", "precision", "recall", "f1"):
        assert e1[name]["value"] == pytest.approx(e4[name]["value"], abs=0.02), name
    assert one["counts"].keys() == four["counts"].keys()
    assert ("data_drift", "salary") in one_alerts
    assert one_alerts == four_alerts  # the same findings: kinds and features


async def _nothing(topic: str, payloads: list[bytes]) -> None:
    return None


def test_a_successor_replays_summary_and_label_records_once_each(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    """The owner snapshots before two summary records and a label record, observes them and
    dies; its successor replays all three from the snapshot's offset: the same events, labels
    and metrics as an owner that never crashed (each summary applied once to the snapshot's
    state, each join step answered as the first time)."""
    registry = Registry(tmp_path / "registry")
    result = train(synthetic("agrawal", rows=1500, seed=4), TrainOptions(name="x", folds=3))
    models = {"calm": f"calm-{unique}", "crash": f"crash-{unique}"}
    for name in models.values():
        card = result.card.model_copy(update={"name": name})
        registry.promote(name, registry.register(result.payload, card).version)
    settings = load_settings(registry=registry.root, redis_url=services.redis)
    events, labels = _events()
    events, labels = events[:600], labels[:600]

    def records(model: str) -> list[bytes]:
        card = registry.card(f"{model}@champion")
        scorer = OnnxScorer.from_registry(registry, f"{model}@champion")
        feed = MonitorFeed(model, None, make_reducer(settings, card, None))
        out: list[bytes] = []
        for s in (0, 300):
            raw = [
                RawRecord(orjson.dumps(e), b"k", "events", 0, s + i, 1)
                for i, e in enumerate(events[s : s + 300])
            ]
            batch = BatchScorer(model).process(raw, ModelSet(scorer, card_event_model(card)))
            out += [value for _, value in feed.route(batch)]
        return [*out, orjson.dumps({"kind": "labels", "items": labels})]

    async def feed(runtime: MonitorRuntime, values: list[bytes], first: int) -> None:
        observe = record_observer(runtime)
        for offset, value in enumerate(values, start=first):
            await observe(value, offset + 1)

    def runtime(model: str) -> MonitorRuntime:
        card = registry.card(f"{model}@champion")
        return MonitorRuntime(settings, model, card, services.redis, _nothing)

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        calm = runtime(models["calm"])
        await calm.take_ownership()
        calm.owned = True
        await feed(calm, records(models["calm"]), 0)
        expected = calm.monitor.health()
        await calm.close()

        owner = runtime(models["crash"])
        await owner.take_ownership()
        owner.owned = True
        values = records(models["crash"])
        await feed(owner, values[:1], 0)
        await owner.tick(force=True)  # the snapshot: record 1 is next
        await feed(owner, values[1:], 1)
        assert owner.monitor.labels == len(labels)
        await owner.redis.aclose()  # dies: nothing after the snapshot is saved

        successor = runtime(models["crash"])
        await successor.start()
        await successor.take_ownership()
        successor.owned = True
        assert successor.input_next == 1 and successor.monitor.events == 300
        await feed(successor, values[1:], 1)  # the replay
        got = successor.monitor.health()
        await successor.close()
        return expected, got

    expected, got = asyncio.run(run())
    assert got["events"] == expected["events"] == 600
    assert got["labels"] == expected["labels"] == 600
    assert got["scopes"] == expected["scopes"]
    assert got["metrics"] == expected["metrics"]
    assert got["counts"] == expected["counts"]
