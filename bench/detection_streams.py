"""Seeded streams with known change points for the detection benchmark.

Each event has 8 numeric features and one categorical feature ``c`` (``a``, ``b``, ``c``,
``d``; ``a`` a quarter of the time) and a 0/1 label. The numeric features come from a
latent standard normal vector (``x0`` and ``x1`` correlated at 0.8, so are ``x4`` and ``x7``,
which the label ignores; the rest independent)
mapped through the marginal of a *family* (a Gaussian copula): ``gaussian``, ``skewed``
(lognormal), ``heavy`` (Student's t, 3 degrees of freedom) or ``discrete`` (Poisson, mean 3).
The label is Bernoulli of a logistic function of the latent values and the category.

A :class:`Scenario` changes the stream at event ``CHANGE``: a mean shift or a scale change of
one feature (``x0`` unless told; in the family's standard deviations), a gradual ramp of its
mean, the share of category ``a``, the class prior, one coefficient of the labelling function
flipped (a partial concept drift), or the correlation of ``x0`` and ``x1`` (or of ``x4`` and
``x7``, which leaves the score unchanged) broken with both marginals unchanged.
These move the feature after the labels were drawn, so the labels do not follow it.
A ``covariate`` shift moves ``x0``'s latent value (in its standard deviations) before the
labels are drawn: the features move and ``P(label | features)`` stays as trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from scipy.special import expit, ndtr

FAMILIES: tuple[str, ...] = ("gaussian", "skewed", "heavy", "discrete")
FEATURES = 8
CHANGE = 20_000
AFTER = 20_000  # events watched after the change
BATCH = 256
WEIGHTS = np.array([1.0, 0.5, -0.8, 0.6, 0.0, 0.4, -0.3, 0.0])
CATEGORY_WEIGHT = 1.0
CATEGORIES = np.array(["a", "b", "c", "d"], dtype=object)


@dataclass(frozen=True)
class Scenario:
    """One kind of change (``kind``) of a given ``size`` on one feature ``family``."""

    name: str
    family: str
    kind: str  # stationary, mean, ramp, scale, category, prior, concept, correlation, covariate
    size: float = 0.0
    feature: int = 0  # the column shifted; for a correlation break, 0 (x0-x1) or 4 (x4-x7)


@dataclass(frozen=True)
class Chunk:
    """Events of a stream: numeric features, the categorical one, labels."""

    numeric: NDArray[np.float64]
    categorical: NDArray[np.object_]
    y: NDArray[np.int64]


def marginal(family: str, z: NDArray[np.float64]) -> NDArray[np.float64]:
    """Latent standard normal values mapped to the family's marginal."""
    if family == "gaussian":
        return z
    if family == "skewed":
        return np.exp(z)
    u = np.clip(ndtr(z), 1e-12, 1 - 1e-12)
    if family == "heavy":
        return np.asarray(stats.t.ppf(u, 3), dtype=np.float64)
    return np.asarray(stats.poisson.ppf(u, 3.0), dtype=np.float64)


_SD = {"gaussian": 1.0, "skewed": float(np.sqrt((np.e - 1) * np.e)), "heavy": float(np.sqrt(3.0))}


def family_sd(family: str) -> float:
    """The standard deviation of the family's marginal."""
    return _SD.get(family, float(np.sqrt(3.0)))


PAIRS = ((0, 1), (4, 7))  # latent columns correlated at 0.8


def _latent(rng: np.random.Generator, n: int, broken: int | None) -> NDArray[np.float64]:
    z = rng.normal(size=(n, FEATURES))
    for a, b in PAIRS:
        if a != broken:
            z[:, b] = 0.8 * z[:, a] + 0.6 * z[:, b]
    return z


