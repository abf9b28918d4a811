"""What labelled events tell about one (version, variant): metrics, concept drift, fairness.

:class:`LabelMonitor` keeps cumulative and rolling metrics (see :mod:`monitoring.metrics`),
runs the concept-drift detectors on the 0/1 error stream (one River update per labelled
event, well under a microsecond each), and checks, once at least ``config.min_labels`` events
are in the rolling window:

- performance: rolling F1 (or accuracy) below the card's holdout figure minus the margin. The
  figure is ``metrics.holdout_served`` when the card has per-group thresholds (labels were
  decided with them), else ``metrics.holdout``;
- fairness: the rolling demographic-parity or equalized-odds gap above its threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.card import ModelCard
from monitoring.config import MonitorConfig
from monitoring.detectors import ChangeDetector
from monitoring.drift import Check
from monitoring.findings import Finding
from monitoring.metrics import (
    ClassificationCounts,
    GroupCounts,
    RollingBuffer,
    classification_summary,
    group_summary,
)
from monitoring.rate_drift import ErrorDrift
from monitoring.sequential_drift import calibrate


def concept_detector(name: str, config: MonitorConfig) -> ChangeDetector:
    """A fresh River detector for the error stream (``cusum`` is :class:`ErrorDrift`)."""
    params: dict[str, float] = {}
    if name == "adwin":
        params = {"delta": config.adwin_delta}
    elif name == "ddm":
        params = {
            "drift_threshold": config.ddm_drift_threshold,
            "warm_start": float(config.ddm_warm_start),
        }
    return ChangeDetector(name, params, replay_limit=config.error_replay_limit)


def reference_figure(card: ModelCard, metric: str) -> float:
    """The card's holdout value of ``metric`` (served thresholds when the card has them)."""
    holdout = card.metrics.holdout_served or card.metrics.holdout
    return float(getattr(holdout, metric))


