"""Why it drifted: the features that explain a prediction-drift or performance finding, ranked.

A feature explains a score shift as much as it moved *and* as much as the score depends on it.
So each feature's drift evidence is weighted by the card's importance of that feature
(:class:`models.card.FeatureImportance`, the score's sensitivity to it) and the products are
shared out: :func:`rank_features` returns ``[(feature, share), ...]``, largest first, ready
for a finding's details.

The evidence comes from the same per-block summaries the sequential detectors read, so it
costs nothing per event:

- numeric features: :meth:`~monitoring.sequential_drift.NumericDrift.summarise` (sums of the
  standardised normal scores ``g`` and of ``g**2``), which gives a location and a scale
  z-statistic;
- categorical features: the counts of each known category against the reference shares, a
  Pearson chi-square.

:class:`FeatureEvidence` keeps them exponentially weighted at a few half-lives (in events, so
recent events count most and the evidence of an old change fades; a short half-life sees a
fresh large change before the older events' noise drowns it, a long one gathers a small
change), each statistic exact under the reference whatever the weights; unlike a CUSUM it
never resets on an alarm. A feature's evidence is its largest over the half-lives. Each
feature's statistic is a chi-square, put on one scale as a normal deviate (Wilson and
Hilferty's cube root), so features with one, two or many degrees of freedom compare; below
``floor`` it counts as no drift, so that noise does not share the blame and a finding with no
feature drifting (a concept drift) is explained by none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitoring.errors import SnapshotError

# Events after which a block's evidence counts half: one scale each, from a batch or two to
# the ~10^4 events a small shift takes to show.
HALF_LIVES: tuple[float, ...] = (256.0, 1024.0, 4096.0, 16384.0)
FLOOR = 3.0  # normal deviates: weaker evidence of drift counts as none


def chi2_deviate(chi2: NDArray[np.float64], dof: NDArray[np.float64]) -> NDArray[np.float64]:
    """A chi-square statistic with ``dof`` degrees of freedom as a normal deviate (Wilson and
    Hilferty), 0 where ``dof`` is 0.

    Examples
    --------
    >>> # the 0.1 % points of chi-square with 1 and 2 degrees of freedom (exactly: 3.09)
    >>> chi2_deviate(np.array([10.828, 13.816]), np.array([1.0, 2.0])).round(2).tolist()
    [3.04, 3.05]
    """
    k = np.maximum(dof, 1.0)
    c = 2.0 / (9.0 * k)
    z = (np.cbrt(np.maximum(chi2, 0.0) / k) - (1.0 - c)) / np.sqrt(c)
    return np.where(dof > 0, z, 0.0)


def rank_features(
    drift: Mapping[str, float],
    importance: Mapping[str, float],
    floor: float = FLOOR,
    top: int | None = None,
) -> list[tuple[str, float]]:
    """The features that explain a score shift, with their shares, largest first.

    Parameters
    ----------
    drift : mapping of str to float
        Each feature's drift evidence as a normal deviate (:meth:`FeatureEvidence.drift`;
        any non-negative statistic that grows with the drift will do).
    importance : mapping of str to float
        The card's importance of each feature; a feature missing there weighs 0.
    floor : float
        Evidence below this is no drift.
    top : int or None
        Keep this many.

    Returns
    -------
    list of (str, float)
        Features with some drift and some importance, their shares summing to 1; empty when
        no important feature drifted.

    Examples
    --------
    >>> ranked = rank_features({"age": 12.0, "income": 30.0, "zip": 2.0},
    ...                        {"age": 0.6, "income": 0.1, "zip": 0.3})
    >>> [(name, round(share, 3)) for name, share in ranked]  # zip: 2.0 is noise
    [('age', 0.706), ('income', 0.294)]
    >>> rank_features({"age": 1.0}, {"age": 1.0})  # nothing drifted beyond noise
    []
    """
    weights = {
        name: (d if d >= floor else 0.0) * max(float(importance.get(name, 0.0)), 0.0)
        for name, d in drift.items()
    }
    total = sum(weights.values())
    if total <= 0:
        return []
    ranked = sorted(((n, w / total) for n, w in weights.items() if w > 0), key=lambda t: -t[1])
    return ranked if top is None else ranked[:top]


class FeatureEvidence:
    """Exponentially weighted drift evidence of every feature, from per-block summaries.

    Parameters
    ----------
    numeric : sequence of str
        The numeric features, in the order of the summaries' columns.
    categorical : mapping of str to sequence of float
        Each categorical feature's reference shares of its known categories, in the order of
        the counts given to :meth:`add`.
    half_lives : sequence of float
        Events after which a block's evidence counts half, one scale each. A feature's
        evidence is its largest deviate over the scales: a short one sees a fresh large change
        before the history's noise drowns it, a long one gathers a small change.
    reference_rows : sequence of float or None
        Rows behind each feature's reference (numeric, then categorical). A reference is a
        sample: its own error is added to the variance of each statistic, or a long half-life
        (tens of thousands of events against a reference of a few thousand rows) would read
        the reference's noise as drift. None: exact references.

    Examples
    --------
    >>> from models.profile import numeric_profile
    >>> from monitoring.sequential_drift import NumericDrift
    >>> from monitoring.windows import NumericReference
    >>> rng = np.random.default_rng(0)
    >>> refs = [NumericReference.from_profile(n, numeric_profile(rng.normal(size=20_000)))
    ...         for n in ("a", "b")]
    >>> summarise = NumericDrift(refs, h=12.0).summarise
    >>> ev = FeatureEvidence(["a", "b"], {"c": [0.5, 0.5]})
    >>> for _ in range(8):
    ...     x = rng.normal(size=(256, 2))
    ...     x[:, 1] += 0.3  # b shifts
    ...     ev.add(summarise(x), [rng.multinomial(256, [0.5, 0.5])])
    >>> drift = ev.drift()
    >>> drift["b"] > 8 > max(drift["a"], drift["c"])
    True
    >>> rank_features(drift, {"a": 0.5, "b": 0.2, "c": 0.3})[0][0]
    'b'
    """

    def __init__(
        self,
        numeric: Sequence[str],
        categorical: Mapping[str, Sequence[float]],
        half_lives: Sequence[float] = HALF_LIVES,
        reference_rows: Sequence[float] | None = None,
    ) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        rows = np.full(len(self.numeric) + len(self.categorical), np.inf)
        if reference_rows is not None:
            rows = np.maximum(np.asarray(reference_rows, dtype=np.float64), 1.0)
        self._ref_rows = rows
        self.half_lives = np.asarray(half_lives, dtype=np.float64)
        shares = [np.asarray(v, dtype=np.float64) for v in categorical.values()]
        self._shares = [s / s.sum() if s.sum() > 0 else s for s in shares]
        self._sizes = [s.size for s in shares]
        scales = self.half_lives.size
        # Per scale, numeric rows: weighted sums of the standardised g and g**2, and the sums
        # of the squared weights of their events (their variance under the reference).
        self.moments = np.zeros((scales, 4, len(self.numeric)))
        # Per scale, the weighted counts of g and g**2 (unsquared weights: the reference's
        # error weighs on the weighted sums as their total weight squared).
        self.totals = np.zeros((scales, 2, len(self.numeric)))
        # Per scale, categorical: weighted counts per category, per feature squared weights.
        self.counts = np.zeros((scales, sum(self._sizes)))
        self.weights = np.zeros((scales, len(self.categorical)))

    def add(
        self, numeric: NDArray[np.float64], categorical: Sequence[NDArray[np.int64]] = ()
    ) -> None:
        """One block: the numeric summary (``NumericDrift.summarise``, ``(4, features)``) and
        each categorical feature's counts of its known categories."""
        events = float(np.max(numeric[1])) if numeric.size else 0.0
        counts = np.zeros(0)
        if categorical:
            counts = np.concatenate([np.asarray(c, dtype=np.float64) for c in categorical])
            events = max(events, max(float(np.sum(c)) for c in categorical))
        decay = (0.5 ** (events / self.half_lives))[:, None]
        m = self.moments
        for row, power in ((0, 1), (1, 2), (2, 1), (3, 2)):
            m[:, row] = decay**power * m[:, row] + numeric[row]
        if numeric.size:
            self.totals = decay[:, :, None] * self.totals + numeric[[1, 3]]
        if counts.size:
            self.counts = decay * self.counts + counts
            totals = np.add.reduceat(counts, self._starts())
            self.weights = decay**2 * self.weights + totals

    def _starts(self) -> NDArray[np.intp]:
        # where each categorical feature's counts begin (none without categorical features)
        return np.cumsum([0, *self._sizes])[:-1].astype(np.intp)

    def deviates(self) -> NDArray[np.float64]:
        """Per scale and feature (numeric, then categorical), the drift evidence as a normal
        deviate: about standard normal under the reference, at every scale."""
        m, t = self.moments, self.totals
        ref = self._ref_rows[: len(self.numeric)]
        with np.errstate(invalid="ignore", divide="ignore"):
            loc = np.where(m[:, 1] > 0, m[:, 0] ** 2 / (m[:, 1] + t[:, 0] ** 2 / ref), 0.0)
            scale = np.where(m[:, 3] > 0, m[:, 2] ** 2 / (m[:, 3] + t[:, 1] ** 2 / ref), 0.0)
        dof = (m[:, 1] > 0).astype(np.float64) + (m[:, 3] > 0)
        out = np.zeros((self.half_lives.size, len(self.numeric) + len(self.categorical)))
        out[:, : len(self.numeric)] = chi2_deviate(loc + scale, dof)
        for f, (p, start) in enumerate(zip(self._shares, self._starts(), strict=True)):
            observed = self.counts[:, start : start + p.size]
            total = observed.sum(axis=1)
            v = self.weights[:, f] + total**2 / self._ref_rows[len(self.numeric) + f]
            known = p > 0
            ok = (v > 0) & (total > 0) & (known.sum() >= 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                gap = observed[:, known] - p[known] * total[:, None]
                chi2 = np.sum(gap**2 / (p[known] * v[:, None]), axis=1)
            dev = chi2_deviate(chi2, np.full(chi2.shape, known.sum() - 1.0))
            out[:, len(self.numeric) + f] = np.where(ok, dev, 0.0)
        return out

    def drift(self) -> dict[str, float]:
        """Each feature's evidence of drift: its largest deviate over the scales."""
        names = self.numeric + self.categorical
        return dict(zip(names, self.deviates().max(axis=0).tolist(), strict=True))

    def explain(
        self, importance: Mapping[str, float], floor: float = FLOOR, top: int | None = 5
    ) -> list[tuple[str, float]]:
        """:func:`rank_features` of the current evidence."""
        return rank_features(self.drift(), importance, floor, top)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "moments": self.moments.tolist(),
            "totals": self.totals.tolist(),
            "counts": self.counts.tolist(),
            "weights": self.weights.tolist(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`; a snapshot of other features is refused."""
        moments = np.asarray(state["moments"], dtype=np.float64)
        # absent before the references' error was counted: as if the history were fresh
        totals = np.asarray(state.get("totals", np.zeros_like(self.totals)), dtype=np.float64)
        counts = np.asarray(state["counts"], dtype=np.float64)
        weights = np.asarray(state["weights"], dtype=np.float64)
        shapes = (moments.shape, counts.shape, weights.shape, totals.shape)
        mine = (self.moments.shape, self.counts.shape, self.weights.shape, self.totals.shape)
        if shapes != mine:
            raise SnapshotError(f"evidence snapshot of shapes {shapes} is of other features")
        self.moments, self.counts, self.weights = moments, counts, weights
        self.totals = totals


__all__ = [
    "FLOOR",
    "HALF_LIVES",
    "FeatureEvidence",
    "chi2_deviate",
    "rank_features",
]