def _draw(
    rng: np.random.Generator,
    n: int,
    family: str,
    share: float,
    broken: int | None,
    flip: bool,
    shift: float = 0.0,
) -> tuple[NDArray[np.float64], NDArray[np.object_], NDArray[np.int64]]:
    z = _latent(rng, n, broken)
    z[:, 0] += shift
    cat = np.where(rng.random(n) < share, "a", rng.choice(CATEGORIES[1:], size=n)).astype(object)
    w = WEIGHTS.copy()
    if flip:
        w[0] = -w[0]
    logit = z @ w + CATEGORY_WEIGHT * (cat == "a") - CATEGORY_WEIGHT * 0.25
    y = (rng.random(n) < expit(2.0 * logit)).astype(np.int64)
    return marginal(family, z), cat, y


def training_set(family: str, seed: int, rows: int) -> Chunk:
    """Stationary rows to train the model on (its card holds the reference profiles)."""
    x, c, y = _draw(np.random.default_rng([seed, 1]), rows, family, 0.25, None, False)
    return Chunk(x, c.reshape(-1, 1), y)


def stream(scenario: Scenario, seed: int, events: int) -> Chunk:
    """``events`` events of ``scenario``: as trained before ``CHANGE``, changed from there on."""
    rng = np.random.default_rng([seed, 2])
    kind, family = scenario.kind, scenario.family
    cut = events if kind == "stationary" else min(CHANGE, events)
    x, c, y = _draw(rng, cut, family, 0.25, None, False)
    if cut == events:
        return Chunk(x, c, y)
    n = events - cut
    share = scenario.size if kind == "category" else 0.25
    if kind == "prior":
        # The same P(x | y) with more positives: draw a pool, keep positives at the new share.
        px, pc, py = _draw(rng, 4 * n, family, share, None, False)
        pos, neg = np.flatnonzero(py == 1), np.flatnonzero(py == 0)
        k = round(scenario.size * n)
        # Shuffled: positives and negatives mixed evenly over the rest of the stream.
        take = rng.permutation(np.concatenate([pos[:k], neg[: n - k]]))
        ax, ac, ay = px[take], pc[take], py[take]
    else:
        shift = scenario.size if kind == "covariate" else 0.0
        broken = scenario.feature if kind == "correlation" else None
        ax, ac, ay = _draw(rng, n, family, share, broken, kind == "concept", shift)
    sd, j = family_sd(family), scenario.feature
    if kind == "mean":
        ax[:, j] += scenario.size * sd
    elif kind == "ramp":
        ax[:, j] += scenario.size * sd * np.minimum(1.0, np.arange(1, n + 1) / AFTER)
    elif kind == "scale":
        center = float(np.median(x[:, j]))
        ax[:, j] = center + (ax[:, j] - center) * scenario.size
    return Chunk(np.vstack([x, ax]), np.concatenate([c, ac]), np.concatenate([y, ay]))


def lorden_bound(scenario: Scenario, budget: float = 1.0) -> float | None:
    """Lorden's approximate delay ``log(1/alpha) / KL``, alpha = budget per million over the
    8 features' two-sided tests, where the KL per event is known (Gaussian mean and scale
    shifts, the category mix); None elsewhere."""
    log_alpha = float(np.log(2 * FEATURES * 1e6 / budget))
    s = scenario.size
    if scenario.family != "gaussian" and scenario.kind != "category":
        return None
    if scenario.kind == "mean":
        return log_alpha / (s * s / 2)
    if scenario.kind == "scale":
        return log_alpha / (0.5 * (s * s - 1 - float(np.log(s * s))))
    if scenario.kind == "category":
        after = np.array([s, *(3 * [(1 - s) / 3])])
        kl = float(np.sum(after * np.log(after / np.array([0.25, 0.25, 0.25, 0.25]))))
        return log_alpha / kl
    return None


__all__ = [
    "AFTER",
    "BATCH",
    "CHANGE",
    "FAMILIES",
    "FEATURES",
    "WEIGHTS",
    "Chunk",
    "Scenario",
    "family_sd",
    "lorden_bound",
    "marginal",
    "stream",
    "training_set",
]
