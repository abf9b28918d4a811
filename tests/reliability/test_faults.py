"""Faults while events stream (issue #9, scenarios 1-4), on a real broker and a real Redis.

Each scenario streams events into a real ``driftline worker`` process, injects one kind of
fault, and checks what must never happen (ARCHITECTURE §7): an event lost, a crashed or stuck
worker, monitoring state reset to zero. It also measures what the fault cost (duplicates,
recovery time) and records it with the ``scenario_report`` fixture, so that the session's
terminal summary prints one line per scenario.

- worker crash: SIGKILL at random points, three times, each followed by a restart;
- broker restart: the Kafka process (a broker of the test's own) stopped and started again;
- Redis outage: Redis (of the test's own) stopped mid-stream, then back with its AOF;
- rebalance: a second worker joins mid-stream, then the first one is stopped.

``DRIFTLINE_CHAOS_SEED`` replays the random kill points of a failed run (the seed is printed).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streams.kafka_admin import create_topics
from streams.services import redis_healthy
from tests.conftest import Endpoints
from tests.integration.workerkit import Deployment, agrawal_events
from tests.reliability.conftest import OwnServices, ScenarioReport
from tests.reliability.harness import (
    Background,
    Collector,
    LagProbe,
    Seen,
    Workers,
    produce,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)


def _deployment(kafka: str, redis: str, unique: str, root: Path) -> Deployment:
    dep = Deployment(Endpoints(kafka=kafka, redis=redis), unique, root)
    asyncio.run(create_topics(kafka, dep.topics.values(), partitions=4))
    dep.registry.promote(dep.model, dep.add_version())
    return dep


@pytest.fixture
def bg() -> Iterator[Background]:
    loop = Background()
    try:
        yield loop
    finally:
        loop.close()


def _first_after(records: list[Seen], wall: float) -> float | None:
    """Wall time of the first output a worker made after ``wall`` (its record timestamp)."""
    stamps = [r.ts_ms for r in list(records) if r.ts_ms >= wall * 1000]
    return min(stamps) / 1000 if stamps else None


def _max_gap(arrivals: list[float]) -> float:
    arrivals = sorted(arrivals)
    return max((b - a for a, b in zip(arrivals, arrivals[1:], strict=False)), default=0.0)


# -- 1. worker crash -------------------------------------------------------------------------
def test_worker_sigkilled_three_times_mid_stream_loses_no_event(
    services: Endpoints,
    unique: str,
    tmp_path: Path,
    bg: Background,
    scenario_report: ScenarioReport,
) -> None:
    """50,000 events; the worker is SIGKILLed at three random points and restarted each time:
    every event gets at least one prediction; the rescored duplicates are counted."""
    started = time.monotonic()
    seed = int(os.environ.get("DRIFTLINE_CHAOS_SEED") or random.randrange(1 << 30))
    print(f"\nDRIFTLINE_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    total = 50_000
    dep = _deployment(services.kafka, services.redis, unique, tmp_path)
    events = agrawal_events(total, prefix="crash", entities=2000)
    # one kill in each third of the stream, at a random event count and a random instant
    kills_at = [rng.randrange(lo, lo + 10_000) for lo in (4_000, 18_000, 32_000)]
    preds = Collector(services.kafka, dep.topics["predictions"])
    bg.spawn(preds.run())
    recoveries: list[float] = []
    with Workers(dep) as workers:
        workers.start("w0")
        sending = bg.spawn(produce(services.kafka, dep.topics["events"], events, rate=2500))
        for i, threshold in enumerate(kills_at):
            name = f"w{i}"
            wait_for(f"{threshold} predictions", lambda t=threshold: preds.count >= t, 60)
            time.sleep(rng.uniform(0, 0.25))  # anywhere in a batch: fetched, scored, producing
            workers.stop(name, signal.SIGKILL)
            killed = time.time()
            workers.start(f"w{i + 1}")
            wait_for(
                f"worker w{i + 1} scoring",
                lambda k=killed: _first_after(preds.records, k) is not None,
                60,
            )
            first = _first_after(preds.records, killed)
            assert first is not None
            recoveries.append(first - killed)
        sent = sending.result(120)
        ids = [e["event_id"] for e in events]
        last = f"w{len(kills_at)}"
        wait_for("every event predicted", lambda: not preds.missing(ids), 90)
        time.sleep(1.0)  # late duplicates, if any, still count
        assert workers.procs[last].poll() is None, workers.log(last)
    preds.stop()
    lost = preds.missing(ids)
    assert sent.count == total
    assert not lost, f"{len(lost)} events never predicted, e.g. {sorted(lost)[:5]}"
    scenario_report.record(
        "1 worker crash (3x SIGKILL)",
        sent=total,
        lost=len(lost),
        duplicated=preds.duplicates(),
        kills_at=kills_at,
        recovery_s=[round(r, 1) for r in recoveries],
        max_recovery_s=max(recoveries),
        seed=seed,
        runtime_s=time.monotonic() - started,
    )
