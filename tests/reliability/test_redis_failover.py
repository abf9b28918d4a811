"""A Redis Cluster loses the master that holds a model's keys, under load, on a 3-broker Kafka.

The worker reaches Redis only through ``DRIFTLINE_REDIS_URL``, the URL of one node, as it
would an external cluster. While events stream at 5,000 a second with their labels, the master
of the model's hash slot is SIGKILLed. Its replica takes over (the nodes' timeout is 2 s).
Scoring never stops; the monitors degrade, keep their state in memory, and write to Redis
again once the cluster serves the slot; an alert raised after the failover reaches the Redis
stream. Redis replicates asynchronously, so what the master had acknowledged but not yet
passed on is lost: the labels that then could not meet their predictions are counted and
stated, and no event or label is counted twice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.adapters.redis_client import SyncClient, as_text, sync_redis
from streams.contracts import names
from streams.local.redis_cluster import cluster_ok
from streams.local.redis_process import node_client
from tests.conftest import Endpoints
from tests.kit import Background, Collector, Deployment, Workers, agrawal_events, produce, settle
from tests.reliability.conftest import OwnServices, ScenarioReport, own_services
from tests.waiting import wait_for, wait_until

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

RATE = 5000  # events a second, and as many labels
SECONDS = 40
RESUME_TARGET_S = 10.0


@pytest.fixture(scope="module")
def redis_cluster_own(
    kafka_cluster: OwnServices, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OwnServices]:
    """A Redis Cluster of three masters with a replica each (beside the 3-broker cluster)."""
    yield from own_services(
        tmp_path_factory, "redis-cluster", kafka_cluster.kafka, None, redis_cluster=True
    )


def _health(client: SyncClient, model: str) -> dict[str, Any]:
    try:
        raw = client.hget(names.health_key(model), names.HEALTH_FIELD)
    except Exception:  # the slot has no master yet: nothing to read
        return {}
    return orjson.loads(raw) if raw else {}


def _alerts_after(client: SyncClient, model: str, since: float) -> list[dict[str, Any]]:
    try:
        entries: Any = client.xrange(names.ALERTS_KEY)
    except Exception:
        return []
    found = [orjson.loads(fields[b"alert"]) for _, fields in entries]
    return [a for a in found if a["model"] == model and a["at"] > since]


def _nodes(rc: OwnServices) -> list[dict[str, Any]]:
    return list(rc.local.status()["redis"]["nodes"])


def _master_of(rc: OwnServices, client: SyncClient, key: str) -> str:
    """The name of the node that serves ``key`` now."""
    node: Any = client.get_node_from_key(key)  # type: ignore[union-attr]
    (name,) = [n["name"] for n in _nodes(rc) if n["endpoint"].endswith(f":{node.port}/0")]
    return str(name)


def _replica_of(rc: OwnServices, master: str) -> str:
    """The URL of ``master``'s replica."""
    (url,) = [n["endpoint"] for n in _nodes(rc) if n["name"] == master]
    client = node_client(url, rc.local.settings)
    try:
        role: Any = client.role()
    finally:
        client.close()
    host, port, _offset = role[2][0]
    return f"redis://{as_text(host)}:{as_text(port)}/0"


def _promoted(url: str, settings: Any) -> bool:
    """The node at ``url`` is a master now, and its cluster serves every slot."""
    client = node_client(url, settings, timeout_s=0.5)
    try:
        return as_text(client.role()[0]) == "master" and cluster_ok(url, settings)
    except Exception:
        return False
    finally:
        client.close()


