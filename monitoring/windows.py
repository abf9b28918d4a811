"""Tumbling-window tests against the card's reference profiles: PSI, KS and data quality.

A window accumulates counts only, never raw values, so its state is small and JSON:

- PSI bins are the card's decile ``bin_edges`` (numeric) or its categories (categorical);
- KS works on the probability integral transform ``u = F_ref(x)``, where ``F_ref``
  interpolates the card's quantiles and deciles linearly. ``u`` is histogrammed on
  ``ks_bins`` equal bins; the KS distance read at the bin edges is a lower bound of the exact
  one, within ``1 / ks_bins``. KS is skipped for features whose reference quantiles tie
  (discrete values, atoms such as a mass at zero), where it is not valid; PSI still runs;
- missing values and values outside the training range (or unseen categories) are counted.

The p-value of KS treats the reference as a sample of ``count`` rows (two-sample asymptotic
distribution with the effective size ``n·m/(n+m)``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import kolmogorov

from models.card import FeatureSpec, Profile
from monitoring.summary import NumericCounts

PSI_FLOOR = 1e-4
MIN_PRESENT = 50  # fewer present values in a window: no PSI/KS verdict


def psi(actual: NDArray[np.float64], expected: NDArray[np.float64]) -> float:
    """Population stability index of two distributions over the same bins.

    Both are fractions; each is floored at ``1e-4`` so that empty bins stay finite.

    Examples
    --------
    >>> round(psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])), 6)
    0.0
    >>> round(psi(np.array([0.9, 0.1]), np.array([0.5, 0.5])), 3)
    0.879
    """
    a = np.maximum(actual, PSI_FLOOR)
    e = np.maximum(expected, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_pvalue(distance: float, n: int, m: int) -> float:
    """Asymptotic two-sample KS p-value of ``distance`` for sample sizes ``n`` and ``m``."""
    if n <= 0 or m <= 0:
        return 1.0
    en = math.sqrt(n * m / (n + m))
    return float(kolmogorov((en + 0.12 + 0.11 / en) * distance))


@dataclass(frozen=True)
class NumericReference:
    """What the windowed tests need from the profile of one numeric feature (or the score)."""

    name: str
    inner_edges: NDArray[np.float64] | None
    fractions: NDArray[np.float64] | None
    knots_x: NDArray[np.float64] | None
    knots_p: NDArray[np.float64] | None
    mean: float
    std: float
    minimum: float | None
    maximum: float | None
    missing_rate: float
    count: int

    @classmethod
    def from_profile(
        cls, name: str, profile: Profile, spec: FeatureSpec | None = None
    ) -> NumericReference:
        """Build from a card profile (and the feature's spec for range and missing rate)."""
        inner = fractions = kx = kp = None
        if profile.bin_edges and profile.bin_fractions and len(profile.bin_edges) >= 2:
            inner = np.asarray(profile.bin_edges[1:-1], dtype=np.float64)
            fractions = np.asarray(profile.bin_fractions, dtype=np.float64)
        if profile.quantiles and profile.quantile_levels:
            xs = list(profile.quantiles)
            ps = list(profile.quantile_levels)
            if profile.bin_edges and len(profile.bin_edges) == 11:
                xs += list(profile.bin_edges)
                ps += [i / 10 for i in range(11)]
            order = np.argsort(np.asarray(ps), kind="stable")
            x_arr = np.asarray(xs, dtype=np.float64)[order]
            p_arr = np.asarray(ps, dtype=np.float64)[order]
            # Same level from two sources: keep one knot per level.
            _, first = np.unique(p_arr, return_index=True)
            x_arr, p_arr = x_arr[first], p_arr[first]
            if np.all(np.diff(x_arr) > 0):
                kx, kp = x_arr, p_arr
        std = float(profile.std) if profile.std else 0.0
        present = profile.count * (1.0 - profile.missing_rate)
        return cls(
            name=name,
            inner_edges=inner,
            fractions=fractions,
            knots_x=kx,
            knots_p=kp,
            mean=float(profile.mean) if profile.mean is not None else 0.0,
            std=std if std > 0 else 1.0,
            minimum=spec.minimum if spec is not None else None,
            maximum=spec.maximum if spec is not None else None,
            missing_rate=spec.missing_rate if spec is not None else profile.missing_rate,
            count=max(int(present), 1),
        )


def _bin_counts(below: NDArray[np.intp], seen: int, out: NDArray[np.int64]) -> None:
    """Counts per bin from how many values lie below each inner edge (``np.diff`` with
    ``prepend``/``append`` cost more than the search itself)."""
    k = below.size
    out[0] = below[0]
    out[1:k] = below[1:] - below[:-1]
    out[k] = seen - below[-1]


def _ks_edges(ref: NumericReference, bins: int) -> NDArray[np.float64] | None:
    """Where ``F_ref`` (the reference CDF, linear between the knots) reaches k / ``bins``,
    k = 1 .. ``bins`` - 1: a value falls in KS bin k when it is at least the k-th edge and
    below the next. Levels at or below the first knot's are reached everywhere (-inf), those
    above the last knot's nowhere (+inf), as ``F_ref`` is flat beyond its knots."""
    if ref.knots_x is None or ref.knots_p is None:
        return None
    levels = np.arange(1, bins) / bins
    edges = np.interp(levels, ref.knots_p, ref.knots_x)
    edges[levels <= ref.knots_p[0]] = -np.inf
    edges[levels > ref.knots_p[-1]] = np.inf
    return edges


class NumericWindow:
    """Counts of one tumbling window over a matrix of numeric columns (NaN = missing).

    Parameters
    ----------
    refs : list of NumericReference
        One per column, in column order.
    ks_bins : int
        Resolution of the KS histogram.
    """

    def __init__(self, refs: list[NumericReference], ks_bins: int = 200) -> None:
        self.refs = refs
        self.ks_bins = ks_bins
        f = len(refs)
        self._lo = np.array([-np.inf if r.minimum is None else r.minimum for r in refs])
        self._hi = np.array([np.inf if r.maximum is None else r.maximum for r in refs])
        self._psi_sizes = [0 if r.fractions is None else r.fractions.size for r in refs]
        # With KS on, decile PSI bins are unions of KS bins (the deciles are knots of F_ref,
        # at levels k/10): PSI counts are then read off the KS histogram, not counted again.
        self._psi_from_ks = [
            r.knots_x is not None and size == 10 and ks_bins % 10 == 0
            for r, size in zip(refs, self._psi_sizes, strict=True)
        ]
        self._ks_edges = [_ks_edges(r, ks_bins) for r in refs]
        self.rows = 0
        self.missing = np.zeros(f, dtype=np.int64)
        self.out_of_range = np.zeros(f, dtype=np.int64)
        self._psi = np.zeros((f, max(self._psi_sizes, default=0)), dtype=np.int64)
        self._ks = np.zeros((f, ks_bins), dtype=np.int64)

    @property
    def psi_counts(self) -> list[NDArray[np.int64]]:
        """Per feature, the counts of present values in each PSI bin."""
        out: list[NDArray[np.int64]] = []
        for j, size in enumerate(self._psi_sizes):
            if self._psi_from_ks[j]:
                out.append(self._ks[j, : self.ks_bins].reshape(10, -1).sum(axis=1))
            else:
                out.append(self._psi[j, :size])
        return out

    @property
    def psi_shape(self) -> tuple[int, ...]:
        """Shape of the counts' ``psi`` (:meth:`count`)."""
        return tuple(self._psi.shape)

    @property
    def ks_hist(self) -> NDArray[np.int64]:
        """Per feature, the histogram of ``F_ref(x)`` on ``ks_bins`` bins."""
        return self._ks[:, : self.ks_bins]

    def count(self, matrix: NDArray[np.float64]) -> NumericCounts:
        """The counts of a block of rows, without adding them (:meth:`add_counts` does).

        ``matrix`` is ``(rows, features)``; Fortran order (contiguous columns) is fastest.
        """
        n = matrix.shape[0]
        nan = np.isnan(matrix)
        present = n - nan.sum(axis=0)
        with np.errstate(invalid="ignore"):
            oor = ((matrix < self._lo) | (matrix > self._hi)).sum(axis=0)
        clean = np.where(nan, 0.0, matrix)
        ks = np.zeros_like(self._ks)
        psi_counts = np.zeros_like(self._psi)
        for j, ref in enumerate(self.refs):
            ks_edges = self._ks_edges[j]
            psi_edges = None if self._psi_from_ks[j] else ref.inner_edges
            if ks_edges is None and psi_edges is None:
                continue
            # A bin holds the values from its lower edge up to the next: each bin's count is
            # read off the sorted column (NaN sorts last) with one binary search per edge,
            # rather than one per value (and F_ref interpolated per value for KS): 0.84 ->
            # 0.49 µs per event over 20 features.
            seen = int(present[j])
            ordered = np.sort(matrix[:, j])[:seen]
            if ks_edges is not None:
                _bin_counts(ordered.searchsorted(ks_edges), seen, ks[j])
            if psi_edges is not None:
                _bin_counts(ordered.searchsorted(psi_edges), seen, psi_counts[j])
        return NumericCounts(
            rows=n,
            missing=(n - present).astype(np.int64),
            out_of_range=oor.astype(np.int64),
            sums=clean.sum(axis=0),
            squares=np.einsum("ij,ij->j", clean, clean),
            ks=ks,
            psi=psi_counts,
        )

    def add_counts(self, counts: NumericCounts) -> None:
        """Add the counts of a block (:meth:`count`, possibly merged from several)."""
        self.rows += counts.rows
        self.missing += counts.missing
        self.out_of_range += counts.out_of_range
        self._ks += counts.ks
        self._psi += counts.psi

    def add(self, matrix: NDArray[np.float64]) -> NumericCounts:
        """Count a block of rows into the window; return its counts (sums included)."""
        counts = self.count(matrix)
        self.add_counts(counts)
        return counts

    def results(self) -> list[dict[str, Any]]:
        """Per column: present count, PSI, KS distance and p-value, missing and range rates."""
        out: list[dict[str, Any]] = []
        edges = np.arange(1, self.ks_bins + 1) / self.ks_bins
        psi_counts = self.psi_counts
        for j, ref in enumerate(self.refs):
            present = int(self.rows - self.missing[j])
            res: dict[str, Any] = {
                "rows": self.rows,
                "present": present,
                "missing_rate": float(self.missing[j]) / self.rows if self.rows else 0.0,
                "out_of_range_rate": float(self.out_of_range[j]) / present if present else 0.0,
                "psi": None,
                "ks_distance": None,
                "ks_pvalue": None,
            }
            if present >= MIN_PRESENT and ref.fractions is not None:
                res["psi"] = psi(psi_counts[j] / present, ref.fractions)
            hist = self.ks_hist[j]
            total = int(hist.sum())
            if total >= MIN_PRESENT and ref.knots_x is not None:
                d = float(np.max(np.abs(np.cumsum(hist) / total - edges)))
                res["ks_distance"] = d
                res["ks_pvalue"] = ks_pvalue(d, total, ref.count)
            out.append(res)
        return out

    def reset(self) -> None:
        """Start the next window."""
        self.rows = 0
        self.missing[:] = 0
        self.out_of_range[:] = 0
        self._psi[:] = 0
        self._ks[:] = 0

    def snapshot(self) -> dict[str, Any]:
        """JSON-able counts; the KS histogram is stored sparsely."""
        nz = [np.flatnonzero(row) for row in self.ks_hist]
        return {
            "rows": self.rows,
            "missing": self.missing.tolist(),
            "out_of_range": self.out_of_range.tolist(),
            "psi_counts": [c.tolist() for c in self.psi_counts],
            "ks_hist": [
                [i.tolist(), row[i].tolist()] for i, row in zip(nz, self.ks_hist, strict=True)
            ],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot` (shapes are checked by the caller's schema check)."""
        self.rows = int(state["rows"])
        self.missing[:] = state["missing"]
        self.out_of_range[:] = state["out_of_range"]
        for j, saved in enumerate(state["psi_counts"]):
            if not self._psi_from_ks[j]:
                self._psi[j, : len(saved)] = saved
        self._ks[:] = 0
        for row, (idx, vals) in zip(self._ks, state["ks_hist"], strict=True):
            row[np.asarray(idx, dtype=np.int64)] = vals


@dataclass(frozen=True)
class CategoricalReference:
    """Training categories of one categorical feature and their frequencies (missing excluded)."""

    name: str
    categories: tuple[str, ...]
    fractions: NDArray[np.float64]
    missing_rate: float

    @classmethod
    def from_profile(
        cls, name: str, profile: Profile, spec: FeatureSpec | None = None
    ) -> CategoricalReference:
        """Build from a card profile (and the feature's spec for categories and missing rate)."""
        freq = {k: v for k, v in (profile.frequencies or {}).items() if k != ""}
        trained = set(spec.categories or []) if spec is not None else set()
        cats = set(freq) | trained
        ordered = tuple(sorted(cats))
        total = sum(freq.values())
        fr = np.array([freq.get(c, 0.0) for c in ordered], dtype=np.float64)
        if total > 0:
            fr = fr / total
        missing = spec.missing_rate if spec is not None else profile.missing_rate
        return cls(name=name, categories=ordered, fractions=fr, missing_rate=missing)


class CategoricalWindow:
    """Category counts of one tumbling window of one feature (``None``/``""``/NaN = missing)."""

    def __init__(self, ref: CategoricalReference) -> None:
        self.ref = ref
        self._known = frozenset(ref.categories)
        self.counts: Counter[str] = Counter()
        self.rows = 0

    def count(self, values: NDArray[np.object_]) -> Counter[str]:
        """The counts of a block of values, by category (``""``: missing), not added."""
        counts: Counter[str] = Counter()
        for key, n in Counter(values.tolist()).items():
            if key is None or (isinstance(key, float) and math.isnan(key)):
                counts[""] += n
            else:
                counts[str(key)] += n
        return counts

    def add_counts(self, rows: int, counts: Mapping[str, int]) -> None:
        """Add the counts of a block of ``rows`` values (:meth:`count`, possibly merged)."""
        self.rows += rows
        self.counts.update(counts)

    def add(self, values: NDArray[np.object_]) -> None:
        """Count a block of values."""
        self.add_counts(int(values.shape[0]), self.count(values))

    def results(self) -> dict[str, Any]:
        """Present count, PSI (unseen categories pooled in one bin), missing and unseen rates."""
        missing = self.counts.get("", 0)
        present = self.rows - missing
        unseen = {k: n for k, n in self.counts.items() if k != "" and k not in self._known}
        n_unseen = sum(unseen.values())
        res: dict[str, Any] = {
            "rows": self.rows,
            "present": present,
            "missing_rate": missing / self.rows if self.rows else 0.0,
            "out_of_range_rate": n_unseen / present if present else 0.0,
            "unseen": sorted(unseen, key=lambda k: -unseen[k])[:10],
            "psi": None,
        }
        if present >= MIN_PRESENT:
            seen = np.array([self.counts.get(c, 0) for c in self.ref.categories], dtype=float)
            actual = np.append(seen, n_unseen) / present
            res["psi"] = psi(actual, np.append(self.ref.fractions, 0.0))
        return res

    def reset(self) -> None:
        """Start the next window."""
        self.counts.clear()
        self.rows = 0

    def snapshot(self) -> dict[str, Any]:
        """JSON-able counts."""
        return {"rows": self.rows, "counts": dict(self.counts)}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        self.rows = int(state["rows"])
        self.counts = Counter({str(k): int(v) for k, v in dict(state["counts"]).items()})


__all__ = [
    "MIN_PRESENT",
    "CategoricalReference",
    "CategoricalWindow",
    "NumericReference",
    "NumericWindow",
    "ks_pvalue",
    "psi",
]
