"""Monitoring scenarios on seeded streams through real workers, Kafka and Redis."""

from __future__ import annotations

import asyncio
import random
import re
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from sklearn.metrics import accuracy_score, f1_score

from models.data import synthetic
from models.workflow import TrainOptions, train
from streams.contracts import names
from streams.local.producer import dataset_events
from tests.conftest import Endpoints
from tests.kit import Deployment, end_offsets
from tests.waiting import wait_until


def _deployment(services: Endpoints, unique: str, root: Path, **monitor: Any) -> Deployment:
    return Deployment.up(
        services,
        unique,
        root,
        monitor={"window": 1000, "min_labels": 200, **monitor},
        DRIFTLINE_CHALLENGER_KIND="off",
    )


def _promote(dep: Deployment, kind: str, **data: Any) -> None:
    ds = synthetic(kind, rows=3000, seed=1, **data)
    result = train(ds, TrainOptions(name=dep.model, estimator="logreg", folds=3, seed=1))
    version = dep.registry.register(result.payload, result.card).version
    dep.registry.promote(dep.model, version)


def _events(
    kind: str, n: int, seed: int, prefix: str, skip: int = 0, **data: Any
) -> tuple[list[dict], list[dict]]:
    """``n`` events (and labels) of the generator, after its first ``skip`` rows."""
    ds = synthetic(kind, rows=n + skip, seed=seed, **data)
    ds = ds.subset(np.arange(skip, n + skip))
    pairs = list(dataset_events(ds, prefix=prefix, entities=300))
    return [e for e, _ in pairs], [{"event_id": e["event_id"], "label": y} for e, y in pairs]


def _alerts(client: redis.Redis, model: str) -> list[dict[str, Any]]:
    entries: Any = client.xrange(names.ALERTS_KEY)
    out = [orjson.loads(f[b"alert"]) for _, f in entries]
    return [a for a in out if a["model"] == model]


def _health(client: redis.Redis, model: str) -> dict[str, Any]:
    raw = client.hget(names.health_key(model), names.HEALTH_FIELD)
    return orjson.loads(raw) if raw else {}


def _settle(
    client: redis.Redis, dep: Deployment, events: int, labels: int, timeout_s: float
) -> dict:
    """The monitors' health once they counted ``events`` and ``labels``: the one of the
    snapshot after the first that did (the alerts of the last window are out by then)."""

    def counts() -> str:
        h = _health(client, dep.model)
        return f"counted {h.get('events')} events, {h.get('labels')} labels\n{dep.log()}"

    counted = wait_until(
        f"the monitors to count {events} events and {labels} labels",
        lambda: (
            (h := _health(client, dep.model)).get("events", 0) >= events
            and h.get("labels", 0) >= labels
            and h
        ),
        timeout_s,
        0.25,
        detail=counts,
    )
    return wait_until(
        "the next monitoring snapshot",
        lambda: (h := _health(client, dep.model)).get("at", 0) > counted["at"] and h,
        30,
        0.1,
    )


def _assignments(dep: Deployment, names: list[str]) -> dict[str, list[list[int]]]:
    return {name: dep.assignments(name) for name in names}


def _scoring_together(dep: Deployment, names: list[str]) -> bool:
    """Whether the workers' scoring loops hold the 4 partitions between them, each some."""
    latest = [dep.assignments(name)[-1:] for name in names]
    if not all(latest):
        return False
    held = [p for (partitions,) in latest for p in partitions]
    return sorted(held) == [0, 1, 2, 3] and all(partitions for (partitions,) in latest)


@pytest.fixture
def client(services: Endpoints) -> Any:
    c = redis.Redis.from_url(services.redis)
    yield c
    c.close()


def test_100k_stationary_events_raise_no_alert(
    services: Endpoints, unique: str, tmp_path: Path, client: redis.Redis
) -> None:
    dep = _deployment(services, unique, tmp_path)
    _promote(dep, "hyperplane")
    # the rows that follow the 3,000 the model was trained on: the same concept (a hyperplane's
    # seed draws its weights, so another seed would be another concept)
    events, labels = _events("hyperplane", 100_000, seed=1, prefix="st", skip=3000)
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", events))
        asyncio.run(dep.produce("labels", labels))
        health = _settle(client, dep, 100_000, 100_000, 240)
        assert worker.poll() is None
    assert health.get("events") == 100_000 and health.get("labels") == 100_000, dep.log()
    assert _alerts(client, dep.model) == []
    print(f"\nstationary: 100000 events and labels, 0 alerts (counts {health['counts']})")