def test_a_redis_master_sigkilled_under_load_fails_over_and_monitoring_resumes(
    kafka_cluster: OwnServices,
    redis_cluster_own: OwnServices,
    unique: str,
    tmp_path: Path,
    bg: Background,
    scenario_report: ScenarioReport,
) -> None:
    started = time.monotonic()
    rc = redis_cluster_own
    kafka = kafka_cluster.kafka
    dep = Deployment.up(Endpoints(kafka=kafka, redis=rc.redis), unique, tmp_path, champion="logreg")
    model = dep.model
    client = sync_redis(rc.redis, None, socket_timeout=2, socket_connect_timeout=2)
    preds = Collector(kafka, dep.topics["predictions"])
    sent_events = Collector(kafka, dep.topics["events"])
    bg.spawn(preds.run())
    bg.spawn(sent_events.run())
    # After the failover, events whose salary is far off the reference: the monitors must
    # raise a drift alert, and it must reach Redis.
    drifted = agrawal_events(4000, prefix="rkd", seed=5)
    for e in drifted:
        e["features"]["salary"] = e["features"]["salary"] * 3 + 100_000.0
    with Workers(dep) as workers:
        worker = workers.start("worker")
        workers.ready("worker")
        load = ["--dataset", "agrawal", "--count", str(RATE * SECONDS), "--rate", str(RATE)]
        producer = workers.start("producer", "produce", *load, "--labels", "--prefix", "rk")
        wait_for("15,000 predictions", lambda: preds.count >= 15_000, 120)
        wait_for("the monitors' health in Redis", lambda: _health(client, model), 30)
        victim = _master_of(rc, client, names.state_key(model))
        replica = _replica_of(rc, victim)
        killed_at = time.time()
        rc.local.stop_service(victim, kill=True)
        wait_for(
            "its replica to take over", lambda: _promoted(replica, rc.local.settings), 60, 0.05
        )
        failover_at = time.time()
        sending = bg.spawn(produce(kafka, dep.topics["events"], drifted, rate=2000))
        health = wait_until(
            "the monitors writing to Redis again",
            lambda: (
                (h := _health(client, model)).get("at", 0) > failover_at
                and not h.get("degraded")
                and h
            ),
            60,
            0.1,
            detail=lambda: workers.log("worker"),
        )
        resumed_s = health["at"] - failover_at
        alert = wait_until(
            "an alert raised after the failover in the Redis stream",
            lambda: _alerts_after(client, model, failover_at),
            90,
            0.25,
            detail=lambda: workers.log("worker"),
        )[0]
        alert_s = alert["at"] - failover_at
        assert sending.result(120).count == len(drifted)
        wait_for("the producer done", lambda: producer.poll() is not None, 240)
        said = workers.log("producer")
        assert producer.returncode == 0, said
        counts = re.search(r"sent (\d+) events .* and (\d+) labels", said)
        assert counts is not None, said
        sent, labelled = int(counts[1]), int(counts[2])
        ids = [f"rk-{i}" for i in range(sent)] + [e["event_id"] for e in drifted]
        wait_for("every event predicted", lambda: not preds.missing(ids), 180)
        settle(bg, dep, preds)
        last: dict[str, Any] = {}

        def counted_all_it_will() -> bool:  # the monitors' counts stop moving
            nonlocal last
            now = _health(client, model)
            done = bool(now) and now.get("events") == last.get("events") == len(ids)
            done = done and now.get("labels") == last.get("labels")
            last = now
            return done

        wait_for("the monitors to count every event", counted_all_it_will, 90, 2.0)
        alive = worker.poll() is None
        log = workers.log("worker")
    preds.stop()
    sent_events.stop()
    final = last
    join = final.get("join") or {}
    lost_labels = labelled - int(final["labels"])
    figures = {
        "rate_per_s": RATE,
        "sent": sent,
        "labels": labelled,
        "killed": victim,
        "failover_s": failover_at - killed_at,
        "longest_prediction_pause_s": preds.longest_pause(killed_at),
        "longest_pause_in_the_events_sent_s": sent_events.longest_pause(killed_at),
        "monitoring_resumed_s": resumed_s,
        "alert_after_failover_s": alert_s,
        "resume_target_s": RESUME_TARGET_S,
        "events_monitored": final["events"],
        "labels_counted": final["labels"],
        "labels_lost": lost_labels,
        "join": join,
        "runtime_s": time.monotonic() - started,
    }
    scenario_report.record("redis cluster: the model's master SIGKILLed", **figures)
    assert alive, f"the worker died with the Redis master\n{log}"
    assert not preds.missing(ids), "an event was never predicted"
    assert final["events"] == len(ids), "the monitors counted an event twice or lost one"
    assert lost_labels >= 0, "a label was counted twice"
    assert resumed_s <= RESUME_TARGET_S, figures
    assert alert_s <= RESUME_TARGET_S, figures
    client.close()
