"""Stratified cross-validation and holdout evaluation of a binary classifier."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from models.card import (
    CalibrationCurve,
    HoldoutCurves,
    HoldoutMetrics,
    MetricSummary,
    RocCurve,
)

CV_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
Progress = Callable[[str], None]


def score_metrics(y: NDArray[np.int64], p_positive: NDArray[np.floating]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (at 0.5), ROC AUC and log loss of positive-class scores.

    Examples
    --------
    >>> m = score_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    >>> m["accuracy"], m["f1"], m["roc_auc"]
    (0.5, 0.5, 0.75)
    """
    pred = (p_positive > 0.5).astype(np.int64)
    p = np.clip(np.asarray(p_positive, dtype=np.float64), 1e-15, 1 - 1e-15)
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
    }


def calibration_error(
    y: NDArray[np.int64], p_positive: NDArray[np.floating], bins: int = 10
) -> float:
    """Expected calibration error over ``bins`` equal-width bins of the positive-class score.

    Examples
    --------
    >>> calibration_error(np.array([0, 1, 1, 0]), np.array([0.0, 1.0, 1.0, 0.0]))
    0.0
    >>> round(calibration_error(np.array([0, 0, 0, 0]), np.array([0.8, 0.8, 0.8, 0.8])), 3)
    0.8
    """
    p = np.asarray(p_positive, dtype=np.float64)
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() * abs(float(y[mask].mean()) - float(p[mask].mean()))
    return float(total / max(p.shape[0], 1))


def holdout_metrics(
    y: NDArray[np.int64],
    p_positive: NDArray[np.floating],
    labels: NDArray[np.int64] | None = None,
) -> HoldoutMetrics:
    """Holdout metrics, confusion matrix ``[[tn, fp], [fn, tp]]`` and calibration error.

    Label metrics use ``labels`` when given (e.g. after per-group thresholds), else
    ``p_positive > 0.5``; ROC AUC, log loss and calibration always use the scores.
    """
    m = score_metrics(y, p_positive)
    pred = (p_positive > 0.5).astype(np.int64) if labels is None else labels
    cm = confusion_matrix(y, pred, labels=[0, 1])
    auc = m["roc_auc"]
    return HoldoutMetrics(
        rows=int(y.shape[0]),
        accuracy=float(accuracy_score(y, pred)),
        precision=float(precision_score(y, pred, zero_division=0)),
        recall=float(recall_score(y, pred, zero_division=0)),
        f1=float(f1_score(y, pred, zero_division=0)),
        roc_auc=None if np.isnan(auc) else auc,
        log_loss=m["log_loss"],
        confusion_matrix=[[int(v) for v in row] for row in cm.tolist()],
        calibration_error=calibration_error(y, p_positive),
    )


def _r(value: float) -> float:
    # four decimals: plenty for a plot, and the card stays small
    return round(float(value), 4)


def holdout_curves(
    y: NDArray[np.int64], p_positive: NDArray[np.floating], *, max_points: int = 100, bins: int = 10
) -> HoldoutCurves:
    """ROC points (at most ``max_points``) and reliability bins of holdout scores, for plots.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 1000)
    >>> p = np.clip(0.3 * y + 0.7 * rng.random(1000), 0, 1)
    >>> curves = holdout_curves(y, p, max_points=20, bins=5)
    >>> len(curves.roc.fpr) <= 20, curves.roc.fpr[0], curves.roc.tpr[-1]
    (True, 0.0, 1.0)
    >>> curves.calibration.bin_edges, sum(curves.calibration.counts)
    ([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], 1000)
    """
    p = np.asarray(p_positive, dtype=np.float64)
    roc = None
    if len(np.unique(y)) == 2:
        fpr, tpr, _ = roc_curve(y, p, drop_intermediate=True)
        if fpr.shape[0] > max_points:
            # evenly spaced along the curve; both ends are kept
            keep = np.unique(np.linspace(0, fpr.shape[0] - 1, max_points).round().astype(int))
            fpr, tpr = fpr[keep], tpr[keep]
        roc = RocCurve(fpr=[_r(v) for v in fpr], tpr=[_r(v) for v in tpr])
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(idx, minlength=bins)
    sums = np.bincount(idx, weights=p, minlength=bins)
    positives = np.bincount(idx, weights=y.astype(np.float64), minlength=bins)
    calibration = CalibrationCurve(
        bin_edges=[_r(b / bins) for b in range(bins + 1)],
        counts=[int(c) for c in counts],
        mean_predicted=[_r(s / c) if c else None for s, c in zip(sums, counts, strict=True)],
        fraction_positive=[
            _r(k / c) if c else None for k, c in zip(positives, counts, strict=True)
        ],
    )
    return HoldoutCurves(roc=roc, calibration=calibration)


def cross_validate(
    pipeline: Pipeline,
    x: NDArray[np.generic],
    y: NDArray[np.int64],
    sample_weight: NDArray[np.float64],
    *,
    folds: int = 5,
    seed: int = 42,
    progress: Progress | None = None,
) -> tuple[dict[str, MetricSummary], NDArray[np.float64]]:
    """Stratified k-fold CV of a fresh clone of ``pipeline`` per fold.

    Parameters
    ----------
    pipeline : Pipeline
        Unfitted pipeline whose last step is named ``clf``.
    x, y : ndarray
        Features and 0/1 labels.
    sample_weight : ndarray
        Training weights (class balance × reweighing), passed to ``clf``.
    folds : int
        Number of folds.
    seed : int
        Shuffle seed.
    progress : callable or None
        Called with a short message before each fold.

    Returns
    -------
    summary : dict of str to MetricSummary
        Mean and std over folds of every metric in :data:`CV_METRICS`.
    oof : ndarray of float64, shape (n,)
        Out-of-fold positive-class probabilities (validation scores for threshold choice).
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    per_metric: dict[str, list[float]] = {k: [] for k in CV_METRICS}
    oof = np.zeros(y.shape[0], dtype=np.float64)
    for i, (tr, te) in enumerate(splitter.split(np.zeros(y.shape[0]), y), start=1):
        if progress is not None:
            progress(f"cross-validation fold {i}/{folds}")
        model = clone(pipeline)
        model.fit(x[tr], y[tr], clf__sample_weight=sample_weight[tr])
        p = model.predict_proba(x[te])[:, 1]
        oof[te] = p
        for k, v in score_metrics(y[te], p).items():
            per_metric[k].append(v)
    summary = {
        k: MetricSummary(mean=float(np.mean(v)), std=float(np.std(v)))
        for k, v in per_metric.items()
    }
    return summary, oof


__all__ = [
    "CV_METRICS",
    "calibration_error",
    "cross_validate",
    "holdout_curves",
    "holdout_metrics",
    "score_metrics",
]
