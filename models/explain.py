"""What the card records so that monitors can say why a model drifted.

- :func:`score_importance`: each feature's importance for the score (permutation on the
  holdout, measured as the mean absolute change of the score's logit), normalised;
- :func:`fit_pca`: a PCA of the standardised numeric training features and the reference
  distribution of its reconstruction error on the holdout, for the multivariate detector
  (:mod:`monitoring.multivariate`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from models.card import PCA_TINY, FeatureImportance, PcaReference
from models.profile import numeric_profile

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

IMPORTANCE_ROWS = 2_000  # holdout rows shuffled per feature: the estimate's spread is ~2 %
PCA_VARIANCE = 0.9  # share of the variance the kept components explain
# Levels of the error's reference quantiles: every percentile (and the 0.5 % tails).
ERROR_LEVELS: tuple[float, ...] = (0.0, 0.005, *(i / 100 for i in range(1, 100)), 0.995, 1.0)
# The error is read as log(offset + e), offset this share of the holdout's mean error: a sum of
# squares is skewed, and its normal scores, interpolated on an even grid of e, were 0.1-0.25
# standard deviations off on lognormal features (under the guard's 0.02 once logged).
OFFSET_SHARE = 0.01
_EPS = 1e-6


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


def score_importance(
    pipeline: Pipeline,
    matrix: NDArray[np.generic],
    names: Sequence[str],
    seed: int = 0,
) -> FeatureImportance | None:
    """Each feature's share of the score's sensitivity, by permutation on ``matrix``.

    Parameters
    ----------
    pipeline : Pipeline
        The fitted model (``predict_proba`` on the raw matrix).
    matrix : ndarray
        Holdout rows, columns in ``names`` order (at most ``IMPORTANCE_ROWS`` are used).
    names : sequence of str
        The features.
    seed : int
        Seed of the row sample and the shuffles.

    Returns
    -------
    FeatureImportance or None
        None when the score does not move at all (a constant model) or there are no rows.

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.training import build_pipeline
    >>> ds = synthetic("sea", rows=800, seed=3)
    >>> pipe = build_pipeline("logreg", 3, 0).fit(ds.matrix(), ds.y)
    >>> imp = score_importance(pipe, ds.matrix(), ds.numeric_names)
    >>> round(sum(imp.values.values()), 6), imp.values["x2"] < 0.05  # x2 is noise in SEA
    (1.0, True)
    """
    rng = np.random.default_rng(seed)
    rows = matrix.shape[0]
    if rows == 0:
        return None
    if rows > IMPORTANCE_ROWS:
        matrix = matrix[np.sort(rng.choice(rows, IMPORTANCE_ROWS, replace=False))]
    base = _logit(np.asarray(pipeline.predict_proba(matrix)[:, 1], dtype=np.float64))
    moves: list[float] = []
    for j in range(len(names)):
        shuffled = matrix.copy()
        shuffled[:, j] = shuffled[rng.permutation(shuffled.shape[0]), j]
        p = np.asarray(pipeline.predict_proba(shuffled)[:, 1], dtype=np.float64)
        moves.append(float(np.mean(np.abs(_logit(p) - base))))
    total = sum(moves)
    if total <= 0:
        return None
    values = {n: m / total for n, m in zip(names, moves, strict=True)}
    return FeatureImportance(rows=int(matrix.shape[0]), values=values)


def _standardise(
    x: NDArray[np.float64], mean: NDArray[np.float64], scale: NDArray[np.float64]
) -> NDArray[np.float64]:
    z = (x - mean) / scale
    return np.where(np.isnan(z), 0.0, z)  # a missing value counts as the mean


def fit_pca(
    train: NDArray[np.float64],
    holdout: NDArray[np.float64],
    columns: Sequence[str],
    variance: float = PCA_VARIANCE,
) -> PcaReference | None:
    """A PCA of the standardised ``train`` columns and its reconstruction error on ``holdout``.

    The components kept are the fewest that explain ``variance`` of the standardised
    variance, and never all of them: the error lives in the axes left out. Missing values
    count as the column's mean. The error's reference comes from the holdout rows, which the
    fit never saw (on the training rows it would be biased low).

    Returns
    -------
    PcaReference or None
        None with fewer than two numeric columns, or too few rows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(6000, 3))
    >>> z[:, 1] = 0.9 * z[:, 0] + 0.44 * z[:, 1]  # x0 and x1 correlated
    >>> pca = fit_pca(z[:4000], z[4000:], ["x0", "x1", "x2"])
    >>> pca.kept, [round(v, 2) for v in pca.explained_variance]
    (2, [0.63, 0.33])
    """
    d = len(columns)
    if d < 2 or train.shape[0] <= d or holdout.shape[0] < 10:
        return None
    with warnings.catch_warnings():  # a column never present: mean 0, scale 1 below
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(train, axis=0)
        scale = np.nanstd(train, axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    scale = np.where(np.isnan(scale) | (scale <= 0), 1.0, scale)
    z = _standardise(train, mean, scale)
    values, vectors = np.linalg.eigh(np.cov(z, rowvar=False))
    order = np.argsort(values)[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    ratio = values / max(float(values.sum()), _EPS)
    kept = int(np.searchsorted(np.cumsum(ratio), variance - 1e-12) + 1)
    kept = min(max(kept, 1), d - 1)
    components = vectors[:, :kept].T
    zh = _standardise(holdout, mean, scale)
    residual = zh - (zh @ components.T) @ components
    squared = np.where(residual**2 < PCA_TINY, 0.0, residual**2)
    offset = max(OFFSET_SHARE * float(squared.sum(axis=1).mean()), _EPS)
    errors = np.log(offset + squared.sum(axis=1))
    levels = list(ERROR_LEVELS)
    profile = numeric_profile(errors).model_copy(
        update={
            "quantile_levels": levels,
            "quantiles": [float(q) for q in np.quantile(errors, levels)],
        }
    )
    return PcaReference(
        columns=list(columns),
        mean=[float(v) for v in mean],
        scale=[float(v) for v in scale],
        components=[[float(v) for v in row] for row in components],
        explained_variance=[float(v) for v in ratio[:kept]],
        kept=kept,
        offset=offset,
        error=profile,
        column_error=[float(v) for v in squared.mean(axis=0)],
    )


__all__ = [
    "ERROR_LEVELS",
    "IMPORTANCE_ROWS",
    "OFFSET_SHARE",
    "PCA_VARIANCE",
    "fit_pca",
    "score_importance",
]
