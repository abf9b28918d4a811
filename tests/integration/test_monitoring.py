"""Monitoring inside a real worker: drift alerts, label join, metrics, state across restarts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.adapters.redis_client import SyncClient, sync_redis
from streams.contracts import names
from streams.contracts.messages import Alert
from tests.conftest import Endpoints
from tests.kit import Deployment, agrawal_events, nothing_pending
from tests.waiting import wait_until


@pytest.fixture
def deployment(services: Endpoints, any_redis: str, unique: str, tmp_path: Path) -> Deployment:
    """A deployment on the session's broker and, in turn, one Redis server and a Redis Cluster
    (named by one node's URL only, as an operator would)."""
    return Deployment.up(
        Endpoints(kafka=services.kafka, redis=any_redis),
        unique,
        tmp_path,
        champion="gbdt",
        monitor={"window": 1000, "min_labels": 100},
        DRIFTLINE_WORKER_ID=f"w-{unique}",
    )


def _health(client: SyncClient, dep: Deployment) -> dict[str, Any]:
    raw = client.hget(names.health_key(dep.model), names.HEALTH_FIELD)
    return orjson.loads(raw) if raw else {}


def _forwarded_labels(dep: Deployment) -> int:
    """Labels the workers forwarded to the monitors' input topic so far."""
    records = asyncio.run(dep.collect("monitor", 0, timeout_s=30, complete=nothing_pending))
    return sum(len(r["items"]) for r in records if r.get("kind") == "labels")


def _alerts(client: SyncClient, model: str) -> list[dict[str, Any]]:
    out = []
    entries: Any = client.xrange(names.ALERTS_KEY)
    for _, fields in entries:
        alert = orjson.loads(fields[b"alert"])
        if alert["model"] == model:
            out.append(alert)
    return out


def test_injected_drift_raises_one_alert_on_every_channel(deployment: Deployment) -> None:
    dep = deployment
    client = sync_redis(dep.services.redis, None)
    channel: Any = client.pubsub()  # a cluster's or a server's: both subscribe alike
    channel.subscribe(names.ALERTS_KEY)
    normal = agrawal_events(3000, prefix="n", seed=11)
    drifted = agrawal_events(5000, prefix="d", seed=12)
    for e in drifted:
        e["features"]["salary"] = e["features"]["salary"] * 3 + 100_000.0
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", normal + drifted))
        preds = asyncio.run(dep.collect("predictions", 8000, timeout_s=120, worker=worker))
        assert len(preds) == 8000, dep.log()
        # the monitors saw every event (their alerts come before the health that counts them)
        health = wait_until(
            "health to count the 8000 events and say alerting",
            lambda: (
                (h := _health(client, dep)).get("events", 0) >= 8000
                and h["status"] == "alerting"
                and h
            ),
            30,
            0.25,
            detail=lambda: (_health(client, dep), dep.log()),
        )
        alerts = [a for a in _alerts(client, dep.model) if a["kind"] == "data_drift"]
    assert alerts, dep.log()
    for a in alerts:
        Alert.model_validate(a)
    salary = [a for a in alerts if a["feature"] == "salary"]
    assert len(salary) == 1, "one drift is one alert, however many windows see it"
    assert salary[0]["statistic"] >= 0 and salary[0]["threshold"] > 0
    assert salary[0]["version"] == preds[0]["version"]
    assert {a["feature"] for a in alerts} <= {"salary", None}, alerts
    published = []
    while (msg := channel.get_message(timeout=1)) is not None:
        if msg["type"] == "message":
            published.append(orjson.loads(msg["data"]))
    assert {a["alert_id"] for a in published if a["model"] == dep.model} >= {salary[0]["alert_id"]}
    final = _alerts(client, dep.model)  # the worker has stopped: nothing more comes
    on_topic = asyncio.run(
        dep.collect(
            "alerts",
            len(final),
            timeout_s=20,
            complete=nothing_pending,
        )
    )
    assert {a["alert_id"] for a in on_topic} == {a["alert_id"] for a in final}
    print("\nalerts:", sorted(((a["kind"], a["feature"], a["detector"]) for a in final), key=str))
    assert health["status"] == "alerting"
    assert health["events"] >= 8000

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=dep.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    shown = cli("alerts", "--model", dep.model, "--kind", "data_drift", "--json")
    assert shown.returncode == 0, shown.stderr
    # salary's, and the multivariate detector's (no feature) when it saw the shift too
    listed = [orjson.loads(line)["alert_id"] for line in shown.stdout.splitlines()]
    assert sorted(listed) == sorted(a["alert_id"] for a in alerts)
    assert salary[0]["alert_id"] in listed
    status = cli("status", dep.model, "--json")
    assert status.returncode == 0, status.stderr
    (report,) = orjson.loads(status.stdout)
    assert report["aliases"]["champion"] == preds[0]["version"]
    assert report["health"]["status"] == "alerting"
    assert {a["kind"] for a in report["last_alerts"]} >= {"data_drift"}
    channel.close()
    client.close()


def test_labels_join_either_order_and_state_survives_a_restart(deployment: Deployment) -> None:
    dep = deployment
    client = sync_redis(dep.services.redis, None)
    events = agrawal_events(2400, prefix="j", seed=21)
    from models.data import synthetic

    truth = synthetic("agrawal", rows=2400, seed=21).y.tolist()
    labels = [{"event_id": e["event_id"], "label": y} for e, y in zip(events, truth, strict=True)]
    with dep.worker("first") as worker:
        # a third of the labels come before their events
        asyncio.run(dep.produce("labels", labels[:400]))
        asyncio.run(dep.produce("events", events[:1200]))
        asyncio.run(
            dep.collect(
                "predictions",
                1200,
                timeout_s=90,
                worker=worker,
            )
        )
        asyncio.run(dep.produce("labels", labels[400:1200]))
        first = wait_until(
            "the monitors to count 1200 labels",
            lambda: _health(client, dep).get("labels", 0) >= 1200 and _health(client, dep),
            30,
            0.25,
            detail=lambda: dep.log("first"),
        )
    scope = next(iter(first["metrics"].values()))
    assert scope["labels"] == 1200
    assert scope["cumulative"]["accuracy"] > 0.8
    assert first["join"]["joined"] == 1200
    assert client.exists(names.state_key(dep.model))

    with dep.worker("second") as worker:
        asyncio.run(dep.produce("events", events[1200:]))
        asyncio.run(
            dep.collect(
                "predictions",
                2400,
                timeout_s=90,
                worker=worker,
            )
        )
        asyncio.run(dep.produce("labels", labels[1200:]))
        second = wait_until(
            "the monitors to count 2400 labels",
            lambda: _health(client, dep).get("labels", 0) >= 2400 and _health(client, dep),
            30,
            0.25,
            detail=lambda: dep.log("second"),
        )
    assert second["resumed"] is True
    assert next(iter(second["metrics"].values()))["labels"] == 2400, "metrics continue, not reset"
    assert second["events"] >= 2400
    client.close()


def test_a_monitor_process_of_its_own_owns_the_monitors(deployment: Deployment) -> None:
    dep = deployment
    dep.env["DRIFTLINE_MONITOR_IN_WORKER"] = "false"
    client = sync_redis(dep.services.redis, None)
    events = agrawal_events(600, prefix="s", seed=31)
    labels = [{"event_id": e["event_id"], "label": i % 2} for i, e in enumerate(events)]
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", events))
        asyncio.run(
            dep.collect(
                "predictions",
                600,
                timeout_s=90,
                worker=worker,
            )
        )
        asyncio.run(dep.produce("labels", labels))
        # the worker got that far: it scored the events and forwarded every label
        wait_until(
            "the worker forwarding the 600 labels to the monitors",
            lambda: _forwarded_labels(dep) >= 600,
            60,
            0.5,
            detail=dep.log,
        )
        assert _health(client, dep) == {}, "no worker runs the monitors"
        with dep.worker("monitor", command="monitor") as monitor:
            wait_until(
                "the monitor process to count the 600 labels",
                lambda: _health(client, dep).get("labels", 0) >= 600,
                60,
                0.25,
                detail=lambda: dep.log("monitor"),
            )
            assert monitor.poll() is None, dep.log("monitor")
    health = _health(client, dep)
    assert health["labels"] == 600 and health["events"] == 600
    client.close()
