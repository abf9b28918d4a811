"""The closed loop on a real broker and Redis: drift → retrain → gates → shadow → promote,
a refused candidate, an automatic rollback, and a retrainer killed mid-training."""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.data import synthetic
from models.history import History
from models.workflow import TrainOptions, train
from streams.adapters.redis_client import sync_redis
from streams.contracts import names
from streams.contracts.messages import RetrainRequest
from streams.local.producer import dataset_events
from tests.conftest import Endpoints
from tests.kit import Deployment, nothing_pending
from tests.waiting import poll, wait_until


@pytest.fixture
def deployment(services: Endpoints, unique: str, tmp_path: Path) -> Deployment:
    return _deployment(services, unique, tmp_path)


def _deployment(services: Endpoints, unique: str, tmp_path: Path) -> Deployment:
    return Deployment.up(
        services,
        unique,
        tmp_path,
        monitor={"window": 500, "min_labels": 300},
        DRIFTLINE_WORKER_ID=f"w-{unique}",
        DRIFTLINE_WINDOW_SIZE="1500",
        DRIFTLINE_RETRAIN_MIN_ROWS="600",
        DRIFTLINE_RETRAIN_POLICY=orjson.dumps({"min_interval_s": 20}).decode(),
        DRIFTLINE_SEQUENTIAL=orjson.dumps({"min_pairs": 200}).decode(),
        DRIFTLINE_STAGE_INTERVAL_S="0.5",
        DRIFTLINE_WATCH_S="60",
        DRIFTLINE_ROLLBACK_MIN_LABELS="200",
        # Agrawal's label rules depend on age: its gaps between age bands are in the data.
        DRIFTLINE_GATES=orjson.dumps({"max_dp_gap": None, "max_eo_gap": None}).decode(),
    )


def _register(dep: Deployment, concept: int, seed: int, promote: bool = True) -> str:
    ds = synthetic("agrawal", rows=3000, seed=seed, concept=concept)
    result = train(ds, TrainOptions(name=dep.model, estimator="rf", folds=3, seed=seed))
    version = dep.registry.register(result.payload, result.card).version
    if promote:
        dep.registry.promote(dep.model, version)
    return version


def _stream(n: int, *, concept: int, seed: int, prefix: str) -> tuple[list[dict], list[dict]]:
    ds = synthetic("agrawal", rows=n, seed=seed, concept=concept)
    pairs = list(dataset_events(ds, prefix=prefix, entities=500))
    events = [e for e, _ in pairs]
    labels = [{"event_id": e["event_id"], "label": y} for e, y in pairs]
    return events, labels


def _history(dep: Deployment) -> list[dict[str, Any]]:
    return History(dep.registry.root).read(dep.model)


def _kinds(dep: Deployment) -> list[str]:
    return [h["kind"] for h in _history(dep)]


def _live_labels(dep: Deployment, version: str) -> int:
    """Labels the monitors joined for ``version`` as champion, as the retrainer reads them."""
    client = sync_redis(dep.services.redis, None)
    try:
        raw = client.hget(names.health_key(dep.model), names.HEALTH_FIELD)
    finally:
        client.close()
    scope = (orjson.loads(raw) if raw else {}).get("metrics", {}).get(f"{version}/champion", {})
    has_accuracy = scope.get("rolling", {}).get("accuracy") is not None
    return int(scope.get("labels") or 0) if has_accuracy else 0


def _seen_champion(dep: Deployment) -> str | None:
    """The champion the retrainer saw at its last step (it notices a promotion by it)."""
    client = sync_redis(dep.services.redis, None)
    try:
        raw = client.get(names.champion_seen_key(dep.model))
    finally:
        client.close()
    return raw.decode() if isinstance(raw, bytes) else raw


def _accuracy(preds: list[dict], truth: dict[str, int], ids: set[str]) -> float:
    champion = {p["event_id"]: p["label"] for p in preds if p["variant"] == "champion"}
    scored = [champion[i] == truth[i] for i in ids if i in champion]
    return sum(scored) / len(scored)


def _feed(dep: Deployment, events: list[dict], labels: list[dict]) -> None:
    asyncio.run(dep.produce("events", events))
    asyncio.run(dep.produce("labels", labels))


def test_concept_drift_is_retrained_shadow_tested_and_promoted(deployment: Deployment) -> None:
    _closed_loop(deployment)


