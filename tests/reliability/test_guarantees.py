"""Both processing guarantees under SIGKILL (issue #30, item 5), on a real broker and Redis.

The worker is SIGKILLed three times while events stream in, and restarted each time (with the
same worker id, as a supervisor restarts it):

- ``at_least_once``: no event lost; the events scored again after each kill are duplicates,
  counted and printed;
- ``exactly_once``: no event lost and none predicted twice, as a reader that reads committed
  sees the predictions topic: the test's own consumer, and an outside client, kcat (librdkafka)
  with ``isolation.level=read_committed``. What a read-uncommitted reader sees besides (the
  aborted transactions of the killed workers) is printed.

The worker owns the model's monitors, and its own scored batches reach them through
monitor-input (``DRIFTLINE_MONITOR_LOCAL_FEED=false``), so each kill is also an owner's
SIGKILL. Once every event is predicted, every event's label is sent. Exactly once, the
monitors then count each event once and hold the confusion counts a run without a crash
has: the ones computed here from the committed predictions and the labels. At least once,
what the re-scored batches added to the monitors' event count is printed.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from models.data import synthetic
from streams.local.producer import dataset_events
from tests.conftest import Endpoints
from tests.kit import Background, Collector, Deployment, Workers, monitors_snapshot, produce
from tests.reliability.conftest import ScenarioReport
from tests.reliability.harness import Tap
from tests.waiting import wait_for, wait_until

pytestmark = pytest.mark.timeout(300)

POOL = 120_000  # 80 s at most: the stream flows until the last successor scored a while
RECOVERY_BOUND_S = 30.0  # a SIGKILLed member leaves its group after its session (6 s)


def kcat() -> str:
    """The kcat program, or the run fails saying how to get it."""
    found = shutil.which("kcat")
    if found is None:
        pytest.fail("the exactly-once check reads with kcat: apt-get install kcat (.ci/run does)")
    return found


def kcat_ids(bootstrap: str, topic: str, isolation: str) -> Counter[str]:
    """Every event id on ``topic`` from its start to its end, as kcat reads it."""
    out = subprocess.run(
        [
            kcat(),
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\n",
            "-X",
            f"isolation.level={isolation}",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return Counter(orjson.loads(line)["event_id"] for line in out.stdout.splitlines() if line)


async def committed_predictions(
    bootstrap: str, topic: str, partitions: int
) -> list[dict[str, Any]]:
    """Every prediction on ``topic`` up to its last stable offset now, read committed."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        docs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 120
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            assert time.monotonic() < deadline, f"{topic} not read to {ends} in 120 s"
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                docs.extend(orjson.loads(m.value) for m in messages)
        return docs
    finally:
        await consumer.stop()


def _at_least(collector: Collector, n: int) -> Callable[[], bool]:
    return lambda: collector.count >= n


def _first_after(collector: Collector, wall: float) -> float | None:
    stamps = [r.ts_ms for r in list(collector.records) if r.ts_ms >= wall * 1000]
    return min(stamps) / 1000 if stamps else None


def _made_after(collector: Collector, wall: float) -> Callable[[], bool]:
    return lambda: _first_after(collector, wall) is not None


def _log_of(workers: Workers, name: str) -> Callable[[], str]:
    return lambda: workers.log(name, 1500)


def _duplicates(ids: Counter[str]) -> int:
    return sum(n - 1 for n in ids.values() if n > 1)


def _monitored(redis_url: str, model: str) -> dict[str, Any]:
    """The scored events, labels and confusion counts (tn, fp, fn, tp: every version and
    variant together) of the monitors' last snapshot in Redis."""
    monitor = monitors_snapshot(redis_url, model)
    confusion = [0, 0, 0, 0]
    for scope in (monitor.get("label_state") or {}).values():
        confusion = [a + b for a, b in zip(confusion, scope["counts"]["confusion"], strict=True)]
    return {
        "events": int(monitor.get("events", 0)),
        "labels": int(monitor.get("labels", 0)),
        "confusion": confusion,
    }