def test_one_feature_shift_alerts_that_feature_only_within_a_bounded_delay(
    services: Endpoints, unique: str, tmp_path: Path, client: redis.Redis
) -> None:
    dep = _deployment(services, unique, tmp_path)
    _promote(dep, "hyperplane")
    normal, _ = _events("hyperplane", 5000, seed=3, prefix="n")
    shifted, _ = _events("hyperplane", 10_000, seed=4, prefix="s")
    for e in shifted:
        e["features"]["x3"] = e["features"]["x3"] + 0.3
    delay = None
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", normal))
        _settle(client, dep, 5000, 0, 60)
        assert _alerts(client, dep.model) == []
        for i in range(0, len(shifted), 250):
            asyncio.run(dep.produce("events", shifted[i : i + 250]))
            _settle(client, dep, 5000 + i + 250, 0, 30)
            if any(a["kind"] == "data_drift" for a in _alerts(client, dep.model)):
                delay = i + 250
                break
        assert worker.poll() is None
    drift = [a for a in _alerts(client, dep.model) if a["kind"] == "data_drift"]
    assert delay is not None and drift, dep.log()
    assert {a["feature"] for a in drift} == {"x3"}
    assert delay <= 3000
    print(f"\nshift of x3 by +0.3: data_drift on x3 after {delay} events ({drift[0]['detector']})")


def test_switch_of_labelling_function_raises_concept_drift(
    services: Endpoints, unique: str, tmp_path: Path, client: redis.Redis
) -> None:
    dep = _deployment(services, unique, tmp_path, fairness_gap_threshold=1.0)
    _promote(dep, "agrawal", concept=5)
    before, before_l = _events("agrawal", 3000, seed=5, prefix="b", concept=5)
    after, after_l = _events("agrawal", 4000, seed=6, prefix="a", concept=2)
    delay = None
    with dep.worker():
        asyncio.run(dep.produce("events", before))
        asyncio.run(dep.produce("labels", before_l))
        _settle(client, dep, 3000, 3000, 60)
        assert not [a for a in _alerts(client, dep.model) if a["kind"] == "concept_drift"]
        asyncio.run(dep.produce("events", after))
        for i in range(0, len(after_l), 250):
            asyncio.run(dep.produce("labels", after_l[i : i + 250]))
            _settle(client, dep, 7000, 3000 + i + 250, 30)
            if any(a["kind"] == "concept_drift" for a in _alerts(client, dep.model)):
                delay = i + 250
                break
    assert delay is not None, dep.log()
    concept = [a for a in _alerts(client, dep.model) if a["kind"] == "concept_drift"]
    detector = concept[0]["detector"]
    print(f"\nlabelling function 5 -> 2: concept_drift ({detector}) after {delay} labels")


def test_a_gap_introduced_for_one_group_raises_a_fairness_alert(
    services: Endpoints, unique: str, tmp_path: Path, client: redis.Redis
) -> None:
    # Agrawal's rule itself depends on age: its natural gaps are high, so the bar is set above
    # them and the test checks that a new gap for one group crosses it.
    dep = _deployment(services, unique, tmp_path, fairness_gap_threshold=0.85)
    _promote(dep, "agrawal")
    events, labels = _events("agrawal", 6000, seed=7, prefix="f")
    young = {e["event_id"] for e in events if e["features"]["age"] < 40}
    with dep.worker():
        asyncio.run(dep.produce("events", events))
        asyncio.run(dep.produce("labels", labels[:3000]))
        _settle(client, dep, 6000, 3000, 60)
        assert not [a for a in _alerts(client, dep.model) if a["kind"] == "fairness"]
        flipped = [
            {**x, "label": 1 - x["label"]} if x["event_id"] in young else x for x in labels[3000:]
        ]
        asyncio.run(dep.produce("labels", flipped))
        _settle(client, dep, 6000, 6000, 60)
    fairness = [a for a in _alerts(client, dep.model) if a["kind"] == "fairness"]
    assert fairness, dep.log()
    assert fairness[0]["feature"] == "age_band"
    print(
        f"\nlabels flipped for age <40: fairness {fairness[0]['detector']}="
        f"{fairness[0]['statistic']:.2f} > {fairness[0]['threshold']}"
    )


