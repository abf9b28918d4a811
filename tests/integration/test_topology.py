"""Several models on one cluster: ``{model}`` topic names and labels routed by their model.

One worker process serves two models with different features (Agrawal's nine and SEA's
three): each reads its own ``{model}.events`` and writes its own predictions, a bad event of
one never touches the other, and labels share one topic and name their model: a model's
label join holds only its own labels.
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
    with Workers(dep) as workers:
        workers.start("worker", "worker", "--model", credit, "--model", sea)

        def both_ready() -> bool:
            doc = workers.health("worker") or {}
            return bool(doc.get("ready")) and sorted(doc.get("models", {})) == sorted([credit, sea])

        wait_for("both models scoring", both_ready, 120, 0.2, lambda: workers.log("worker"))
        bad = [{"event_id": f"bad{unique}", "features": {"no such feature": 1.0}}]
        for model, events in ((credit, bad + credit_events), (sea, sea_events)):
            asyncio.run(produce(services.kafka, f"{model}.events", events))
        for model, events in ((credit, credit_events), (sea, sea_events)):
            predictions = asyncio.run(
                collect(services.kafka, f"{model}.predictions", len(events), timeout_s=120)
            )
            assert {p["event_id"] for p in predictions} == {e["event_id"] for e in events}, (
                workers.log("worker")
            )
            assert {p["model"] for p in predictions} == {model}
        dead = {m: asyncio.run(end_offsets(services.kafka, f"{m}.dlq")) for m in (credit, sea)}
        # credit's bad event went to credit's dead letters; sea saw nothing of it
        assert (sum(dead[credit].values()), sum(dead[sea].values())) == (1, 0), dead
        metrics = workers.metrics("worker")
        for model in (credit, sea):
            assert f'driftline_predictions_total{{model="{model}"}} {float(N)}' in metrics

        # one labels topic for both; each label names its model. Labels of events that no
        # model scored (for sea) must wait in sea's join only.
        labels = [{"event_id": e["event_id"], "label": 1, "model": credit} for e in credit_events]
        labels += [{"event_id": e["event_id"], "label": 0, "model": [sea]} for e in sea_events]
        orphans = [{"event_id": f"x{unique}-{i}", "label": 1, "model": sea} for i in range(50)]
        asyncio.run(dep.produce("labels", labels + orphans))

        def joined(model: str, n: int) -> bool:
            return asyncio.run(_join_stats(services.redis, model))["joined"] >= n

        log = lambda: workers.log("worker")  # noqa: E731
        wait_for("credit's labels", lambda: joined(credit, N), 120, 0.5, log)
        wait_for("sea's labels", lambda: joined(sea, N), 120, 0.5, log)
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
