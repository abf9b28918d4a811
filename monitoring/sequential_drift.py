"""Sequential drift detectors calibrated to one false-alarm budget: features, score, errors.

Every detector is a CUSUM bank (:mod:`monitoring.cusum`) fed once per block with the block's
summaries, never per event:

- numeric features and the score (:class:`NumericDrift`, :class:`ScoreDrift` reading the
  score as its logit): each value goes through the
  reference distribution to a normal score ``g = Phi^-1(F_ref(x))``, where ``F_ref`` is a
  monotone (PCHIP) interpolation of the card's quantiles between its 1st and 99th
  percentiles, and values beyond them count as those percentiles (winsorised), so skewed and
  heavy-tailed features look alike and their reference moments are exact: ``g`` is a
  winsorised standard normal. Location is a two-sided CUSUM on ``g`` (shifts of 0.1 to 1
  standard deviation), scale one on ``g**2`` (spread up or down). A feature whose quantiles
  tie (discrete values, an atom) is standardised by the card's mean and standard deviation
  instead and gets the location test only;
- categorical features (:class:`~monitoring.rate_drift.CategoricalDrift`): per category,
  CUSUMs for its share's odds rising or falling (×4, ×2, ×1.25 and their inverses) against
  the reference frequency;
- the error stream of one version (:class:`~monitoring.rate_drift.ErrorDrift`): CUSUMs for
  the error odds rising (×1.25, ×1.6, ×2.5) against the holdout error rate.

:func:`calibrate` spreads the budget (``false_alarms_per_million`` events per model) over
every detector of the model (the PCA's reconstruction error's too,
:mod:`monitoring.multivariate`), so adding a feature adds no false alarm: each threshold grows
with the log of the detector count. Each reference is a sample (the training rows, the
holdout), so every allowance is widened by ``GUARD_SE`` of its standard errors.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import PchipInterpolator
from scipy.special import logit, ndtri

from models.card import ModelCard
from monitoring.config import MonitorConfig
from monitoring.cusum import GUARD_SE, GaussianCusum, gaussian_threshold, threshold
from monitoring.findings import Check, Finding, FindingKind
from monitoring.rate_drift import CATEGORY_RATIOS, ERROR_RATIOS
from monitoring.windows import CategoricalReference, NumericReference

LOCATION_SHIFTS: tuple[float, ...] = (-1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0)
SCALE_SHIFTS: tuple[float, ...] = (-0.5, -0.4, -0.3, -0.2, 0.2, 0.35, 0.5, 1.0)
# Scores pile up near 0 and 1, where the card's CDF interpolated between its knots is least
# exact: read as they are, their mean of g**2 came out 0.04-0.06 standard deviations above
# the reference's (features: under 0.005), and the scale test alarmed twice in a million
# stationary events. Read as logits (ScoreDrift), 0.013-0.022; the allowance adds this much.
SCORE_MODEL_ERROR = 0.01
_SCORE_EPS = 1e-7
_GRID = 1024  # points of the precomputed normal-score curve between the outer knots


@dataclass(frozen=True)
class Calibration:
    """Thresholds of one model's detectors: per block of events (``gaussian`` for the
    Gaussian banks of numeric columns, :func:`~monitoring.cusum.gaussian_threshold`), and
    per labelled batch."""

    detectors: int
    events: float
    labels: float

    @property
    def gaussian(self) -> float:
        """The threshold of the numeric columns' banks (features, score, the PCA's error)."""
        return gaussian_threshold(self.events)


def calibrate(card: ModelCard, config: MonitorConfig) -> Calibration:
    """Spread ``config.false_alarms_per_million`` over every detector of ``card``'s model.

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.workflow import TrainOptions, train
    >>> card = train(synthetic("sea", rows=600, seed=1), TrainOptions(name="s", folds=2)).card
    >>> cal = calibrate(card, MonitorConfig())
    >>> cal.detectors, round(cal.events, 1), round(cal.gaussian, 1), round(cal.labels, 1)
    (83, 12.7, 11.1, 18.2)
    """
    specs = {s.name: s for s in card.features}
    per_numeric = len(LOCATION_SHIFTS) + len(SCALE_SHIFTS)
    # The score, every numeric feature, and the PCA's reconstruction error when the card has
    # one (monitoring.multivariate): each a location and a scale bank.
    watched = 1 + sum(s.kind == "numeric" for s in card.features) + (card.pca is not None)
    count = per_numeric * watched
    for name, spec in specs.items():
        if spec.kind == "categorical":
            prof = card.reference.features.get(name)
            cats = CategoricalReference.from_profile(name, prof, spec).categories if prof else ()
            count += len(cats) * len(CATEGORY_RATIOS)
    count += len(ERROR_RATIOS)
    rate = config.false_alarms_per_million * 1e-6
    return Calibration(
        detectors=count,
        events=threshold(rate, count, config.detector_block),
        labels=threshold(rate, count),
    )


@functools.lru_cache(maxsize=64)
def _winsorised_moments(low: float, high: float) -> tuple[float, float, float, float]:
    """Mean and variance of ``g`` and ``g**2``, ``g`` a standard normal clipped to [low, high]."""
    u = (np.arange(200_000) + 0.5) / 200_000
    g = np.clip(ndtri(u), low, high)
    return float(g.mean()), float(g.var()), float((g**2).mean()), float((g**2).var())


class NumericDrift:
    """Location and scale CUSUMs of numeric columns (features, or the score), per block.

    Parameters
    ----------
    refs : list of NumericReference
        One per column.
    h : float
        Threshold per block (:func:`calibrate`).
    model_error : float
        Added to every column's guard (standard deviations): how far the reference's
        interpolated CDF may be from the truth (``SCORE_MODEL_ERROR`` for the score).

    Examples
    --------
    >>> from models.profile import numeric_profile
    >>> rng = np.random.default_rng(0)
    >>> ref = NumericReference.from_profile("x", numeric_profile(rng.lognormal(size=50_000)))
    >>> det = NumericDrift([ref], h=12.0)
    >>> hits = []
    >>> for block in range(40):
    ...     x = rng.lognormal(mean=0.5 if block >= 20 else 0.0, size=(256, 1))
    ...     det.add(x)
    ...     hits += [(block, test) for _, test, _, _ in det.flush()]
    >>> hits[0]  # the first block after the shift; a shift that stays alarms again
    (20, 'location')
    """

    def __init__(self, refs: list[NumericReference], h: float, model_error: float = 0.0) -> None:
        self.names = [r.name for r in refs]
        # Per column, the normal-score curve on an even grid, looked up for every value of a
        # batch at once (one table, flat offsets): np.interp per column cost 0.5 µs a value.
        self._lo = np.zeros(len(refs))
        self._step = np.ones(len(refs))
        table = np.zeros((len(refs), _GRID))
        center, spread, guard = [], [], []
        sq_center, sq_spread = [], []
        for j, r in enumerate(refs):
            curve = _normal_score_curve(r)
            if curve is None:  # tied quantiles: standardise by the card's moments
                center.append(r.mean)
                spread.append(r.std)
                sq_center.append(math.nan)
                sq_spread.append(math.nan)
            else:
                self._lo[j], hi, table[j] = curve
                self._step[j] = (hi - self._lo[j]) / (_GRID - 1)
                m1, v1, m2, v2 = _winsorised_moments(float(table[j, 0]), float(table[j, -1]))
                center.append(m1)
                spread.append(math.sqrt(v1))
                sq_center.append(m2)
                sq_spread.append(math.sqrt(v2))
            guard.append(GUARD_SE / math.sqrt(max(r.count, 1)) + model_error)
        self._center = np.array(center)
        self._spread = np.array(spread)
        self._sq_center = np.array(sq_center)
        self._sq_spread = np.array(sq_spread)
        self._scaled = ~np.isnan(self._sq_center)
        self._pit = self._scaled  # the columns read through their normal-score curve
        self._table = table.ravel()
        self._offset = np.arange(len(refs)) * _GRID
        # One bank, location rows then scale rows: one update per block for both tests.
        shifts = np.array([LOCATION_SHIFTS] * len(refs) + [SCALE_SHIFTS] * len(refs))
        self.bank = GaussianCusum(shifts.reshape(-1, len(LOCATION_SHIFTS)), guard + guard, h)
        self.pending = np.zeros((4, len(refs)))  # the open block's sums and counts

    def summarise(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """A block's summary, ``(4, columns)``: sums and counts of the standardised ``g`` and
        ``g**2`` (NaN = missing). Summaries of blocks add up (across batches or workers)."""
        present = ~np.isnan(matrix)
        full = bool(present.all())
        t = (matrix - self._lo) / self._step
        if not full:
            t[~present] = 0.0
        np.clip(t, 0.0, _GRID - 1, out=t)
        i = t.astype(np.intp)
        np.minimum(i, _GRID - 2, out=i)
        t -= i
        i += self._offset
        g = self._table.take(i)
        g += t * (self._table.take(i + 1) - g)
        if not self._pit.all():
            g = np.where(self._pit, g, matrix)
        if not full:
            g[~present] = 0.0
        n = present.sum(axis=0) if not full else np.full(matrix.shape[1], matrix.shape[0])
        # Standardised after summing: sum((g - c) / s) = (sum(g) - n c) / s.
        loc = (g.sum(axis=0) - n * self._center) / self._spread
        with np.errstate(invalid="ignore"):
            sq = (np.einsum("ij,ij->j", g, g) - n * self._sq_center) / self._sq_spread
        scaled = self._scaled
        return np.stack([loc, n, np.where(scaled, sq, 0.0), np.where(scaled, n, 0)])

    def add(self, matrix: NDArray[np.float64]) -> None:
        """Add a batch ``(rows, columns)`` to the open block."""
        self.pending += self.summarise(matrix)

    def flush(self) -> list[tuple[int, str, float, float]]:
        """Close the block: update every CUSUM; per alarm, the column, the test (``location``
        or ``scale``), the alternative that fired and its statistic."""
        s = self.pending
        self.pending = np.zeros_like(s)
        bank, columns = self.bank, len(self.names)
        hits = bank.update(np.concatenate([s[0], s[2]]), np.concatenate([s[1], s[3]]))
        out: list[tuple[int, str, float, float]] = []
        for row in np.flatnonzero(hits) if hits.any() else ():
            k = bank.winner(int(row))
            test = "location" if row < columns else "scale"
            shift, stat = float(bank.shifts[row, k]), float(bank.peak[row, k])
            out.append((int(row) % columns, test, shift, stat))
        return out

    def checks(self, kind: FindingKind, details: dict[str, Any], feature: bool) -> list[Check]:
        """:meth:`flush` as findings of ``kind`` (per feature when ``feature``)."""
        checks: list[Check] = []
        for j, test, shift, stat in self.flush():
            name = self.names[j] if feature else None
            extra = {**details, "test": test, "shift": shift, "direction": _sign(shift)}
            f = Finding(kind, "cusum", stat, self.bank.h, name, extra)
            checks.append((f"{kind}|{name or ''}|cusum", f, False))
        return checks

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "pending": self.pending.tolist(),
            "bank": self.bank.snapshot(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        pending = np.asarray(state["pending"], dtype=np.float64)
        self.bank.restore(state["bank"])
        self.pending = pending.reshape(self.pending.shape)


class ScoreDrift(NumericDrift):
    """:class:`NumericDrift` of the positive-class score, read as its logit.

    A score's quantiles are mapped to logits too (the probability integral transform does not
    change under a monotone map, but the interpolation between knots becomes much closer to
    the truth); a reference whose logit knots tie is used as it is.
    """

    def __init__(self, ref: NumericReference, h: float) -> None:
        self._logit = False
        if ref.knots_x is not None:
            knots = logit(np.clip(ref.knots_x, _SCORE_EPS, 1 - _SCORE_EPS))
            if np.all(np.diff(knots) > 0):
                ref = dataclasses.replace(ref, knots_x=knots)
                self._logit = True
        super().__init__([ref], h, SCORE_MODEL_ERROR)

    def summarise(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """:meth:`NumericDrift.summarise` of the scores' logits (a column of scores)."""
        if self._logit:
            matrix = logit(np.clip(matrix, _SCORE_EPS, 1 - _SCORE_EPS))
        return super().summarise(matrix)


def _normal_score_curve(
    ref: NumericReference,
) -> tuple[float, float, NDArray[np.float64]] | None:
    """``Phi^-1(F_ref(x))`` on an even grid between the outer interior knots (and those
    knots), or None when the reference's quantiles tie."""
    if ref.knots_x is None or ref.knots_p is None:
        return None
    inner = (ref.knots_p > 0) & (ref.knots_p < 1)
    xs, ps = ref.knots_x[inner], ref.knots_p[inner]
    if xs.size < 3:
        return None
    grid = np.linspace(xs[0], xs[-1], _GRID)
    return float(xs[0]), float(xs[-1]), PchipInterpolator(xs, ndtri(ps))(grid).astype(np.float64)


def _sign(shift: float) -> str:
    return "up" if shift > 0 else "down"


__all__ = [
    "LOCATION_SHIFTS",
    "SCALE_SHIFTS",
    "SCORE_MODEL_ERROR",
    "Calibration",
    "NumericDrift",
    "ScoreDrift",
    "calibrate",
]
