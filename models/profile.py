"""Reference profiles of features and scores, the baseline that drift monitors compare against."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from models.card import Profile, ReferenceProfile
from models.data import MISSING_CATEGORY, Dataset

QUANTILE_LEVELS: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
HISTOGRAM_BINS = 10


def numeric_profile(values: NDArray[np.floating]) -> Profile:
    """Quantiles, decile histogram, mean and std of one numeric column (NaN = missing).

    The histogram edges are the training deciles with open outer bins (``-inf``/``inf``
    are stored as the observed minimum and maximum), so each bin holds about 10% of the
    reference and a live window can be compared bin by bin (PSI).

    Examples
    --------
    >>> prof = numeric_profile(np.random.default_rng(0).normal(size=1000))
    >>> prof.count, len(prof.bin_edges), round(sum(prof.bin_fractions), 6)
    (1000, 11, 1.0)
    """
    v = np.asarray(values, dtype=np.float64)
    ok = v[~np.isnan(v)]
    n = int(v.shape[0])
    missing = float(1 - ok.size / n) if n else 0.0
    if ok.size == 0:
        return Profile(kind="numeric", count=n, missing_rate=missing)
    edges = np.unique(np.quantile(ok, np.linspace(0, 1, HISTOGRAM_BINS + 1)))
    if edges.size < 2:
        edges = np.array([edges[0], edges[0]])
    inner = edges[1:-1]
    counts = np.bincount(np.searchsorted(inner, ok, side="right"), minlength=edges.size - 1)
    return Profile(
        kind="numeric",
        count=n,
        missing_rate=missing,
        quantile_levels=list(QUANTILE_LEVELS),
        quantiles=[float(q) for q in np.quantile(ok, QUANTILE_LEVELS)],
        bin_edges=[float(e) for e in edges],
        bin_fractions=[float(c) / ok.size for c in counts],
        mean=float(ok.mean()),
        std=float(ok.std()),
    )


def categorical_profile(values: NDArray[np.object_]) -> Profile:
    """Relative frequency of every category (``""`` = missing).

    Examples
    --------
    >>> categorical_profile(np.array(["a", "b", "a", ""], dtype=object)).frequencies
    {'': 0.25, 'a': 0.5, 'b': 0.25}
    """
    n = int(values.shape[0])
    cats, counts = np.unique(values.astype(str), return_counts=True)
    freq = {str(c): float(k) / n for c, k in zip(cats.tolist(), counts.tolist(), strict=True)}
    return Profile(
        kind="categorical",
        count=n,
        missing_rate=freq.get(MISSING_CATEGORY, 0.0),
        frequencies=freq,
    )


def reference_profile(train: Dataset, scores: NDArray[np.floating]) -> ReferenceProfile:
    """Profiles of each training feature and of the holdout positive-class scores."""
    features: dict[str, Profile] = {}
    for j, name in enumerate(train.numeric_names):
        features[name] = numeric_profile(train.numeric[:, j])
    for j, name in enumerate(train.categorical_names):
        features[name] = categorical_profile(train.categorical[:, j])
    return ReferenceProfile(features=features, score=numeric_profile(np.asarray(scores)))


__all__ = [
    "HISTOGRAM_BINS",
    "QUANTILE_LEVELS",
    "categorical_profile",
    "numeric_profile",
    "reference_profile",
]