def test_late_out_of_order_labels_give_the_offline_metrics(
    services: Endpoints, unique: str, tmp_path: Path, client: redis.Redis
) -> None:
    dep = _deployment(services, unique, tmp_path, fairness_gap_threshold=1.0)
    _promote(dep, "agrawal")
    events, labels = _events("agrawal", 3000, seed=8, prefix="l")
    shuffled = labels[:]
    random.Random(1).shuffle(shuffled)
    with dep.worker() as worker:
        asyncio.run(dep.produce("labels", shuffled[:1000]))  # early
        asyncio.run(dep.produce("events", events))
        preds = asyncio.run(
            dep.collect(
                "predictions",
                3000,
                timeout_s=60,
                worker=worker,
            )
        )
        asyncio.run(dep.produce("labels", shuffled[1000:]))  # late
        health = _settle(client, dep, 3000, 3000, 60)
    truth = {x["event_id"]: x["label"] for x in labels}
    y_true = [truth[p["event_id"]] for p in preds]
    y_pred = [p["label"] for p in preds]
    live = next(iter(health["metrics"].values()))["cumulative"]
    assert live["count"] == 3000
    assert live["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-9)
    assert live["f1"] == pytest.approx(f1_score(y_true, y_pred), abs=1e-9)


def test_two_workers_see_what_one_worker_sees(
    services: Endpoints, unique: str, tmp_path: Path, client: redis.Redis
) -> None:
    reports = []
    events, labels = _events("agrawal", 4000, seed=9, prefix="w")
    for n_workers in (1, 2):
        dep = _deployment(
            services, f"{unique}{n_workers}", tmp_path / str(n_workers), fairness_gap_threshold=1.0
        )
        _promote(dep, "agrawal")
        workers = [dep.worker(f"w{i}") for i in range(n_workers)]
        procs = [w.__enter__() for w in workers]
        try:
            names = [f"w{i}" for i in range(n_workers)]
            wait_until(  # every worker has joined the group before the input flows
                f"{n_workers} worker(s) scoring the 4 partitions between them",
                partial(_scoring_together, dep, names),
                120,
                0.25,
                detail=partial(_assignments, dep, names),
            )
            asyncio.run(dep.produce("events", events))
            asyncio.run(dep.produce("labels", labels))
            reports.append(_settle(client, dep, 4000, 4000, 90))
            assert all(p.poll() is None for p in procs)
        finally:
            for w in workers:
                w.__exit__(None, None, None)
    one, two = reports
    assert one["events"] == two["events"] == 4000
    assert one["labels"] == two["labels"] == 4000
    m1, m2 = (next(iter(r["metrics"].values()))["cumulative"] for r in reports)
    assert m1.keys() == m2.keys()
    for key, value in m1.items():  # sums may be added in another order: equal to rounding
        assert m2[key] == (value if value is None else pytest.approx(value, rel=1e-9)), key


async def _rewind_group(kafka: str, group: str, topic: str) -> dict[int, int]:
    """Commit offset 0 on the 4 partitions of ``topic`` for ``group``; return what the group
    had committed before."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(4)]
        consumer.assign(tps)
        before = {tp.partition: await consumer.committed(tp) for tp in tps}
        await consumer.commit({tp: 0 for tp in tps})
        return {p: o for p, o in before.items() if o is not None}
    finally:
        await consumer.stop()


def test_a_new_owner_reads_on_from_the_snapshot_whatever_the_group_committed(
    services: Endpoints, unique: str, tmp_path: Path, client: redis.Redis
) -> None:
    """The monitors' position in monitor-input is part of their state: a restarted owner
    reads on from the offset in the snapshot, even when the group's committed offsets were
    rewound meanwhile (what a lagging commit or an operator's reset leaves), so nothing it
    counted is counted again."""
    dep = _deployment(services, unique, tmp_path, fairness_gap_threshold=1.0)
    _promote(dep, "agrawal")
    events, labels = _events("agrawal", 3000, seed=10, prefix="r")
    with dep.worker():
        asyncio.run(dep.produce("events", events[:1500]))
        asyncio.run(dep.produce("labels", labels[:1500]))
        first = _settle(client, dep, 1500, 1500, 60)
    state = orjson.loads(client.get(names.state_key(dep.model)) or b"{}")
    assert first["events"] == first["labels"] == 1500, dep.log()
    assert state.get("input_next", 0) > 0, "the snapshot holds the next offset to read"
    group = names.monitors_group(dep.model)
    before = asyncio.run(_rewind_group(dep.services.kafka, group, dep.topics["monitor"]))
    assert list(before.values()) == [state["input_next"]], "the handover committed its offset"
    with dep.worker():
        asyncio.run(dep.produce("events", events[1500:]))
        asyncio.run(dep.produce("labels", labels[1500:]))
        _settle(client, dep, 3000, 3000, 60)
        # A record read twice would be counted twice: wait until the monitors have read their
        # input to its end, then take the health of that snapshot (or a later one).
        (end,) = [
            e for e in asyncio.run(end_offsets(services.kafka, dep.topics["monitor"])).values() if e
        ]
        read = wait_until(
            f"the monitors reading their input to its end ({end})",
            lambda: (
                (st := orjson.loads(client.get(names.state_key(dep.model)) or b"{}"))
                and st.get("input_next") == end
                and st
            ),
            60,
            0.25,
        )
        second = wait_until(
            "the health of that snapshot",
            lambda: (h := _health(client, dep.model)).get("at", 0) >= read["at"] and h,
            30,
            0.1,
        )
    assert second["events"] == 3000 and second["labels"] == 3000, (second, dep.log())
    # label records read again would wait in the join for predictions long joined
    assert second["join"]["joined"] == 3000, second["join"]
    assert second["join"]["pending_labels"] == 0, second["join"]
    log = (dep.root / "worker.log").read_text(errors="replace")
    assert re.search(rf"owner, reading .* from {state['input_next']}\b", log), log[-4000:]