def test_the_loop_runs_on_a_redis_cluster_named_by_one_node(
    services: Endpoints, redis_cluster: str, unique: str, tmp_path: Path
) -> None:
    """Worker, monitors, alerts and retrainer given one node's URL of a Redis Cluster, and
    nothing else: the same loop, to a promotion."""
    _closed_loop(
        _deployment(Endpoints(kafka=services.kafka, redis=redis_cluster), unique, tmp_path)
    )


def _closed_loop(dep: Deployment) -> None:
    v1 = _register(dep, concept=5, seed=1)
    truth: dict[str, int] = {}
    sent: list[str] = []
    started = time.monotonic()
    with dep.worker() as worker, dep.worker("retrainer", command="retrainer"):
        pre_e, pre_l = _stream(2000, concept=5, seed=2, prefix="pre")
        _feed(dep, pre_e, pre_l)
        drift_at = time.monotonic()
        promoted_at = None
        post_ids: set[str] = set()
        truth.update({x["event_id"]: x["label"] for x in pre_l})
        for chunk in range(60):  # about 500 labelled events a second, for up to two minutes
            ev, lab = _stream(500, concept=2, seed=100 + chunk, prefix=f"post{chunk}")
            _feed(dep, ev, lab)
            truth.update({x["event_id"]: x["label"] for x in lab})
            post_ids |= {e["event_id"] for e in ev}
            sent += [e["event_id"] for e in ev]
            time.sleep(1.0)
            if dep.registry.aliases(dep.model)["champion"].version != v1:
                promoted_at = time.monotonic()
                break
        assert promoted_at is not None, f"{_kinds(dep)}\n{dep.log('retrainer')}"
        after_e, after_l = _stream(2000, concept=2, seed=999, prefix="after")
        _feed(dep, after_e, after_l)
        truth.update({x["event_id"]: x["label"] for x in after_l})
        total = len(pre_e) + len(sent) + len(after_e)
        preds = asyncio.run(  # shadow predictions count too: read until every event is scored
            dep.collect(
                "predictions",
                total,
                timeout_s=120,
                worker=worker,
                complete=dep.scored_all,
            )
        )
    champion_ids = {p["event_id"] for p in preds if p["variant"] == "champion"}
    expected = {e["event_id"] for e in pre_e + after_e} | set(sent)
    assert expected <= champion_ids, "no event unscored during the switch"
    kinds = _kinds(dep)
    for step in ("request", "gates", "stage", "test", "promote"):
        assert step in kinds, kinds
    assert kinds.index("request") < kinds.index("gates") < kinds.index("promote")
    before = _accuracy(preds, truth, {e["event_id"] for e in pre_e})
    during = _accuracy(preds, truth, post_ids)
    after = _accuracy(preds, truth, {e["event_id"] for e in after_e})
    print(
        f"\naccuracy before drift {before:.3f}, after drift {during:.3f}, after promotion "
        f"{after:.3f}; drift to promotion {promoted_at - drift_at:.1f}s "
        f"(whole test {time.monotonic() - started:.0f}s)"
    )
    assert during < before - 0.05, "the stream really drifted"
    assert after >= before - 0.03


@pytest.mark.parametrize("where", ["retrainer", "in-worker"])
def test_a_candidate_failing_a_gate_is_refused_and_named(
    deployment: Deployment, where: str
) -> None:
    dep = deployment
    dep.env["DRIFTLINE_GATES"] = orjson.dumps({"max_dp_gap": 0.0001}).decode()
    v1 = _register(dep, concept=5, seed=1)
    if where == "in-worker":
        dep.env["DRIFTLINE_RETRAINER_IN_WORKER"] = "true"
    apart = dep.worker("retrainer", command="retrainer") if where == "retrainer" else nullcontext()
    with dep.worker() as worker, apart:
        ev, lab = _stream(1200, concept=5, seed=3, prefix="g")
        _feed(dep, ev, lab)
        asyncio.run(
            dep.collect(
                "predictions",
                1200,
                timeout_s=60,
                worker=worker,
            )
        )
        wait_until("1200 events in the window", lambda: _window_len(dep) >= 1200, 30, 0.5)
        request = RetrainRequest(
            request_id="forced-1", model=dep.model, version=v1, reason="test: forced"
        )
        asyncio.run(dep.produce("retrain", [request.model_dump(mode="json")]))
        rejected = wait_until(
            "the candidate's rejection",
            lambda: [h for h in _history(dep) if h["kind"] == "reject"],
            90,
            0.5,
            detail=lambda: f"{_kinds(dep)}\n{dep.log('retrainer')}",
        )
        assert worker.poll() is None
    assert "fairness" in rejected[0]["reason"]
    assert dep.registry.aliases(dep.model)["champion"].version == v1
    assert "challenger" not in dep.registry.aliases(dep.model)
    wait_until(
        "the rejection announced on the updates topic",
        lambda: any(u["action"] == "reject" and "fairness" in u["reason"] for u in _updates(dep)),
        30,
        0.5,
        detail=lambda: _updates(dep),
    )


