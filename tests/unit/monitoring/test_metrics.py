"""Vectorised online metrics agree with scikit-learn and with the models' fairness snapshot."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from models.fairness import fairness_snapshot
from monitoring.metrics import (
    ClassificationCounts,
    GroupCounts,
    RollingBuffer,
    classification_summary,
    group_summary,
)


def _pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int64)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.0, 1.0)
    return y, (p > 0.5).astype(np.int64), p


def test_cumulative_counts_match_sklearn_batch_by_batch() -> None:
    y, yp, p = _pairs(5000)
    counts = ClassificationCounts()
    for s in range(0, 5000, 256):
        counts.add(y[s : s + 256], yp[s : s + 256], p[s : s + 256])
    m = counts.summary()
    assert m["count"] == 5000
    assert m["accuracy"] == pytest.approx(accuracy_score(y, yp))
    assert m["precision"] == pytest.approx(precision_score(y, yp))
    assert m["recall"] == pytest.approx(recall_score(y, yp))
    assert m["f1"] == pytest.approx(f1_score(y, yp))
    assert m["log_loss"] == pytest.approx(log_loss(y, p), rel=1e-6)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=2e-3)
    twin = ClassificationCounts()
    twin.restore(orjson.loads(orjson.dumps(counts.snapshot())))
    assert twin.summary() == m


def test_rolling_buffer_keeps_the_last_events_in_order() -> None:
    y, yp, p = _pairs(2500, seed=1)
    codes = np.arange(2500) % 3
    buf = RollingBuffer(1000)
    for s in range(0, 2500, 300):
        buf.add(y[s : s + 300], yp[s : s + 300], p[s : s + 300], codes[s : s + 300])
    by, byp, bp, bc = buf.ordered()
    assert by.tolist() == y[-1000:].tolist()
    assert bp.tolist() == p[-1000:].tolist()
    assert bc.tolist() == codes[-1000:].tolist()
    m = classification_summary(by, byp, bp)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y[-1000:], p[-1000:]))
    assert m["f1"] == pytest.approx(f1_score(y[-1000:], yp[-1000:]))
    twin = RollingBuffer(1000)
    twin.restore(orjson.loads(orjson.dumps(buf.snapshot())))
    assert [a.tolist() for a in twin.ordered()] == [a.tolist() for a in buf.ordered()]


def test_group_metrics_match_the_models_fairness_snapshot() -> None:
    y, yp, _ = _pairs(3000, seed=2)
    names = ["a", "b", "c"]
    codes = np.random.default_rng(3).integers(0, 3, 3000)
    ours = group_summary(codes, y, yp, names, min_group=1)
    ref = fairness_snapshot(y, yp, np.array(names, dtype=object)[codes])
    assert ours["dp_gap"] == pytest.approx(ref.demographic_parity_difference)
    assert ours["eo_gap"] == pytest.approx(ref.equalized_odds_difference)
    for g in names:
        assert ours["groups"][g]["tpr"] == pytest.approx(ref.groups[g].tpr)
        assert ours["groups"][g]["fpr"] == pytest.approx(ref.groups[g].fpr)
    cum = GroupCounts()
    for s in range(0, 3000, 500):
        cum.add(codes[s : s + 500], y[s : s + 500], yp[s : s + 500])
    assert cum.summary(names, 1) == ours


def test_undefined_values_are_none_and_small_groups_are_left_out() -> None:
    y = np.zeros(10, dtype=np.int64)
    m = classification_summary(y, y, np.full(10, 0.1))
    assert m["roc_auc"] is None and m["precision"] is None and m["accuracy"] == 1.0
    s = group_summary(np.array([0] * 8 + [1] * 2), y, y, ["big", "small"], min_group=5)
    assert s["dp_gap"] is None
    assert s["groups"]["small"]["count"] == 2
