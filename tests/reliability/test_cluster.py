"""A Kafka cluster of three brokers loses one under load: nothing is lost, nobody restarts.

The topics are planned for the cluster (three replicas, ``min.insync.replicas`` 2), and every
producer waits for all in-sync replicas and is idempotent. While events stream at 5,000 a
second with their labels, one fault hits the cluster:

- the broker that leads most partitions of the events topic is SIGKILLed;
- one broker is frozen (SIGSTOP) for 30 s, then resumed;
- every broker is restarted in turn (a rolling restart).

Every event must still be predicted and the worker must not restart. The longest pause in the
predictions is measured beside the longest pause in the events the producer sent: a worker
adds nothing to a failover when its predictions pause no longer than its input does.

A frozen broker keeps its connections open, so a client moves on to the new leaders only when
its request times out: ``DRIFTLINE_KAFKA_REQUEST_TIMEOUT_MS`` (5 s; aiokafka's default, 40 s,
had the freeze cost its whole 30 s). A producer whose partition takes nothing for that long
offers the message again rather than failing the send (``PatientProducer``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.adapters.kafka_topics import Found, inspect_topics
from streams.local.broker_process import node_name
from tests.kit import Background, Collector, Deployment, Workers, settle
from tests.reliability.conftest import OwnServices, ScenarioReport
from tests.waiting import wait_for

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

RATE = 5000  # events a second, and as many labels
PAUSE_TARGET_S = 5.0
NODES = ("kafka", "kafka-2", "kafka-3")


async def _describe(kafka: str, names: list[str]) -> tuple[dict[str, Found], list[Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        return await inspect_topics(admin, names), await admin.describe_topics(names)
    finally:
        await admin.close()


def _leaders(described: list[Any]) -> Counter[int]:
    """How many partitions of the first topic each broker leads."""
    return Counter(p["leader"] for p in described[0]["partitions"])


def _heal(cluster: OwnServices) -> None:
    """Every broker running and every replica back in sync, for the next scenario."""
    for name in NODES:
        cluster.local.freeze_service(name, frozen=False)
        cluster.local.start_service(name)
    wait_for("every replica in sync", _all_in_sync(cluster.kafka), 120, 1.0)


@dataclass
class Outcome:
    """What one scenario measured."""

    fault_at: float = 0.0
    sent: int = 0
    labelled: int = 0
    events_per_s: int = 0
    lost: int = 0
    duplicated: int = 0
    alive: bool = False
    log: str = ""
    pause_s: float = 0.0
    input_pause_s: float = 0.0
    wait_s: float = 0.0
    leaders_before: Counter[int] = field(default_factory=Counter)
    leaders_after: Counter[int] = field(default_factory=Counter)
    runtime_s: float = 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "brokers": 3,
            "rate_per_s": RATE,
            "sent": self.sent,
            "labels": self.labelled,
            "events_per_s": self.events_per_s,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "longest_pause_s": self.pause_s,
            "longest_pause_in_the_events_sent_s": self.input_pause_s,
            "longest_wait_of_an_event_s": self.wait_s,
            "pause_target_s": PAUSE_TARGET_S,
            "leaders_after": {f"broker {k}": v for k, v in sorted(self.leaders_after.items())},
            "runtime_s": self.runtime_s,
        }


def _under_load(
    cluster: OwnServices,
    unique: str,
    tmp_path: Path,
    bg: Background,
    fault: Callable[[Counter[int]], None],
    seconds: int,
) -> Outcome:
    """Stream ``seconds`` of events and labels through a worker; once 15,000 are predicted,
    call ``fault`` with who leads the events partitions; then check every event."""
    out = Outcome()
    started = time.monotonic()
    kafka = cluster.kafka
    dep = Deployment.up(cluster.endpoints, unique, tmp_path, champion="logreg")
    names = [dep.topics[k] for k in ("events", "predictions", "labels", "monitor")]
    found, described = asyncio.run(_describe(kafka, names))
    assert {f.replication_factor for f in found.values()} == {3}
    assert {f.configs["min.insync.replicas"] for f in found.values()} == {"2"}
    out.leaders_before = _leaders(described)
    # Events and their labels come from `driftline produce`, a process of its own: on two
    # cores the test's own producers could not keep up 5,000 of each a second beside three
    # brokers, the worker and the collectors.
    preds = Collector(kafka, dep.topics["predictions"])
    sent_events = Collector(kafka, dep.topics["events"])  # when the producer sent each
    bg.spawn(preds.run())
    bg.spawn(sent_events.run())
    with Workers(dep) as workers:
        worker = workers.start("worker")
        workers.ready("worker")
        load = ["--dataset", "agrawal", "--count", str(RATE * seconds), "--rate", str(RATE)]
        producer = workers.start("producer", "produce", *load, "--labels", "--prefix", "cl")
        wait_for("15,000 predictions", lambda: preds.count >= 15_000, 120)
        out.fault_at = time.time()
        fault(out.leaders_before)
        wait_for("the producer done", lambda: producer.poll() is not None, 240)
        said = workers.log("producer")
        assert producer.returncode == 0, said
        counts = re.search(r"sent (\d+) events .* and (\d+) labels .*\(([\d,]+) events/s\)", said)
        assert counts is not None, said
        out.sent, out.labelled = int(counts[1]), int(counts[2])
        out.events_per_s = int(counts[3].replace(",", ""))
        ids = [f"cl-{i}" for i in range(out.sent)]
        wait_for("every event predicted", lambda: not preds.missing(ids), 180)
        settle(bg, dep, preds)
        out.alive = worker.poll() is None
        out.log = workers.log("worker")
    preds.stop()
    sent_events.stop()
    out.lost = len(preds.missing(ids))
    out.duplicated = preds.duplicates()
    out.pause_s = preds.longest_pause(out.fault_at)
    out.input_pause_s = sent_events.longest_pause(out.fault_at)
    out.wait_s = _longest_wait(sent_events, preds, out.fault_at)
    out.leaders_after = _leaders(asyncio.run(_describe(kafka, names))[1])
    _heal(cluster)
    out.runtime_s = time.monotonic() - started
    return out


def _longest_wait(sent: Collector, preds: Collector, after_s: float) -> float:
    """The longest an event made after ``after_s`` - 1 s waited for its first prediction:
    a partition the worker stops reading shows here even while the others keep the
    predictions coming (the longest pause only sees the topic as a whole)."""
    made = {r.event_id: r.ts_ms for r in list(sent.records) if r.ts_ms >= (after_s - 1.0) * 1000}
    first: dict[str | None, int] = {}
    for r in list(preds.records):
        if r.event_id in made and r.ts_ms < first.get(r.event_id, 1 << 62):
            first[r.event_id] = r.ts_ms
    return max((first[i] - made[i] for i in first), default=0) / 1000


def _nothing_lost(out: Outcome) -> None:
    assert out.alive, f"the worker died with the broker\n{out.log}"
    assert out.lost == 0, f"{out.lost} events never predicted\n{out.log}"


def test_the_leader_of_most_events_partitions_sigkilled_under_load_loses_nothing(
    kafka_cluster: OwnServices,
    unique: str,
    tmp_path: Path,
    bg: Background,
    scenario_report: ScenarioReport,
) -> None:
    killed: list[int] = []

    def kill(leaders: Counter[int]) -> None:
        victim = leaders.most_common(1)[0][0]
        killed.append(victim)
        kafka_cluster.local.stop_service(node_name(victim), kill=True)
        nodes = kafka_cluster.local.status()["kafka"]["nodes"]
        assert [n["name"] for n in nodes if not n["alive"]] == [node_name(victim)]

    out = _under_load(kafka_cluster, unique, tmp_path, bg, kill, seconds=30)
    scenario_report.record(
        "cluster: events leader SIGKILLed",
        killed_broker=killed[0],
        partitions_it_led=out.leaders_before[killed[0]],
        **out.figures(),
    )
    _nothing_lost(out)
    assert killed[0] not in out.leaders_after, "the killed broker still leads partitions"


def test_a_broker_frozen_for_30_s_then_resumed_under_load_loses_nothing(
    kafka_cluster: OwnServices,
    unique: str,
    tmp_path: Path,
    bg: Background,
    scenario_report: ScenarioReport,
) -> None:
    frozen: list[int] = []

    def freeze(leaders: Counter[int]) -> None:
        victim = leaders.most_common(1)[0][0]
        frozen.append(victim)
        kafka_cluster.local.freeze_service(node_name(victim))
        time.sleep(30)  # the fault itself: a broker that answers nothing for 30 s
        kafka_cluster.local.freeze_service(node_name(victim), frozen=False)

    out = _under_load(kafka_cluster, unique, tmp_path, bg, freeze, seconds=60)
    scenario_report.record(
        "cluster: a broker frozen 30 s", frozen_broker=frozen[0], **out.figures()
    )
    _nothing_lost(out)


def test_a_rolling_restart_of_every_broker_under_load_loses_nothing(
    kafka_cluster: OwnServices,
    unique: str,
    tmp_path: Path,
    bg: Background,
    scenario_report: ScenarioReport,
) -> None:
    took: list[float] = []

    def roll(_leaders: Counter[int]) -> None:
        for name in NODES:
            began = time.monotonic()
            kafka_cluster.local.stop_service(name)
            kafka_cluster.local.start_service(name)
            # As an operator would: the next broker goes only once every replica is back.
            wait_for(f"{name} back in sync", _all_in_sync(kafka_cluster.kafka), 120, 0.5)
            took.append(time.monotonic() - began)

    out = _under_load(kafka_cluster, unique, tmp_path, bg, roll, seconds=75)
    scenario_report.record(
        "cluster: rolling restart",
        restart_s=[round(t, 1) for t in took],
        **out.figures(),
    )
    _nothing_lost(out)


def _all_in_sync(kafka: str) -> Callable[[], bool]:
    """Every partition of every topic on the cluster has its three replicas in sync."""

    async def check() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        try:
            described = await admin.describe_topics()
        finally:
            await admin.close()
        return all(len(p["isr"]) == len(p["replicas"]) for t in described for p in t["partitions"])

    return lambda: asyncio.run(check())


def test_a_topic_with_one_replica_on_the_cluster_is_reported_not_used(
    kafka_cluster: OwnServices, unique: str, tmp_path: Path
) -> None:
    dep = Deployment(kafka_cluster.endpoints, unique, tmp_path)
    events = dep.topics["events"]

    async def precreate() -> None:
        from aiokafka.admin import NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_cluster.kafka)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(events, 4, 1)])
        finally:
            await admin.close()

    asyncio.run(precreate())
    check = dep.cli("topics", "check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"{events}: replication factor is 1, planned 3 (weaker)" in check.stdout
    worker = dep.cli("worker", timeout_s=120)
    assert worker.returncode == 2, worker.stderr
    assert f"{events}: replication factor is 1, planned 3 (weaker)" in worker.stderr
