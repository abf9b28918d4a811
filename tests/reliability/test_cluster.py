"""A Kafka cluster of three brokers loses one under load: nothing is lost, nobody restarts.

The topics are planned for the cluster (three replicas, ``min.insync.replicas`` 2), every
producer waits for all in-sync replicas and is idempotent. While events stream at 5,000 a
second with their labels, the broker that leads most partitions of the events topic is
SIGKILLed. Every event must still be predicted, the worker must not restart, and the longest
pause in the predictions is measured.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.adapters.kafka_topics import Found, inspect_topics
from streams.local.broker_process import node_name
from tests.kit import Background, Collector, Deployment, Workers, settle
from tests.reliability.conftest import OwnServices, ScenarioReport
from tests.waiting import wait_for

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

RATE = 5000  # events a second, and as many labels
PAUSE_TARGET_S = 5.0


async def _topics(kafka: str, names: list[str]) -> tuple[dict[str, Found], Counter[int]]:
    """The topics as they are, and how many partitions of the first each broker leads."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        found = await inspect_topics(admin, names)
        described = await admin.describe_topics(names[:1])
        leaders = Counter(p["leader"] for p in described[0]["partitions"])
        return found, leaders
    finally:
        await admin.close()


def _longest_pause(stamps_ms: list[int], after_s: float) -> float:
    """The longest time between two predictions made after ``after_s`` - 1 s (wall clock)."""
    window = sorted(t for t in stamps_ms if t >= (after_s - 1.0) * 1000)
    return max((b - a for a, b in itertools.pairwise(window)), default=0) / 1000


def test_the_leader_of_most_events_partitions_sigkilled_under_load_loses_nothing(
    kafka_cluster: OwnServices,
    unique: str,
    tmp_path: Path,
    bg: Background,
    scenario_report: ScenarioReport,
) -> None:
    started = time.monotonic()
    kafka = kafka_cluster.kafka
    dep = Deployment.up(kafka_cluster.endpoints, unique, tmp_path, champion="logreg")
    names = [dep.topics[k] for k in ("events", "predictions", "labels", "monitor")]
    nodes = kafka_cluster.local.status()["kafka"]["nodes"]
    assert [(n["name"], n["healthy"]) for n in nodes] == [
        ("kafka", True),
        ("kafka-2", True),
        ("kafka-3", True),
    ]
    found, leaders = asyncio.run(_topics(kafka, names))
    assert {f.replication_factor for f in found.values()} == {3}
    assert {f.configs["min.insync.replicas"] for f in found.values()} == {"2"}

    # Events and their labels come from `driftline produce`, a process of its own: on two
    # cores the test's own producers could not keep up 5,000 of each a second beside three
    # brokers, the worker and the collector.
    total = RATE * 30
    preds = Collector(kafka, dep.topics["predictions"])
    sent_events = Collector(kafka, dep.topics["events"])  # when the producer sent each
    bg.spawn(preds.run())
    bg.spawn(sent_events.run())
    with Workers(dep) as workers:
        worker = workers.start("worker")
        workers.ready("worker")
        load = ["--dataset", "agrawal", "--count", str(total), "--rate", str(RATE)]
        producer = workers.start("producer", "produce", *load, "--labels", "--prefix", "cl")
        wait_for("15,000 predictions", lambda: preds.count >= 15_000, 120)
        victim, led = leaders.most_common(1)[0]
        killed_at = time.time()
        kafka_cluster.local.stop_service(node_name(victim), kill=True)
        wait_for("the producer done", lambda: producer.poll() is not None, 180)
        said = workers.log("producer")
        assert producer.returncode == 0, said
        counts = re.search(r"sent (\d+) events .* and (\d+) labels .*\(([\d,]+) events/s\)", said)
        assert counts is not None, said
        sent, labelled = int(counts[1]), int(counts[2])
        rate = int(counts[3].replace(",", ""))
        ids = [f"cl-{i}" for i in range(sent)]
        wait_for("every event predicted", lambda: not preds.missing(ids), 120)
        settle(bg, dep, preds)
        alive = worker.poll() is None
        log = workers.log("worker")
    preds.stop()
    sent_events.stop()
    lost = preds.missing(ids)
    _, after = asyncio.run(_topics(kafka, names))
    down = [n["name"] for n in kafka_cluster.local.status()["kafka"]["nodes"] if not n["alive"]]
    assert down == [node_name(victim)]
    pause = _longest_pause([r.ts_ms for r in preds.records], killed_at)
    scenario_report.record(
        "cluster: events leader SIGKILLed",
        brokers=3,
        rate_per_s=RATE,
        sent=sent,
        labels=labelled,
        events_per_s=rate,
        predicted_after_kill=sum(r.ts_ms > killed_at * 1000 for r in preds.records),
        lost=len(lost),
        duplicated=preds.duplicates(),
        killed_broker=victim,
        partitions_it_led=led,
        leaders_after={f"broker {k}": v for k, v in sorted(after.items())},
        longest_pause_s=pause,
        longest_pause_in_the_events_sent_s=_longest_pause(
            [r.ts_ms for r in sent_events.records], killed_at
        ),
        pause_target_s=PAUSE_TARGET_S,
        runtime_s=time.monotonic() - started,
    )
    assert alive, f"the worker died with the broker\n{log}"
    assert not lost, f"{len(lost)} events never predicted, e.g. {sorted(lost)[:5]}\n{log}"
    assert victim not in after, "the killed broker still leads partitions"
