"""Hostile input and a soak (issue #9, scenarios 5 and 6), on a real broker and a real Redis.

- hostile input: 30,000 malformed records of every kind (``hostile.py``) mixed with 30,000
  valid events (the issue's floor is 10,000 of each): each malformed one lands in the
  dead-letter topic with its reason, each valid one is predicted, the worker lives on; its
  throughput against clean input is recorded (the "within 2x of clean input" target is the
  benchmark's: ``bench/components.py``, a batch half malformed against a clean one);
- soak: a steady stream for ``DRIFTLINE_SOAK_S`` seconds (60 by default, the CI mode):
  resident memory flat after the warm-up, the lag back to zero once the stream ends (its
  largest value is recorded), nothing lost.

The long soak is the same test with a longer duration, at half the worker's capacity
(measured at the start of the run)::

    DRIFTLINE_SOAK_S=600 pytest tests/reliability/test_load.py -k soak

``DRIFTLINE_SOAK_RATE`` (events/s) pins the rate instead: by default it is 500/s up to two
minutes of soak, half the measured capacity beyond.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.contracts.messages import DeadLetter
from streams.contracts.names import scorer_group
from tests.conftest import Endpoints
from tests.kit import (
    Background,
    Collector,
    Deployment,
    LagProbe,
    Value,
    Workers,
    agrawal_events,
    produce,
    settle,
)
from tests.reliability.conftest import ScenarioReport
from tests.reliability.harness import cpu_s, rss_kib, stamped
from tests.reliability.hostile import Hostile, HostileEvents
from tests.waiting import wait_for

SOAK_S = float(os.environ.get("DRIFTLINE_SOAK_S") or 60)
SOAK_RATE = os.environ.get("DRIFTLINE_SOAK_RATE")
# Three times the floor of 10,000: at the floor each drain took under half a CPU
# second, short enough that the worker's start-up work and the clock's 10 ms ticks moved
# the ratio of the two rates from 1.2 to 2.1 between runs of the same code.
MALFORMED = 30_000


def _rate(stamps_ms: list[int]) -> float:
    """Outputs per second between the first output and the last (worker timestamps)."""
    first, last = min(stamps_ms), max(stamps_ms)
    return sum(1 for s in stamps_ms if s > first) / max((last - first) / 1000, 1e-3)


def _drain(pid: int, outputs: Callable[[], int], total: int) -> float:
    """Wait until a worker has turned a backlog of ``total`` records into outputs; return
    the records it handled per CPU second meanwhile (from its first output on)."""
    wait_for("the first output", lambda: outputs() > 0, 120, 0.01)
    cpu0, n0 = cpu_s(pid), outputs()
    wait_for(f"{total} outputs", lambda: outputs() >= total, 120, 0.01)
    return (outputs() - n0) / max(cpu_s(pid) - cpu0, 1e-3)


# -- 5. hostile input ------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_hostile_input_goes_to_the_dlq_with_reasons_and_the_rest_is_scored(
    services: Endpoints,
    unique: str,
    tmp_path: Path,
    bg: Background,
    scenario_report: ScenarioReport,
) -> None:
    """First a clean backlog of 2 x ``MALFORMED`` valid events, then ``MALFORMED`` malformed
    records shuffled into as many valid events, each drained by a fresh worker: every malformed
    record is dead-lettered with an error and its type, and maps back to what was sent (its
    partition, offset, size and bytes); every valid event is predicted; nothing else is; the
    worker is alive and healthy.

    Records per CPU second of the worker, against the clean run's, are recorded (on a shared
    2-core machine the wall clock rate of the same clean backlog varied 2x between runs with
    the neighbours' load), and the wall clock rates (first output to last) too: figures, not
    checks; the benchmark holds the target."""
    started = time.monotonic()
    kafka = services.kafka
    dep = Deployment.up(services, unique, tmp_path, champion="logreg")
    valid = agrawal_events(3 * MALFORMED, prefix="ok", entities=2000)
    clean, good = valid[: 2 * MALFORMED], valid[2 * MALFORMED :]
    hostile = HostileEvents(valid[:1000]).build(MALFORMED)
    mixed: list[dict[str, Any] | Hostile] = [*good, *hostile]
    random.Random(5).shuffle(mixed)
    preds = Collector(kafka, dep.topics["predictions"])
    dead = Collector(kafka, dep.topics["dlq"], keep="docs")
    bg.spawn(preds.run())
    bg.spawn(dead.run())
    clean_ids = {e["event_id"] for e in clean}
    good_ids = {e["event_id"] for e in good}
    with Workers(dep) as workers:
        bg.run(produce(kafka, dep.topics["events"], clean))
        worker = workers.start("clean")
        clean_cpu = _drain(worker.pid, lambda: preds.count, len(clean))
        workers.stop("clean")
        clean_rate = _rate([r.ts_ms for r in preds.records if r.event_id in clean_ids])

        values: list[Value] = [m if isinstance(m, dict) else (m.key, m.value) for m in mixed]
        sent = bg.run(produce(kafka, dep.topics["events"], values), timeout=180)
        assert sent.count == len(mixed)
        done = preds.count  # the clean run's outputs
        worker = workers.start("hostile")
        hostile_cpu = _drain(worker.pid, lambda: preds.count + dead.count - done, len(mixed))
        wait_for("the valid events predicted", lambda: not preds.missing(good_ids), 120)
        wait_for(f"{MALFORMED:,} dead letters", lambda: dead.count >= len(hostile), 120)
        settle(bg, dep, preds, dead)  # late duplicates (and strays) still count
        health = workers.health("hostile") or {}
        alive = worker.poll() is None
        log = workers.log("hostile")
        workers.stop("hostile")
    preds.stop()
    dead.stop()

    # every dead letter maps to a malformed record that was sent, with its reason
    where = {pos: m for pos, m in zip(sent.positions, mixed, strict=True)}
    letters = [DeadLetter.model_validate(d.doc) for d in dead.records]
    by_position = Counter((d.partition, d.offset) for d in letters)
    malformed = {pos for pos, m in where.items() if isinstance(m, Hostile)}
    kinds: Counter[str] = Counter()
    for d in letters:
        origin = where.get((d.partition, d.offset))
        assert d.topic == dep.topics["events"], d
        assert isinstance(origin, Hostile), f"a valid event was dead-lettered: {d}"
        raw = origin.value or b""
        assert d.raw_size == len(raw) and d.raw == raw[:16384].decode("utf-8", "replace"), d
        assert d.error and d.error_type, d
        kinds[f"{origin.kind}:{d.error_type}"] += 1
        if origin.kind == "oversized":
            assert d.error_type == "OversizedEvent", d
    missing_letters = malformed - set(by_position)
    valid_ids = clean_ids | good_ids
    hostile_preds = [r for r in preds.records if r.event_id not in valid_ids]
    stamps = [r.ts_ms for r in preds.records if r.event_id in good_ids]
    stamps += [d.ts_ms for d in dead.records]
    hostile_rate = _rate(stamps)
    lost = preds.missing(valid_ids)
    scenario_report.record(
        "5 hostile input",
        sent=len(clean) + len(mixed),
        malformed=len(hostile),
        lost=len(lost),
        duplicated=preds.duplicates(),
        dlq_missing=len(missing_letters),
        dlq_duplicated=sum(n - 1 for n in by_position.values()),
        megabyte_values=sum(
            1 for h in hostile if h.value is not None and len(h.value) >= 1_000_000
        ),
        clean_rate_per_s=clean_rate,
        hostile_rate_per_s=hostile_rate,
        clean_per_cpu_s=clean_cpu,
        hostile_per_cpu_s=hostile_cpu,
        slowdown=clean_rate / hostile_rate,
        slowdown_per_cpu_s=clean_cpu / hostile_cpu,
        error_types=dict(Counter(d.error_type for d in letters)),
        runtime_s=time.monotonic() - started,
    )
    assert alive, log
    assert health.get("live") and health.get("ready"), health
    assert not missing_letters, f"{len(missing_letters)} malformed records not dead-lettered"
    assert not hostile_preds, f"malformed records predicted: {hostile_preds[:3]}"
    assert not lost, f"{len(lost)} valid events never predicted"


# -- 6. soak ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(SOAK_S * 2 + 300)
def test_soak_memory_flat_and_lag_bounded(
    services: Endpoints,
    unique: str,
    tmp_path: Path,
    bg: Background,
    scenario_report: ScenarioReport,
) -> None:
    """A worker drains a backlog (10,000 events; 60,000 in a long soak: its capacity, and a
    warm-up) and commits it, then takes a steady stream for ``SOAK_S`` seconds: after the
    first quarter (the warm-up), resident memory (VmRSS) grows by at most 10 %; the group's
    lag (committed offsets against end offsets) is back to zero soon after the stream ends
    (its largest value and how long it took are recorded, not checked: a lag is a latency,
    the benchmark's to measure); every event is predicted."""
    started = time.monotonic()
    kafka = services.kafka
    dep = Deployment.up(services, unique, tmp_path, champion="logreg")
    pool = agrawal_events(20_000, prefix="pool", entities=2000)
    preds = Collector(kafka, dep.topics["predictions"], keep="numbered")
    bg.spawn(preds.run())
    probe = LagProbe(kafka, scorer_group(dep.model), dep.topics["events"])
    backlog = 10_000 if SOAK_S <= 120 else 60_000
    rss: list[tuple[float, int]] = []
    lags: list[int] = []
    with Workers(dep) as workers:
        bg.run(produce(kafka, dep.topics["events"], stamped(pool, "soak", backlog)))
        worker = workers.start("soak")
        wait_for("the first prediction", lambda: preds.count > 0, 120, 0.02)
        drain_s = wait_for("the backlog drained", lambda: preds.count >= backlog, 120, 0.02)
        capacity = backlog / max(drain_s, 1e-3)
        # The backlog's last acknowledged offsets are committed soon after it drained; the
        # lag bound is the steady stream's, so it is sampled from here on.
        bg.run(probe.start())
        try:
            committed_s = wait_for(
                "the backlog committed", lambda: bg.run(probe.lag()) == 0, 30, 0.02
            )
            # CI: a modest fixed rate; a long soak: half the capacity (or the rate asked for)
            default = 500.0 if SOAK_S <= 120 else capacity / 2
            rate = float(SOAK_RATE) if SOAK_RATE else default
            total = int(rate * SOAK_S)
            events = stamped(pool, "soak", total, backlog)
            sending = bg.spawn(produce(kafka, dep.topics["events"], events, rate=rate))
            soak_start = time.monotonic()
            while not sending.done():
                assert worker.poll() is None, workers.log("soak")
                rss.append((time.monotonic() - soak_start, rss_kib(worker.pid)))
                lags.append(bg.run(probe.lag()))
                time.sleep(1.0)
            sent = sending.result()
            settle_s = wait_for("the lag back to zero", lambda: bg.run(probe.lag()) == 0, 60, 0.5)
        finally:
            bg.run(probe.close())
        wait_for("every event predicted", lambda: not preds.missing_numbered(backlog + total), 60)
        alive = worker.poll() is None
        log = workers.log("soak")
    preds.stop()
    duration = rss[-1][0]
    warm = duration / 4
    baseline = statistics.median(k for t, k in rss if warm <= t <= warm + 5)
    final = statistics.median(k for t, k in rss if t >= duration - 5)
    growth = (final - baseline) / baseline
    lost = preds.missing_numbered(backlog + total)
    scenario_report.record(
        "6 soak",
        sent=backlog + sent.count,
        lost=lost,
        duplicated=preds.duplicates(),
        soak_s=duration,
        rate_per_s=rate,
        sent_per_s=sent.count / max(sent.finished_at - sent.started_at, 1e-3),
        capacity_per_s=capacity,
        backlog_committed_s=committed_s,
        rss_start_mib=rss[0][1] / 1024,
        rss_baseline_mib=baseline / 1024,
        rss_final_mib=final / 1024,
        rss_peak_mib=max(k for _, k in rss) / 1024,
        rss_growth_pct=100 * growth,
        max_lag=max(lags),
        mean_lag=statistics.fmean(lags),
        lag_to_zero_s=settle_s,
        runtime_s=time.monotonic() - started,
    )
    assert alive, log
    assert sent.count == total
    assert not lost, f"{lost} events never predicted"
    assert growth <= 0.10, f"RSS grew {100 * growth:.1f} % after the warm-up: {rss}"