def _confusion(predicted: dict[str, int], truth: dict[str, int]) -> list[int]:
    """tn, fp, fn, tp of each event's prediction against its label, each event once."""
    counts = Counter(2 * truth[i] + label for i, label in predicted.items())
    return [counts[k] for k in range(4)]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_worker_sigkilled_three_times_under_load(
    guarantee: str,
    services: Endpoints,
    unique: str,
    tmp_path: Path,
    bg: Background,
    scenario_report: ScenarioReport,
) -> None:
    """Events stream at 1,500/s; the worker is SIGKILLed three times, at random points, and
    restarted; the stream flows on until the last successor has scored 3,000 predictions:
    every event is predicted; exactly once, each once."""
    started = time.monotonic()
    kcat()  # before minutes of streaming: a missing program fails the run at once
    seed = int(os.environ.get("DRIFTLINE_CHAOS_SEED") or random.randrange(1 << 30))
    print(f"\nDRIFTLINE_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    dep = Deployment.up(
        services,
        unique,
        tmp_path,
        champion="logreg",
        DRIFTLINE_PROCESSING_GUARANTEE=guarantee,
        DRIFTLINE_WORKER_ID=f"w-{unique}",
        DRIFTLINE_MONITOR_LOCAL_FEED="false",
    )
    pairs = list(
        itertools.islice(
            dataset_events(synthetic("agrawal", rows=POOL, seed=7), prefix="eos", entities=2000),
            POOL,
        )
    )
    pool = [event for event, _ in pairs]
    truth = {event["event_id"]: int(y) for event, y in pairs}
    stream = Tap(pool)  # flows before, between and after the kills
    kills_at = [rng.randrange(lo, lo + 4_000) for lo in (3_000, 10_000, 17_000)]
    preds = Collector(
        services.kafka, dep.topics["predictions"], options={"isolation_level": "read_committed"}
    )
    bg.spawn(preds.run())
    recoveries: list[float] = []
    with Workers(dep) as workers:
        workers.start("w0")
        workers.ready("w0")
        sending = bg.spawn(produce(services.kafka, dep.topics["events"], stream, rate=1500))
        for i, threshold in enumerate(kills_at):
            wait_for(f"{threshold} predictions", _at_least(preds, threshold), 90)
            time.sleep(rng.uniform(0, 0.25))  # anywhere in a transaction or a batch
            workers.stop(f"w{i}", signal.SIGKILL)
            killed = time.time()
            last = f"w{i + 1}"
            workers.start(last)
            wait_for(
                f"worker {last} scoring after the SIGKILL of w{i}",
                _made_after(preds, killed),
                RECOVERY_BOUND_S,
                detail=_log_of(workers, last),
            )
            first = _first_after(preds, killed)
            assert first is not None
            recoveries.append(first - killed)
        wait_for("a stream after the last restart", _at_least(preds, preds.count + 3000), 60)
        stream.close()
        sent = sending.result(120).count
        assert sent < POOL, "the stream ended before the last restart: nothing to test"
        ids = [e["event_id"] for e in pool[:sent]]
        wait_for("every event predicted", lambda: not preds.missing(ids), 90)
        wait_for("every event committed", lambda: bg.run(dep.scored_all()), 90, 0.25)
        assert workers.procs[last].poll() is None, workers.log(last)
        topic = dep.topics["predictions"]
        docs = bg.run(
            committed_predictions(services.kafka, topic, int(dep.env["DRIFTLINE_TOPIC_PARTITIONS"]))
        )
        seen = Counter(doc["event_id"] for doc in docs)
        external = kcat_ids(services.kafka, topic, "read_committed")
        uncommitted = kcat_ids(services.kafka, topic, "read_uncommitted")
        # the labels, once every event is predicted: each joins its prediction at once
        labelled = {i: truth[i] for i in ids}
        bg.run(dep.produce("labels", [{"event_id": i, "label": y} for i, y in labelled.items()]))
        monitored = wait_until(
            "the monitors' snapshot of every label",
            lambda: (m := _monitored(services.redis, dep.model))["labels"] >= sent and m,
            90,
            0.25,
            _log_of(workers, last),
        )
    preds.stop()
    # each event's prediction (a re-scored one is the same: one model, one version)
    expected = _confusion({doc["event_id"]: int(doc["label"]) for doc in docs}, labelled)
    lost = set(ids) - seen.keys()
    report = {
        "sent": sent,
        "lost": len(lost),
        "duplicated": _duplicates(seen),
        "duplicated_kcat": _duplicates(external),
        "kills_at": kills_at,
        "recovery_s": [round(r, 1) for r in recoveries],
        "read_uncommitted_extra": sum(uncommitted.values()) - sum(seen.values()),
        "monitored_events": monitored["events"],
        "monitored_labels": monitored["labels"],
        "seed": seed,
        "runtime_s": round(time.monotonic() - started, 1),
    }
    print(f"{guarantee}: {report}")
    scenario_report.record(f"SIGKILL x3, {guarantee}", **report)
    assert not lost, f"{len(lost)} events never predicted, e.g. {sorted(lost)[:5]}"
    assert len(recoveries) == 3
    if guarantee == "exactly_once":
        assert _duplicates(seen) == 0, f"{_duplicates(seen)} predictions seen twice"
        assert preds.duplicates() == 0, "the live read-committed reader saw duplicates"
        assert set(ids) <= external.keys(), "kcat misses predictions the consumer saw"
        assert _duplicates(external) == 0, f"kcat saw {_duplicates(external)} duplicates"
        # the owner died three times: its monitors still count as a run without a crash
        assert monitored["events"] == sent, report
        assert monitored["labels"] == sent, report
        assert monitored["confusion"] == expected, (monitored, expected)
