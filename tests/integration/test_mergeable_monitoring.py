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
    assert m1 == m4  # rolling ones too: the labels joined in the same order
    assert one["counts"].keys() == four["counts"].keys()
    assert ("data_drift", "salary") in one_alerts
    assert one_alerts == four_alerts  # the same findings: kinds and features
