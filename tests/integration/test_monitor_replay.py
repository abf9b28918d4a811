"""A crashed owner's successor replays monitor-input from the snapshot: each join step once.

The owner of a model's monitors observes a scored batch (record 0), snapshots (the next record
to read: 1), then joins the batch's labels (record 1) and dies before its next snapshot. Its
successor loads the snapshot and replays record 1 against a label join that already matched
those labels: the join answers the step as it did the first time, so the successor's label
metrics equal those of an owner that never crashed. (Replayed without its step, the labels
would find their predictions gone and wait in the join until they expired.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from models.data import synthetic
from models.registry import Registry
from models.scorer import OnnxScorer
from models.workflow import TrainOptions, train
from streams.config.settings import load_settings
from streams.local.producer import dataset_events
from streams.monitors.runtime import MonitorRuntime
from streams.scoring.batch import Scored
from tests.conftest import Endpoints


async def _nothing(topic: str, payloads: list[bytes]) -> None:
    return None


def test_a_replayed_label_record_joins_as_it_did_before_the_crash(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    registry = Registry(tmp_path / "registry")
    models = {"crash": f"crash-{unique}", "calm": f"calm-{unique}"}
    result = train(synthetic("agrawal", rows=1500, seed=4), TrainOptions(name="x", folds=3))
    for name in models.values():
        card = result.card.model_copy(update={"name": name})
        registry.promote(name, registry.register(result.payload, card).version)
    settings = load_settings(registry=registry.root)
    pairs = list(dataset_events(synthetic("agrawal", rows=400, seed=8), prefix="e", entities=0))
    rows = [event["features"] for event, _ in pairs]
    ids = [event["event_id"] for event, _ in pairs]
    labels = [(event_id, int(y)) for event_id, (_, y) in zip(ids, pairs, strict=True)]

    def runtime(model: str) -> MonitorRuntime:
        card = registry.card(f"{model}@champion")
        return MonitorRuntime(settings, model, card, services.redis, _nothing)

    async def scored(model: str) -> list[Scored]:
        scorer = OnnxScorer.from_registry(registry, f"{model}@champion")
        predicted, proba = scorer.predict_batch(rows)
        return [Scored("champion", scorer.version, ids, rows, predicted, proba[:, 1])]

    async def run() -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
        calm = runtime(models["calm"])  # no crash: each record once
        await calm.take_ownership()
        await calm.on_scored(calm.reducer.reduce(await scored(models["calm"])), "input:0")
        await calm.on_labels(labels, "input:1")
        expected = calm.monitor.health()
        await calm.close()

        owner = runtime(models["crash"])
        await owner.take_ownership()
        await owner.on_scored(owner.reducer.reduce(await scored(models["crash"])), "input:0")
        owner.input_next = 1
        await owner.tick(force=True)  # the snapshot: record 1 is next
        await owner.on_labels(labels, "input:1")
        assert owner.monitor.labels == len(labels)
        await owner.redis.aclose()  # dies: no snapshot of the labels

        successor = runtime(models["crash"])
        await successor.start()
        await successor.take_ownership()
        assert successor.input_next == 1 and successor.monitor.labels == 0
        await successor.on_labels(labels, "input:1")  # the replay of record 1
        got = successor.monitor.health()
        join = await successor.join.stats()
        await successor.close()
        return expected, got, join

    expected, got, join = asyncio.run(run())
    assert got["labels"] == expected["labels"] == len(labels)
    assert got["metrics"] == expected["metrics"]
    assert join["pending_labels"] == 0, "no replayed label waits for a prediction"
