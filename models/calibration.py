"""The holdout's calibrator: an isotonic map from score to probability, stored in the card.

Fitted with scikit-learn at training time; applied anywhere with ``numpy.interp`` through its
knots (:func:`monitoring.estimation.calibrated`), so that scoring and monitoring need no
scikit-learn. The label-free performance estimate (:mod:`monitoring.estimation`) takes each
event's calibrated score as the probability that its label is positive.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from models.card import Calibrator
from models.evaluation import calibration_error

# Knot coordinates are rounded to this many decimals: far below any calibration error a
# holdout can measure, and the card stays small.
_DECIMALS = 5
FOLDS = 5


def _isotonic(y: NDArray[np.int64], p: NDArray[np.float64]) -> IsotonicRegression:
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    return iso.fit(p, y.astype(np.float64))


def fit_calibrator(
    y: NDArray[np.int64], p_positive: NDArray[np.floating], seed: int = 0
) -> Calibrator | None:
    """An isotonic calibrator of ``p_positive`` for labels ``y`` (the holdout), with its
    out-of-fold calibration error and Brier score; None when the holdout lacks a class or has
    fewer than ``2 * FOLDS`` rows of each (nothing to calibrate against).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(4000)
    >>> y = (rng.random(4000) < p ** 2).astype(np.int64)  # the scores are too high
    >>> cal = fit_calibrator(y, p)
    >>> at_half = np.interp(0.5, cal.x, cal.y)  # how it is applied (monitoring.estimation)
    >>> bool(abs(at_half - 0.25) < 0.05), cal.calibration_error < 0.05
    (True, True)
    """
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p_positive, dtype=np.float64)
    counts = np.bincount(y, minlength=2)
    if counts.size != 2 or counts.min() < 2 * FOLDS:
        return None
    oof = np.empty_like(p)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for fit_idx, eval_idx in folds.split(p.reshape(-1, 1), y):
        oof[eval_idx] = _isotonic(y[fit_idx], p[fit_idx]).predict(p[eval_idx])
    # The fitted map's own knots: scikit-learn keeps the ends of each constant block and
    # interpolates linearly between them, as numpy.interp does.
    iso = _isotonic(y, p)
    return Calibrator(
        x=[round(float(v), _DECIMALS) for v in iso.X_thresholds_],
        y=[round(float(v), _DECIMALS) for v in iso.y_thresholds_],
        rows=int(y.size),
        calibration_error=round(calibration_error(y, oof), _DECIMALS),
        brier=round(float(np.mean((oof - y) ** 2)), _DECIMALS),
    )


__all__ = ["FOLDS", "fit_calibrator"]
