"""Several models on one cluster: ``{model}`` topic names and labels routed by their model.

Two models with different features (Agrawal's nine and SEA's three) each read their own
``{model}.events`` and write their own predictions, while labels share one topic and name
their model: a model's label join holds only its own labels.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from models.data import synthetic
from models.workflow import TrainOptions, train
from streams.adapters.kafka_topics import ensure_topics
from streams.adapters.redis_client import async_redis
from streams.adapters.redis_join import RedisLabelJoin
from streams.config.settings import Settings
from streams.config.topics import with_topic_names
from streams.contracts.names import join_prefix
from streams.local.producer import dataset_events
from tests.conftest import Endpoints
from tests.kit import Deployment, Workers, agrawal_events, collect, end_offsets, produce
from tests.waiting import wait_for

PER_MODEL = {
    "DRIFTLINE_TOPIC_EVENTS": "{model}.events",
    "DRIFTLINE_TOPIC_PREDICTIONS": "{model}.predictions",
    "DRIFTLINE_TOPIC_DLQ": "{model}.dlq",
    "DRIFTLINE_TOPIC_MONITOR": "{model}.monitor",
}
N = 300


def _sea_events(n: int, prefix: str) -> list[dict[str, Any]]:
    pairs = dataset_events(synthetic("sea", rows=n, seed=11), prefix=prefix, entities=0)
    return [event for event, _ in pairs]


async def _join_stats(redis_url: str, model: str) -> dict[str, int]:
    client = async_redis(redis_url, None)
    try:
        return await RedisLabelJoin(client, model).stats()
    finally:
        await client.aclose()


def test_two_models_on_their_own_topics_and_labels_reach_only_their_model(
    services: Endpoints, tmp_path: Path
) -> None:
    unique = uuid.uuid4().hex[:8]
    dep = Deployment(services, unique, tmp_path)
    dep.env.update(PER_MODEL, DRIFTLINE_SNAPSHOT_INTERVAL_S="0.5")
    credit, sea = dep.model, f"sea-{unique}"
    planned = with_topic_names(Settings(), dep.env).model_copy(update={"topic_partitions": 4})
    for model in (credit, sea):
        asyncio.run(ensure_topics(services.kafka, planned.for_model(model)))
    dep.registry.promote(credit, dep.add_version("logreg"))
    result = train(synthetic("sea", rows=1500, seed=3), TrainOptions(name=sea, folds=3, seed=3))
    dep.registry.promote(sea, dep.registry.register(result.payload, result.card).version)

    credit_events = agrawal_events(N, prefix=f"c{unique}-")
    sea_events = _sea_events(N, prefix=f"s{unique}-")
    with Workers(dep) as a, Workers(dep, env={"DRIFTLINE_MODEL": sea}) as b:
        a.start("credit")
        b.start("sea")
        a.ready("credit")
        b.ready("sea")
        for model, events in ((credit, credit_events), (sea, sea_events)):
            asyncio.run(produce(services.kafka, f"{model}.events", events))
        for model, events, proc in ((credit, credit_events, a), (sea, sea_events, b)):
            predictions = asyncio.run(
                collect(services.kafka, f"{model}.predictions", len(events), timeout_s=120)
            )
            assert {p["event_id"] for p in predictions} == {e["event_id"] for e in events}, (
                proc.full_log(model.split("-")[0])
            )
            assert {p["model"] for p in predictions} == {model}
            dead = asyncio.run(end_offsets(services.kafka, f"{model}.dlq"))
            assert sum(dead.values()) == 0, f"{model} dead-lettered events of its own topic"

        # one labels topic for both; each label names its model. Labels of events that no
        # model scored (for sea) must wait in sea's join only.
        labels = [{"event_id": e["event_id"], "label": 1, "model": credit} for e in credit_events]
        labels += [{"event_id": e["event_id"], "label": 0, "model": [sea]} for e in sea_events]
        orphans = [{"event_id": f"x{unique}-{i}", "label": 1, "model": sea} for i in range(50)]
        asyncio.run(dep.produce("labels", labels + orphans))

        def joined(model: str, n: int) -> bool:
            return asyncio.run(_join_stats(services.redis, model))["joined"] >= n

        wait_for("credit's labels", lambda: joined(credit, N), 120, 0.5, lambda: a.log("credit"))
        wait_for("sea's labels", lambda: joined(sea, N), 120, 0.5, lambda: b.log("sea"))
        wait_for(
            "sea's orphan labels waiting",
            lambda: asyncio.run(_join_stats(services.redis, sea))["pending_labels"] == 50,
            60,
            0.5,
        )
    credit_join = asyncio.run(_join_stats(services.redis, credit))
    sea_join = asyncio.run(_join_stats(services.redis, sea))
    assert credit_join["joined"] == N and sea_join["joined"] == N
    # the 350 labels meant for sea never entered credit's join
    assert credit_join["pending_labels"] == 0, credit_join
    assert join_prefix(credit) != join_prefix(sea)
