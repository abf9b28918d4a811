"""Metrics, calibration error and stratified cross-validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.evaluation import calibration_error, cross_validate, holdout_metrics, score_metrics
from models.training import build_pipeline


def test_score_metrics_by_hand() -> None:
    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    m = score_metrics(y, p)
    # predictions 1 1 0 1 0 0: TP 2, FP 1, FN 1, TN 2
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(8 / 9)  # 8 of 9 positive/negative pairs ordered
    expected_ll = -np.mean(np.log([0.9, 0.8, 0.3, 0.4, 0.8, 0.9]))
    assert m["log_loss"] == pytest.approx(expected_ll)


def test_holdout_confusion_matrix_and_calibration() -> None:
    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    h = holdout_metrics(y, p)
    assert h.confusion_matrix == [[2, 1], [1, 2]]
    assert h.rows == 6
    assert h.calibration_error == pytest.approx(calibration_error(y, p))


def test_holdout_metrics_with_given_labels() -> None:
    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    h = holdout_metrics(y, p, labels=np.array([1, 1, 1, 0, 0, 0]))
    assert h.confusion_matrix == [[3, 0], [0, 3]]
    assert h.f1 == 1.0
    assert h.log_loss == pytest.approx(holdout_metrics(y, p).log_loss)


def test_calibration_error_by_hand() -> None:
    # Bin [0.2, 0.3): two rows at 0.25, one positive -> |0.5 - 0.25| over 2 rows;
    # bin [0.9, 1.0]: two rows at 0.95, both positive -> |1 - 0.95| over 2 rows.
    y = np.array([0, 1, 1, 1])
    p = np.array([0.25, 0.25, 0.95, 0.95])
    assert calibration_error(y, p) == pytest.approx((2 * 0.25 + 2 * 0.05) / 4)


def test_cross_validation_summary_and_out_of_fold_scores() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2)).astype(np.float32).astype(np.float64)
    y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(np.int64)
    messages: list[str] = []
    summary, oof = cross_validate(
        build_pipeline("logreg", 2, 0),
        x,
        y,
        np.ones(400),
        folds=4,
        seed=1,
        progress=messages.append,
    )
    assert messages == [f"cross-validation fold {i}/4" for i in range(1, 5)]
    assert set(summary) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert summary["roc_auc"].mean > 0.9
    assert 0 < summary["accuracy"].std < 0.1
    assert oof.shape == (400,) and ((oof > 0) & (oof < 1)).all()
    assert score_metrics(y, oof)["accuracy"] == pytest.approx(summary["accuracy"].mean, abs=0.02)


def test_auc_undefined_with_one_class() -> None:
    assert math.isnan(score_metrics(np.array([1, 1]), np.array([0.6, 0.7]))["roc_auc"])
    assert holdout_metrics(np.array([1, 1]), np.array([0.6, 0.7])).roc_auc is None
