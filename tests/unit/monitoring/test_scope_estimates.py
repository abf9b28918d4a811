"""The label-free estimate in the monitors: from summaries, per scope, in health and findings."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray

from monitoring.config import MonitorConfig
from monitoring.model_monitor import ModelMonitor
from monitoring.summariser import Summariser
from monitoring.summary import BatchSummary, merge_summaries

from .conftest import BATCH, Stream


def _unsure(rows: int, seed: int = 0) -> NDArray[np.float64]:
    """Scores that crowd the decision boundary: any calibrated reading of them is a coin."""
    return np.random.default_rng(seed).uniform(0.42, 0.58, rows)


def test_scores_at_the_boundary_raise_an_estimated_performance_finding_before_any_label(
    hyperplane: Stream,
) -> None:
    card = hyperplane.card
    mon = ModelMonitor(card, MonitorConfig(window=2000, min_labels=500))
    x, p, _ = hyperplane.scored()
    found = []
    for s, num, cat in hyperplane.batches(x[:2048]):
        found += mon.observe_batch(num, cat, p[s : s + BATCH], card.version, "champion")
    assert [f for f in found if f.kind == "performance"] == []  # the model's own scores
    calm = mon.metrics()[f"{card.version}/champion"]["estimated"]
    assert calm["events"] == 2048 and calm["f1"]["high"] >= card.metrics.holdout.f1 - 0.1
    unsure = _unsure(2048)
    for s, num, cat in hyperplane.batches(x[2048:4096]):
        found += mon.observe_batch(num, cat, unsure[s : s + BATCH], card.version, "champion")
    perf = [f for f in found if f.kind == "performance"]
    assert perf and {f.detector for f in perf} == {"estimated_f1_drop"}
    first = perf[0]
    assert first.details["estimated"] is True
    assert (first.details["version"], first.details["variant"]) == (card.version, "champion")
    assert first.statistic < first.threshold == pytest.approx(card.metrics.holdout.f1 - 0.1)
    assert mon.labels == 0
    health = mon.health()
    assert health["status"] == "alerting"
    # beside the score's own drift, which the same scores show
    assert {a["detector"] for a in health["active"]} == {"estimated_f1_drop", "cusum"}
    # a scope with no label yet has only its estimate
    assert set(health["metrics"][f"{card.version}/champion"]) == {"estimated"}


def test_summaries_from_several_workers_give_the_estimate_of_one(hyperplane: Stream) -> None:
    card = hyperplane.card
    x, p, pred = hyperplane.scored()
    one, four = (ModelMonitor(card, MonitorConfig(window=4000)) for _ in range(2))
    make = Summariser(card).summarise  # the scorer's labels, as a worker has them
    summaries = [
        make(num, cat, p[s : s + BATCH], card.version, "champion", None, pred[s : s + BATCH])
        for s, num, cat in hyperplane.batches(x[:4096])
    ]
    for summary in summaries:
        one.observe_summary(summary)
    for k in range(0, len(summaries), 4):  # four workers' summaries of a round, merged
        (merged,) = merge_summaries(summaries[k : k + 4])
        four.observe_summary(BatchSummary.from_json(orjson.loads(orjson.dumps(merged.to_json()))))
    a = one.metrics()[f"{card.version}/champion"]["estimated"]
    b = four.metrics()[f"{card.version}/champion"]["estimated"]
    assert a["events"] == b["events"] == 4096
    for name in ("accuracy", "precision", "recall", "f1"):
        assert a[name] == pytest.approx(b[name], rel=1e-12)


def test_a_summary_without_expected_sums_is_monitored_without_an_estimate(
    hyperplane: Stream,
) -> None:
    card = hyperplane.card
    x, p, _ = hyperplane.scored()
    mon = ModelMonitor(card)
    (_, num, cat), *_ = hyperplane.batches(x[:BATCH])
    doc = mon.summarise(num, cat, p[:BATCH], card.version, "champion").to_json()
    del doc["expected"]  # as a worker from before the estimate sends it
    old = BatchSummary.from_json(doc)
    assert old.expected is None
    mon.observe_summary(old)
    assert mon.events == BATCH and mon.metrics() == {}
    new = mon.summarise(num, cat, p[:BATCH], card.version, "champion")
    assert old.merge(new).expected == new.expected
