"""Performance without labels: expected confusion matrices from calibrated scores.

Given calibration, an event scored ``s`` is positive with probability ``p = c(s)``, ``c``
the card's isotonic calibrator (:class:`models.card.Calibrator`, applied with
``numpy.interp``). An event predicted positive is then a true positive with probability
``p``, one predicted negative a false negative with probability ``p``; so a block of events
has expected confusion entries ``E[TP] = Σ p`` over the predicted positives, ``E[FN] = Σ p``
over the predicted negatives, ``E[FP] = n₊ − E[TP]``, ``E[TN] = n₋ − E[FN]``, and, the events
being independent, ``Var[TP] = Σ p (1 − p)`` over the predicted positives (likewise ``FN``;
``Var[FP] = Var[TP]``, ``Var[TN] = Var[FN]``). An :class:`ExpectedConfusion` holds these six
sums: blocks merge by addition, whatever worker or micro-batch brought them.

From a block, :meth:`ExpectedConfusion.estimate` gives accuracy, precision, recall and F1 at
the expected entries, each with a band: ``z`` standard deviations of the realized figure
(accuracy ``Σ p(1 − p) / n²``; precision ``Var[TP] / n₊²``; recall and F1 by the delta method
on ``TP`` and ``FN``) widened by the calibrator's own error ``e`` (its out-of-fold ECE on the
holdout) as a bias: the low end is the figure with every ``p`` of a predicted positive
lowered by ``e`` and every one of a predicted negative raised by ``e`` (which lowers all four
figures at once), the high end the reverse.

:class:`monitoring.estimator.PerformanceEstimator` keeps such blocks per model version over
the last scored events and raises the ``performance`` finding marked ``estimated``.

Limits: the estimate holds while ``P(label | features)`` is what the holdout saw (covariate
shift: the features move, the relation does not). It cannot see concept drift (the same
scores, other labels), and it is only as good as the calibrator where the events now fall:
a shift into regions the holdout never covered extrapolates the calibration of its edges.
A card without a calibrator (written before it was fitted) is estimated with the raw scores
as probabilities and its holdout's raw calibration error as the bias.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.card import Calibrator
from monitoring.errors import SnapshotError

METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1")
# Two-sided 95 %: the band's high end must fall below the limit for a finding.
Z = 1.96


def calibrated(scores: NDArray[np.floating], calibrator: Calibrator | None) -> NDArray[np.float64]:
    """Each score's calibrated probability (the raw score, clipped, without a calibrator).

    Examples
    --------
    >>> cal = Calibrator(x=[0.2, 0.8], y=[0.1, 0.9], rows=10, calibration_error=0.0, brier=0.1)
    >>> calibrated(np.array([0.0, 0.5, 1.0]), cal).round(3).tolist()
    [0.1, 0.5, 0.9]
    """
    s = np.asarray(scores, dtype=np.float64)
    if calibrator is None:
        return np.clip(s, 0.0, 1.0)
    out: NDArray[np.float64] = np.interp(s, np.asarray(calibrator.x), np.asarray(calibrator.y))
    return out


@dataclass(frozen=True)
class Band:
    """A figure at the expected confusion entries and its band (``low <= value <= high``)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class ExpectedConfusion:
    """Expected confusion entries of a block of scored events, as mergeable sums.

    Parameters
    ----------
    pos, neg : int
        Events predicted positive and negative.
    tp, fn : float
        ``Σ p`` over the predicted positives (``E[TP]``) and the predicted negatives
        (``E[FN]``).
    var_pos, var_neg : float
        ``Σ p (1 - p)`` over the same events: the variances of ``TP`` and of ``FN``.

    Examples
    --------
    >>> a = expected_confusion(np.array([0.9, 0.2]), None)
    >>> b = expected_confusion(np.array([0.7, 0.4]), None)
    >>> m = a.merge(b)
    >>> (m.pos, m.neg, round(m.tp, 3), round(m.fp, 3), round(m.tn, 3), round(m.fn, 3))
    (2, 2, 1.6, 0.4, 1.4, 0.6)
    >>> ExpectedConfusion.from_json(m.to_json()) == m
    True
    >>> round(m.estimate(z=0.0).accuracy.value, 3)
    0.75
    """

    pos: int = 0
    neg: int = 0
    tp: float = 0.0
    fn: float = 0.0
    var_pos: float = 0.0
    var_neg: float = 0.0

    @property
    def events(self) -> int:
        """Events in the block."""
        return self.pos + self.neg

    @property
    def fp(self) -> float:
        """``E[FP]``."""
        return self.pos - self.tp

    @property
    def tn(self) -> float:
        """``E[TN]``."""
        return self.neg - self.fn

    def merge(self, other: ExpectedConfusion) -> ExpectedConfusion:
        """The block of both blocks' events."""
        return ExpectedConfusion(
            self.pos + other.pos,
            self.neg + other.neg,
            self.tp + other.tp,
            self.fn + other.fn,
            self.var_pos + other.var_pos,
            self.var_neg + other.var_neg,
        )

    def to_json(self) -> dict[str, float | int]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExpectedConfusion:
        """Inverse of :meth:`to_json`."""
        try:
            return cls(
                int(data["pos"]),
                int(data["neg"]),
                float(data["tp"]),
                float(data["fn"]),
                float(data["var_pos"]),
                float(data["var_neg"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"bad expected confusion block {data!r}: {exc}") from exc

    def estimate(self, bias: float = 0.0, z: float = Z) -> Estimate:
        """Accuracy, precision, recall and F1 at the expected entries, with bands.

        Parameters
        ----------
        bias : float
            The calibrator's error (probability units), added at both ends (see the module).
        z : float
            Standard deviations of the realized figure in the band.
        """
        low = _shifted(self, -bias)
        high = _shifted(self, bias)
        sd = _deviations(self)
        bands: dict[str, Band | None] = {}
        for name in METRICS:
            value = _figure(name, self.tp, self.fn, self.pos, self.neg)
            lo = _figure(name, *low)
            hi = _figure(name, *high)
            if value is None or lo is None or hi is None:
                bands[name] = None
                continue
            spread = z * sd[name]
            bands[name] = Band(value, max(0.0, lo - spread), min(1.0, hi + spread))
        return Estimate(self.events, bias, **bands)


@dataclass(frozen=True)
class Estimate:
    """Estimated figures of a block (a figure is None where its denominator is zero)."""

    events: int
    bias: float
    accuracy: Band | None
    precision: Band | None
    recall: Band | None
    f1: Band | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"events", "bias", metric: {"value", "low", "high"} | None}``."""
        return asdict(self)


def expected_confusion(
    scores: NDArray[np.floating],
    calibrator: Calibrator | None,
    threshold: float | NDArray[np.floating] = 0.5,
    predicted: NDArray[np.integer] | None = None,
) -> ExpectedConfusion:
    """The expected confusion block of a batch of positive-class scores.

    Parameters
    ----------
    scores : array
        The model's positive-class scores.
    calibrator : Calibrator or None
        The card's calibrator (None: the raw scores are taken as probabilities).
    threshold : float or array
        The decision threshold, as the scorer applies it (label 1 when ``score > threshold``);
        an array gives each event its own (per-group thresholds).
    predicted : array or None
        The labels the scorer gave, when at hand (then ``threshold`` is not used).

    Examples
    --------
    >>> block = expected_confusion(np.array([0.9, 0.6, 0.3]), None, threshold=0.5)
    >>> block.pos, block.neg, round(block.tp, 2), round(block.fn, 2), round(block.var_pos, 2)
    (2, 1, 1.5, 0.3, 0.33)
    """
    s = np.asarray(scores, dtype=np.float64)
    label = s > threshold if predicted is None else np.asarray(predicted) == 1
    p = calibrated(s, calibrator)
    var = p * (1.0 - p)
    pos = int(np.count_nonzero(label))
    return ExpectedConfusion(
        pos,
        int(s.size) - pos,
        float(p[label].sum()),
        float(p[~label].sum()),
        float(var[label].sum()),
        float(var[~label].sum()),
    )


def _shifted(block: ExpectedConfusion, e: float) -> tuple[float, float, int, int]:
    """``(tp, fn, pos, neg)`` with each predicted positive's ``p`` moved by ``+e`` and each
    predicted negative's by ``-e``, within [0, 1] in total."""
    tp = min(max(block.tp + e * block.pos, 0.0), float(block.pos))
    fn = min(max(block.fn - e * block.neg, 0.0), float(block.neg))
    return tp, fn, block.pos, block.neg


def _figure(name: str, tp: float, fn: float, pos: int, neg: int) -> float | None:
    n = pos + neg
    if name == "accuracy":
        return None if n == 0 else (tp + neg - fn) / n
    if name == "precision":
        return None if pos == 0 else tp / pos
    if name == "recall":
        return None if tp + fn <= 0 else tp / (tp + fn)
    den = pos + tp + fn  # 2TP + FP + FN
    return None if den <= 0 else 2 * tp / den


def _deviations(b: ExpectedConfusion) -> dict[str, float]:
    """Standard deviations of the realized figures around the expected ones (delta method
    for the ratios of the random ``TP`` and ``FN``, which are independent sums)."""
    n = b.events
    out = {
        "accuracy": 0.0 if n == 0 else math.sqrt(b.var_pos + b.var_neg) / n,
        "precision": 0.0 if b.pos == 0 else math.sqrt(b.var_pos) / b.pos,
    }
    actual = b.tp + b.fn
    # recall = TP / (TP + FN): d/dTP = FN / A², d/dFN = -TP / A²
    out["recall"] = (
        0.0 if actual <= 0 else math.sqrt(b.fn**2 * b.var_pos + b.tp**2 * b.var_neg) / actual**2
    )
    # F1 = 2TP / (pos + TP + FN): d/dTP = 2 (pos + FN) / D², d/dFN = -2 TP / D²
    den = b.pos + b.tp + b.fn
    out["f1"] = (
        0.0
        if den <= 0
        else 2 * math.sqrt((b.pos + b.fn) ** 2 * b.var_pos + b.tp**2 * b.var_neg) / den**2
    )
    return out


__all__ = [
    "METRICS",
    "Band",
    "Estimate",
    "ExpectedConfusion",
    "Z",
    "calibrated",
    "expected_confusion",
]