class LabelMonitor:
    """Online metrics, concept drift, performance and fairness of one (version, variant).

    Parameters
    ----------
    card : ModelCard
        The card of this version (performance reference, sensitive attribute).
    config : MonitorConfig
        Windows and thresholds.
    """

    def __init__(self, card: ModelCard, config: MonitorConfig) -> None:
        self.config = config
        self.reference = reference_figure(card, config.performance_metric)
        self.sensitive = None if card.sensitive is None else card.sensitive.name
        self.counts = ClassificationCounts()
        self.groups = GroupCounts()
        self.rolling = RollingBuffer(config.rolling_window)
        self.concept = {
            n: concept_detector(n, config) for n in config.concept_detectors if n != "cusum"
        }
        # The holdout's error rate is this version's reference; the threshold is the model's.
        self.cusum = None
        if "cusum" in config.concept_detectors:
            holdout = card.metrics.holdout_served or card.metrics.holdout
            h = calibrate(card, config).labels
            self.cusum = ErrorDrift(1.0 - holdout.accuracy, holdout.rows, h)
        self.labels = 0

    def observe(
        self,
        y: NDArray[np.int64],
        y_pred: NDArray[np.int64],
        p: NDArray[np.float64],
        codes: NDArray[np.int64],
        names: list[str],
        details: dict[str, Any],
    ) -> list[Check]:
        """Count one batch of labelled events and run the checks."""
        self.counts.add(y, y_pred, p)
        self.groups.add(codes, y, y_pred)
        self.rolling.add(y, y_pred, p, codes)
        self.labels += int(y.shape[0])
        details = {**details, "labels": self.labels}
        checks = self._concept(y != y_pred, details)
        if self.rolling.size >= self.config.min_labels:
            checks += self._performance(details)
            if self.sensitive is not None:
                checks += self._fairness(names, details)
        return checks

    def _concept(self, errors: NDArray[np.bool_], details: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        hit = None if self.cusum is None else self.cusum.update(errors)
        if hit is not None and self.cusum is not None:
            rate = float(np.mean(errors))
            extra = {**details, **hit, "error_rate": rate, "batch": int(errors.size)}
            f = Finding("concept_drift", "cusum", hit["statistic"], self.cusum.bank.h, None, extra)
            checks.append(("concept_drift||cusum", f, False))
        if not self.concept:
            return checks
        values = errors.astype(np.float64).tolist()
        for name, det in self.concept.items():
            hits = det.update_many(values)
            if not hits:
                continue
            change = det.last_change
            if name == "adwin" and change.get("after", 1.0) <= change.get("before", 0.0):
                continue  # the error rate fell: the model got better, nothing to alert
            rate = change.get("after", change["mean_since_reset"])
            extra = {**details, **change, "error_rate": rate, "detections": len(hits)}
            threshold = (
                self.config.adwin_delta if name == "adwin" else self.config.ddm_drift_threshold
            )
            f = Finding("concept_drift", name, float(rate), threshold, None, extra)
            checks.append((f"concept_drift||{name}", f, False))
        return checks

    def _performance(self, details: dict[str, Any]) -> list[Check]:
        metric = self.config.performance_metric
        y, yp, _, _ = self.rolling.ordered()
        value = classification_summary_fast(y, yp, metric)
        limit = self.reference - self.config.performance_margin
        name = f"{metric}_drop"
        if value is None or value >= limit:
            return [(f"performance||{name}", None, True)]
        extra = {**details, "reference": self.reference, "rolling_window": int(y.size)}
        return [
            (f"performance||{name}", Finding("performance", name, value, limit, None, extra), True)
        ]

    def _fairness(self, names: list[str], details: dict[str, Any]) -> list[Check]:
        y, yp, _, codes = self.rolling.ordered()
        summary = group_summary(codes, y, yp, names, self.config.fairness_min_group)
        thr = self.config.fairness_gap_threshold
        checks: list[Check] = []
        for detector in ("dp_gap", "eo_gap"):
            gap = summary[detector]
            key = f"fairness|{self.sensitive}|{detector}"
            if gap is None or gap <= thr:
                checks.append((key, None, True))
                continue
            extra = {**details, "groups": summary["groups"], "rolling_window": int(y.size)}
            checks.append(
                (key, Finding("fairness", detector, gap, thr, self.sensitive, extra), True)
            )
        return checks

    def metrics(self, names: list[str]) -> dict[str, Any]:
        """Cumulative and rolling metrics, group metrics and the label count."""
        y, yp, p, codes = self.rolling.ordered()
        min_group = self.config.fairness_min_group
        return {
            "cumulative": self.counts.summary(),
            "rolling": classification_summary(y, yp, p),
            "groups": {
                "cumulative": self.groups.summary(names, min_group),
                "rolling": group_summary(codes, y, yp, names, min_group),
            },
            "labels": self.labels,
        }

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "labels": self.labels,
            "counts": self.counts.snapshot(),
            "groups": self.groups.snapshot(),
            "rolling": self.rolling.snapshot(),
            "concept": {
                **{n: d.snapshot() for n, d in self.concept.items()},
                **({} if self.cusum is None else {"cusum": self.cusum.snapshot()}),
            },
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`; detectors absent from the snapshot start afresh."""
        self.labels = int(state["labels"])
        self.counts.restore(state["counts"])
        self.groups.restore(state["groups"])
        self.rolling.restore(state["rolling"])
        for name, det in self.concept.items():
            saved = state["concept"].get(name)
            if saved is not None:
                det.restore(saved)
        saved = state["concept"].get("cusum")
        if saved is not None and self.cusum is not None:
            self.cusum.restore(saved)


def classification_summary_fast(
    y: NDArray[np.int64], y_pred: NDArray[np.int64], metric: str
) -> float | None:
    """F1 or accuracy only (the per-batch performance check skips AUC and log loss)."""
    if y.size == 0:
        return None
    if metric == "accuracy":
        return float(np.mean(y == y_pred))
    tp = int(np.sum(y & y_pred))
    den = int(np.sum(y)) + int(np.sum(y_pred))
    return None if den == 0 else 2 * tp / den


__all__ = ["LabelMonitor", "classification_summary_fast", "concept_detector", "reference_figure"]
