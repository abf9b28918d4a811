"""One model, four workers, twelve partitions (the default): every worker scores, and when one
is SIGKILLed under load the other three take its partitions within 10 s and lose nothing.

A SIGKILLed worker leaves no goodbye: the group drops it when its session ends (6 s without a
heartbeat, ``streams.scoring.loop.SESSION_TIMEOUT_MS``) and one rebalance hands its partitions
to the others, which resume from its last commit (at least once: the events it had scored but
not committed are scored again, never lost).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.conftest import Endpoints
from tests.kit import Background, Collector, Deployment, Workers, settle
from tests.reliability.conftest import ScenarioReport
from tests.waiting import wait_for

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

WORKERS = 4
PARTITIONS = 12
RATE = 3000  # events a second
SECONDS = 40
TAKEOVER_TARGET_S = 10.0


def test_four_workers_share_twelve_partitions_and_take_over_a_killed_ones(
    services: Endpoints,
    unique: str,
    tmp_path: Path,
    bg: Background,
    scenario_report: ScenarioReport,
) -> None:
    started = time.monotonic()
    dep = Deployment.up(
        services, unique, tmp_path, champion="logreg", DRIFTLINE_TOPIC_PARTITIONS=str(PARTITIONS)
    )
    preds = Collector(services.kafka, dep.topics["predictions"])
    bg.spawn(preds.run())
    names = [f"w{i}" for i in range(1, WORKERS + 1)]
    with Workers(dep) as workers:
        for name in names:
            workers.start(name)
        for name in names:
            workers.ready(name, 120)
        load = ["--dataset", "agrawal", "--count", str(RATE * SECONDS), "--rate", str(RATE)]
        producer = workers.start("producer", "produce", *load, "--entities", "5000")
        wait_for(
            f"predictions on all {PARTITIONS} partitions",
            lambda: len({r.partition for r in list(preds.records)}) == PARTITIONS,
            90,
        )

        def sharing() -> bool:  # the last rebalance gave each worker some partitions
            held = [set(dep.assignments(n)[-1]) if dep.assignments(n) else set() for n in names]
            return all(held) and set().union(*held) == set(range(PARTITIONS))

        wait_for("the four workers to share the partitions", sharing, 90, 0.5)
        held = {n: dep.assignments(n)[-1] for n in names}

        def batches_of(name: str) -> int:
            return int(((workers.health(name) or {}).get("scoring") or {}).get("batches") or 0)

        wait_for("every worker scoring", lambda: all(map(batches_of, names)), 30, 0.5)
        batches = {n: batches_of(n) for n in names}
        victim = names[0]
        killed_at = time.time()
        workers.procs[victim].kill()  # SIGKILL: no commit, no leave-group
        wait_for(
            f"all {PARTITIONS} partitions predicted again",
            lambda: preds.partitions_since(killed_at) == set(range(PARTITIONS)),
            60,
            0.05,
        )
        takeover_s = time.time() - killed_at
        survivors = names[1:]
        taken = {n: dep.assignments(n)[-1] for n in survivors}
        wait_for("the producer done", lambda: producer.poll() is not None, 240)
        said = workers.log("producer")
        assert producer.returncode == 0, said
        counts = re.search(r"sent (\d+) events", said)
        assert counts is not None, said
        sent = int(counts[1])
        ids = [f"ev-{i}" for i in range(sent)]
        wait_for("every event predicted", lambda: not preds.missing(ids), 180)
        settle(bg, dep, preds)
        alive = [n for n in survivors if workers.procs[n].poll() is None]
    preds.stop()
    lost = len(preds.missing(ids))
    figures = {
        "workers": WORKERS,
        "partitions": PARTITIONS,
        "rate_per_s": RATE,
        "sent": sent,
        "lost": lost,
        "scored_again_after_the_kill": preds.duplicates(),
        "held_before": {n: len(p) for n, p in held.items()},
        "batches_before_the_kill": batches,
        "held_after": {n: len(p) for n, p in taken.items()},
        "takeover_s": takeover_s,
        "takeover_target_s": TAKEOVER_TARGET_S,
        "runtime_s": time.monotonic() - started,
    }
    scenario_report.record("scale-out: one of four workers SIGKILLed", **figures)
    assert all(batches.values()), "a worker held partitions but scored nothing"
    assert alive == survivors, "a surviving worker died"
    assert set().union(*map(set, taken.values())) == set(range(PARTITIONS)), taken
    assert lost == 0, f"{lost} events never predicted"
    assert takeover_s <= TAKEOVER_TARGET_S, figures
