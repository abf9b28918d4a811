"""The monitoring path stays within a few microseconds per event (loose regression guard)."""

from __future__ import annotations

import time

import numpy as np

from monitoring import ModelMonitor
from tests.unit.monitoring.conftest import BATCH, Stream


def test_observe_batch_and_labels_cost_a_few_microseconds_per_event(hyperplane: Stream) -> None:
    x, p, pred = hyperplane.scored()
    y = hyperplane.live.y
    mon = ModelMonitor(hyperplane.card)
    batches = list(hyperplane.batches(x[:20_480]))
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        for s, num, cat in batches:
            sl = slice(s, s + BATCH)
            mon.observe_batch(num, cat, p[sl], "v1", "champion")
            mon.observe_labels(y[sl], pred[sl], p[sl], None, "v1", "champion")
        best = min(best, (time.perf_counter() - start) / 20_480 * 1e6)
    # ~3 µs/event measured on a 2-core machine with 20 features; the bound leaves room for
    # slow CI hosts and only catches an accidental per-value Python loop.
    assert best < 25.0
