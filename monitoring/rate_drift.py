"""CUSUMs on rates, per block: each category's share of a categorical feature, and the error
rate of one version against its holdout (see :mod:`monitoring.sequential_drift` for the
budget that sets their thresholds)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitoring.cusum import GUARD_SE, BernoulliCusum
from monitoring.findings import Check, Finding
from monitoring.windows import CategoricalReference

CATEGORY_RATIOS: tuple[float, ...] = (0.25, 0.5, 0.8, 1.25, 2.0, 4.0)
ERROR_RATIOS: tuple[float, ...] = (1.25, 1.6, 2.5)


class CategoricalDrift:
    """Per category of every categorical feature, CUSUMs on its share's odds, per block.

    Parameters
    ----------
    refs : list of CategoricalReference
        One per feature.
    counts : list of int
        Rows of each feature's reference (for the guard).
    h : float
        Threshold per block.
    """

    def __init__(self, refs: list[CategoricalReference], counts: Sequence[int], h: float) -> None:
        self.refs = refs
        self._rows = [(f, c) for f, r in enumerate(refs) for c in r.categories]
        self._index = [{c: i for i, c in enumerate(r.categories)} for r in refs]
        rates = np.concatenate([r.fractions for r in refs]) if refs else np.zeros(0)
        n_ref = np.repeat(
            np.maximum(np.asarray(counts, dtype=np.float64), 1.0), [len(r.categories) for r in refs]
        )
        rates = np.maximum(rates, 0.5 / n_ref)
        se = GUARD_SE * np.sqrt(rates * (1 - rates) / n_ref)
        up = [r for r in CATEGORY_RATIOS if r > 1]
        down = [r for r in CATEGORY_RATIOS if r < 1]
        self.up = BernoulliCusum(np.minimum(rates + se, 0.999).tolist(), up, h)
        self.down = BernoulliCusum(np.maximum(rates - se, 1e-6).tolist(), down, h)
        self._feature = np.array([f for f, _ in self._rows], dtype=np.int64)
        self.pending_hits = np.zeros(len(self._rows), dtype=np.int64)
        self.pending_counts = np.zeros(len(refs), dtype=np.int64)

    def add(self, columns: Sequence[NDArray[np.object_]]) -> None:
        """Count a batch (one column per feature; unseen and missing values are not counted)."""
        self.add_counts([Counter(c for c in col.tolist() if isinstance(c, str)) for col in columns])

    def add_counts(self, counts: Sequence[Mapping[str, int]]) -> None:
        """Add a block's count of each value, per feature (unseen and missing ones are not
        counted)."""
        offset = 0
        for f, values in enumerate(counts):
            index = self._index[f]
            for value, n in values.items():
                i = index.get(value)
                if i is not None:
                    self.pending_hits[offset + i] += n
                    self.pending_counts[f] += n
            offset += len(index)

    def checks(self, details: dict[str, Any]) -> list[Check]:
        """Close the block: update every CUSUM; a finding per feature with a category alarmed."""
        hits, self.pending_hits = self.pending_hits, np.zeros_like(self.pending_hits)
        counts = self.pending_counts[self._feature]
        self.pending_counts = np.zeros_like(self.pending_counts)
        fired: dict[int, tuple[str, float, float]] = {}
        for bank in (self.up, self.down):
            for i in np.flatnonzero(bank.update(hits, counts)):
                k = bank.winner(int(i))
                f, category = self._rows[int(i)]
                fired.setdefault(f, (category, float(bank.ratios[k]), float(bank.peak[i, k])))
        checks: list[Check] = []
        for f, (category, ratio, stat) in sorted(fired.items()):
            name = self.refs[f].name
            extra = {**details, "test": "category", "category": category, "odds_ratio": ratio}
            extra["direction"] = "up" if ratio > 1 else "down"
            finding = Finding("data_drift", "cusum", stat, self.up.h, name, extra)
            checks.append((f"data_drift|{name}|cusum", finding, False))
        return checks

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "hits": self.pending_hits.tolist(),
            "counts": self.pending_counts.tolist(),
            "up": self.up.snapshot(),
            "down": self.down.snapshot(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        self.up.restore(state["up"])
        self.down.restore(state["down"])
        self.pending_hits = np.asarray(state["hits"], dtype=np.int64)
        self.pending_counts = np.asarray(state["counts"], dtype=np.int64)


class ErrorDrift:
    """CUSUMs for the error rate of one version rising above its holdout rate.

    Parameters
    ----------
    error_rate : float
        The holdout error rate (1 - accuracy).
    rows : int
        Holdout rows (for the guard).
    h : float
        Threshold per labelled batch.

    Examples
    --------
    >>> det = ErrorDrift(0.2, rows=2000, h=18.0)
    >>> rng = np.random.default_rng(1)
    >>> late = [i for i in range(100) if det.update(rng.random(50) < (0.4 if i >= 50 else 0.2))]
    >>> late[0] - 50 < 5, min(late) >= 50
    (True, True)
    """

    def __init__(self, error_rate: float, rows: int, h: float) -> None:
        p = min(max(error_rate, 0.5 / max(rows, 1)), 0.999)
        p += GUARD_SE * math.sqrt(p * (1 - p) / max(rows, 1))
        self.reference = error_rate
        self.bank = BernoulliCusum([min(p, 0.999)], ERROR_RATIOS, h)

    def update(self, errors: NDArray[np.bool_]) -> dict[str, Any] | None:
        """One labelled batch; on an alarm, what fired (else None)."""
        hits = np.array([int(np.count_nonzero(errors))], dtype=np.int64)
        if not self.bank.update(hits, np.array([errors.size], dtype=np.int64))[0]:
            return None
        k = self.bank.winner(0)
        return {
            "statistic": float(self.bank.peak[0, k]),
            "odds_ratio": float(self.bank.ratios[k]),
            "reference_error_rate": self.reference,
        }

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state."""
        return {"kind": "cusum", **self.bank.snapshot()}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        self.bank.restore(state)


__all__ = ["CATEGORY_RATIOS", "ERROR_RATIOS", "CategoricalDrift", "ErrorDrift"]