def _updates(dep: Deployment) -> list[dict[str, Any]]:
    """Every model update announced so far."""
    return asyncio.run(dep.collect("updates", 0, timeout_s=30, complete=nothing_pending))


def _window_len(dep: Deployment) -> int:
    client = sync_redis(dep.services.redis, None)
    try:
        return int(client.xlen(names.window_key(dep.model)))
    finally:
        client.close()


def test_a_promoted_version_that_performs_worse_is_rolled_back(deployment: Deployment) -> None:
    dep = deployment
    good = _register(dep, concept=5, seed=1)
    bad = _register(dep, concept=2, seed=4, promote=False)  # another concept: poor on live data
    with dep.worker() as worker, dep.worker("retrainer", command="retrainer"):
        ev, lab = _stream(1500, concept=5, seed=5, prefix="a")
        _feed(dep, ev, lab)
        asyncio.run(
            dep.collect(
                "predictions",
                1500,
                timeout_s=60,
                worker=worker,
            )
        )
        wait_until(  # the good champion's live accuracy reaches Redis: the rollback's bar
            "the good champion's live accuracy over its 1500 labels",
            lambda: _live_labels(dep, good) >= 1500,
            60,
            0.25,
            detail=dep.log,
        )
        # A promotion is a change from the champion the retrainer saw: on a slow start its
        # first step could otherwise come after the promotion and see nothing change.
        wait_until(
            "the retrainer to step with the good champion",
            lambda: _seen_champion(dep) == good,
            60,
            0.25,
            detail=lambda: dep.log("retrainer"),
        )
        dep.registry.promote(dep.model, bad)
        wait_until(
            "the promotion staged",
            lambda: "stage" in _kinds(dep),
            20,
            0.5,
            detail=lambda: dep.log("retrainer"),
        )
        for chunk in range(8):  # more evidence until the retrainer rolls back (or 8 chunks)
            ev, lab = _stream(400, concept=5, seed=50 + chunk, prefix=f"b{chunk}")
            _feed(dep, ev, lab)
            if poll(lambda: "rollback" in _kinds(dep), 3, 0.5):
                break
    rollback = [h for h in _history(dep) if h["kind"] == "rollback"]
    assert rollback, f"{_kinds(dep)}\n{dep.log('retrainer')}"
    assert rollback[0]["restored"] == good
    assert dep.registry.aliases(dep.model)["champion"].version == good


def test_a_retrainer_killed_mid_training_retries_the_request(deployment: Deployment) -> None:
    dep = deployment
    v1 = _register(dep, concept=5, seed=1)
    dep.env["DRIFTLINE_WINDOW_SIZE"] = "5000"
    with dep.worker() as worker:
        ev, lab = _stream(4000, concept=5, seed=6, prefix="k")
        _feed(dep, ev, lab)
        asyncio.run(
            dep.collect(
                "predictions",
                4000,
                timeout_s=90,
                worker=worker,
            )
        )
        wait_until("4000 events in the window", lambda: _window_len(dep) >= 4000, 30, 0.5)
        request = RetrainRequest(
            request_id="crash-1", model=dep.model, version=v1, reason="test: crash"
        )
        with dep.worker("retrainer-1", command="retrainer") as first:
            asyncio.run(dep.produce("retrain", [request.model_dump(mode="json")]))
            wait_until(
                "the retrainer taking the request",
                lambda: "request" in _kinds(dep),
                60,
                0.05,
                detail=lambda: dep.log("retrainer-1"),
            )
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert "gates" not in _kinds(dep), "killed before the gates"
        with dep.worker("retrainer-2", command="retrainer"):
            wait_until(
                "the retried request through the gates",
                lambda: [
                    h
                    for h in _history(dep)
                    if h["kind"] == "gates" and h.get("request_id") == "crash-1"
                ],
                120,
                0.5,
                detail=lambda: f"{_kinds(dep)}\n{dep.log('retrainer-2')}",
            )
    requests = [h for h in _history(dep) if h["kind"] == "request"]
    assert [r["request_id"] for r in requests] == ["crash-1", "crash-1"], "retried, not lost"
