"""The scoring worker on a real broker: volume, dead letters, hot swap, canary, crash."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest

from streams.contracts.messages import DeadLetter, ModelUpdate, Prediction
from streams.scoring.routing import Routing, save_routing
from tests.conftest import Endpoints
from tests.kit import Deployment, agrawal_events, nothing_pending


@pytest.fixture
def deployment(services: Endpoints, unique: str, tmp_path: Path) -> Deployment:
    return Deployment.up(services, unique, tmp_path)


def _by_event(preds: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for p in preds:
        out[p["event_id"]].append(p)
    return out


def test_ten_thousand_events_each_predicted_once_by_the_champion(deployment: Deployment) -> None:
    dep = deployment
    version = dep.add_version()
    dep.registry.promote(dep.model, version)
    events = agrawal_events(10_000, prefix="vol", entities=500)
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", events))
        preds = asyncio.run(
            dep.collect(
                "predictions",
                10_000,
                timeout_s=120,
                worker=worker,
                complete=dep.scored_all,  # duplicates, if any, are in
            )
        )
    assert len(preds) == 10_000, dep.log()
    for p in preds[:50]:
        Prediction.model_validate({k: v for k, v in p.items() if not k.startswith("_")})
    ids = Counter(p["event_id"] for p in preds)
    assert set(ids) == {e["event_id"] for e in events}
    assert max(ids.values()) == 1, "exactly once per variant"
    assert {(p["model"], p["version"], p["variant"]) for p in preds} == {
        (dep.model, version, "champion")
    }
    # every event was committed, after its dead letter (if any) was acknowledged
    dead = asyncio.run(dep.collect("dlq", 0, timeout_s=30, complete=nothing_pending))
    assert dead == []


def test_malformed_events_go_to_the_dlq_with_reasons_and_the_rest_is_scored(
    deployment: Deployment,
) -> None:
    dep = deployment
    dep.registry.promote(dep.model, dep.add_version())
    good = agrawal_events(40, prefix="ok")
    template = good[0]["features"]
    bad: list[bytes] = [
        b"\x00\xff random bytes",
        b'{"event_id": "t1", "features": {"salary": 1',
        orjson.dumps({"event_id": "w1", "features": {**template, "salary": "rich"}}),
        b'{"event_id": "n1", "features": {"salary": NaN}}',
        orjson.dumps({"event_id": "h1", "features": {**template, "salary": 1.5}}).replace(
            b"1.5", b"9" * 400
        ),
        orjson.dumps({"event_id": "u1", "features": {**template, "shoe_size": 44}}),
        orjson.dumps(
            {"event_id": "m1", "features": {k: v for k, v in template.items() if k != "age"}}
        ),
        orjson.dumps({"event_id": "d1", "features": {**template, "salary": [[[[1]]]]}}),
        orjson.dumps({"event_id": "big", "features": {**template, "car": "x" * 1_000_000}}),
        orjson.dumps({"event_id": "x1", "features": template, "surprise": True}),
        b"[]",
    ]
    mixed: list[bytes | dict] = []
    for i, raw in enumerate(bad):
        mixed += [good[2 * i], raw, good[2 * i + 1]]
    nulls = {**good[-1], "event_id": "null-ok", "features": {**template, "salary": None}}
    mixed.append(nulls)
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", mixed))
        preds = asyncio.run(
            dep.collect(
                "predictions",
                2 * len(bad) + 1,
                timeout_s=90,
                worker=worker,
                complete=dep.scored_all,  # a malformed event predicted would be in
            )
        )
        dead = asyncio.run(  # the worker committed every event: its dead letters are all in
            dep.collect(
                "dlq",
                len(bad),
                timeout_s=30,
                worker=worker,
                complete=nothing_pending,
            )
        )
        assert worker.poll() is None, "the worker survives hostile input"
    predicted = {p["event_id"] for p in preds}
    assert predicted == {e["event_id"] for e in good[: 2 * len(bad)]} | {"null-ok"}, dep.log()
    letters = [
        DeadLetter.model_validate({k: v for k, v in d.items() if not k.startswith("_")})
        for d in dead
    ]
    assert len(letters) == len(bad)
    assert all(d.topic == dep.topics["events"] and d.error for d in letters)
    kinds = Counter(d.error_type for d in letters)
    assert kinds["OversizedEvent"] == 1
    assert kinds["JSONDecodeError"] >= 2
    assert kinds["FeatureError"] >= 5
    reasons = " | ".join(d.error for d in letters)
    for needle in ("shoe_size", "features.age", "send null", "valid number", "exceeds"):
        assert needle in reasons


def test_promotion_mid_stream_loses_nothing_and_switches_between_batches(
    deployment: Deployment,
) -> None:
    dep = deployment
    v1 = dep.add_version("logreg", seed=1)
    v2 = dep.add_version("rf", seed=2)
    dep.registry.promote(dep.model, v1)
    events = agrawal_events(12_000, prefix="swap", entities=800)
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", events[:2000]))
        asyncio.run(
            dep.collect(
                "predictions",
                2000,
                timeout_s=90,
                worker=worker,
            )
        )

        async def stream_and_promote() -> None:
            sending = asyncio.create_task(dep.produce("events", events[2000:], rate=4000))
            # mid-stream: once v1 has scored a thousand of the streamed events
            scored = await dep.collect("predictions", 3000, timeout_s=90, worker=worker)
            assert len(scored) >= 3000, dep.log()
            dep.registry.promote(dep.model, v2)
            update = ModelUpdate(model=dep.model, action="promote", version=v2, alias="champion")
            # keyed by the model, as Driftline announces it: the topic is compacted by model
            keyed = (dep.model.encode(), orjson.dumps(update.model_dump(mode="json")))
            await dep.produce("updates", [keyed])
            await sending

        asyncio.run(stream_and_promote())
        preds = asyncio.run(
            dep.collect(
                "predictions",
                12_000,
                timeout_s=120,
                worker=worker,
                complete=dep.scored_all,  # a late v1 prediction would be in
            )
        )
    assert set(_by_event(preds)) == {e["event_id"] for e in events}, "zero events lost"
    versions = Counter(p["version"] for p in preds)
    assert versions[v1] > 2000 and versions[v2] > 0, versions
    per_partition: dict[int, list[str]] = defaultdict(list)
    for p in sorted(preds, key=lambda p: (p["_partition"], p["_offset"])):
        per_partition[p["_partition"]].append(p["version"])
    for partition, seq in per_partition.items():
        switch = seq.index(v2) if v2 in seq else len(seq)
        assert set(seq[switch:]) <= {v2}, f"partition {partition} went back to {v1} after the swap"
    assert "swap" in dep.log()


def test_canary_of_ten_percent_is_sticky_per_entity(deployment: Deployment) -> None:
    dep = deployment
    v1, v2 = dep.add_version("logreg", seed=1), dep.add_version("logreg", seed=3)
    dep.registry.promote(dep.model, v1)
    dep.registry.promote(dep.model, v2, alias="challenger")
    save_routing(dep.registry, dep.model, Routing(mode="canary", percent=10))
    first = agrawal_events(20_000, prefix="c", entities=20_000)
    repeat = [{**e, "event_id": f"r{e['event_id']}"} for e in first[::10]]
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", first + repeat))
        preds = asyncio.run(
            dep.collect(
                "predictions",
                len(first) + len(repeat),
                timeout_s=150,
                worker=worker,
                complete=dep.scored_all,
            )
        )
    variant = {p["event_id"]: p["variant"] for p in preds}
    assert len(variant) == len(first) + len(repeat), dep.log()
    share = sum(variant[e["event_id"]] == "canary" for e in first) / len(first)
    assert 0.085 <= share <= 0.115, share
    assert all(variant[r["event_id"]] == variant[r["event_id"][1:]] for r in repeat)
    assert {p["version"] for p in preds if p["variant"] == "canary"} == {v2}
    assert {p["version"] for p in preds if p["variant"] == "champion"} == {v1}


def test_worker_killed_mid_stream_rescoring_loses_nothing(deployment: Deployment) -> None:
    dep = deployment
    dep.registry.promote(dep.model, dep.add_version())
    events = agrawal_events(20_000, prefix="kill", entities=1000)

    with dep.worker("first") as worker:
        asyncio.run(dep.produce("events", events[:1000]))
        scoring = asyncio.run(  # wait until it is scoring
            dep.collect("predictions", 1, timeout_s=60, worker=worker)
        )
        assert scoring, dep.log("first")
        sender = asyncio.new_event_loop()
        try:
            task = sender.create_task(dep.produce("events", events[1000:], rate=5000))
            # mid-stream: once it has scored a thousand of the streamed events
            scored = sender.run_until_complete(
                dep.collect("predictions", 2000, timeout_s=60, worker=worker)
            )
            assert len(scored) >= 2000, dep.log("first")
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            sender.run_until_complete(task)
        finally:
            sender.close()
    with dep.worker("second") as worker:
        preds = asyncio.run(
            dep.collect(
                "predictions",
                20_000,
                timeout_s=120,
                worker=worker,
                complete=dep.scored_all,  # every rescored duplicate is counted
            )
        )
    ids = Counter(p["event_id"] for p in preds)
    missing = {e["event_id"] for e in events} - set(ids)
    assert not missing, f"{len(missing)} events never predicted\n{dep.log('second')}"
    duplicates = sum(n - 1 for n in ids.values())
    print(f"\nSIGKILL mid-stream: 20000 events, 0 lost, {duplicates} duplicates rescored")
