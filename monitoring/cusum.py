"""Banks of one-sided CUSUMs updated once per block from summaries, and their thresholds.

A CUSUM accumulates the log-likelihood ratio of "changed" against "as the reference" and
alarms when it reaches ``h``: ``C = max(0, C + llr(block))``. Each bank holds a matrix of
them, one row per monitored quantity (a feature, a category, the error stream) and one column
per alternative it is tuned to (a shift size and direction), and updates every cell at once
from the block's sums and counts: no Python loop per event, and a block of ``n`` events is one
update whatever the micro-batches that brought it.

- :class:`GaussianCusum`: the alternative is a shift ``delta`` (in standard deviations per
  event) of the mean of a standardised statistic; a block whose standardised values sum to
  ``S`` over ``n`` events adds ``delta * S - n * (delta**2 / 2 + |delta| * guard)``. The
  ``guard`` (per row) widens the allowance by the uncertainty of the reference itself, a
  sample of the training data, so that a reference a little off the truth does not pass for
  a change;
- :class:`BernoulliCusum`: the alternative multiplies the odds of an event (a category, an
  error) by ``ratio``; a block of ``n`` events of which ``c`` are hits adds
  ``c * log(q / p) + (n - c) * log((1 - q) / (1 - p))``.

:func:`threshold` turns a false-alarm budget into ``h``. Lorden's bound says a CUSUM on true
log-likelihood ratios raises a false alarm at most once every ``e**h`` updates on average, so
``h = log(detectors / (rate * events_per_update))`` keeps each of ``detectors`` detectors
under ``rate / detectors`` false alarms per event, and all of them together under ``rate``
(the union bound; the detectors of one quantity are correlated, so the real total is lower).

The bound holds for any increments, so it is loose for the Gaussian ones of
:class:`GaussianCusum` (a block's standardised sum is normal): their average run length to a
false alarm, computed exactly (:func:`average_run_length`), is at least ``e**(h + 1.57)``
updates whatever the shift and the block size, so :func:`gaussian_threshold` lowers ``h`` by
``GAUSSIAN_SLACK`` for them at the same budget, and every shift is found sooner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special

from monitoring.errors import SnapshotError

# Every reference is a sample (training rows, the holdout): allowances are widened by this
# many of its standard errors, so that a reference a little off the truth is not a change.
GUARD_SE = 2.0


def threshold(rate_per_event: float, detectors: int, events_per_update: int = 1) -> float:
    """The CUSUM threshold ``h`` that keeps ``detectors`` CUSUMs under ``rate_per_event``.

    Parameters
    ----------
    rate_per_event : float
        False alarms per event allowed to all the detectors together (1e-6: one per million).
    detectors : int
        How many CUSUMs share the budget.
    events_per_update : int
        Fewest events in one update (a block); each update may then alarm more often.

    Examples
    --------
    >>> round(threshold(1e-6, 16), 2)
    16.59
    >>> round(threshold(1e-6, 16, events_per_update=256), 2)
    11.04
    """
    per_update = rate_per_event * max(events_per_update, 1) / max(detectors, 1)
    return max(math.log(1.0 / min(per_update, 0.5)), 1.0)


# log(ARL) - h for Gaussian increments is least (1.575) at a divergence of about 1.65 per
# update, the same for any h from 6 on: tests/unit/monitoring/test_cusum.py recomputes it.
GAUSSIAN_SLACK = 1.57


def gaussian_threshold(h: float) -> float:
    """The threshold of a :class:`GaussianCusum` kept as rare in false alarms as Lorden's
    bound keeps a CUSUM at ``h``.

    Examples
    --------
    >>> round(gaussian_threshold(threshold(1e-6, 16, events_per_update=256)), 2)
    9.47
    """
    return max(h - GAUSSIAN_SLACK, 1.0)


def average_run_length(h: float, kl: float, cells: int = 300) -> float:
    """Updates until a CUSUM with threshold ``h`` started at 0 alarms on average, with no
    change, when each update adds a Gaussian log-likelihood ratio whose divergence is ``kl``
    (mean ``-kl``, variance ``2 * kl``): Brook and Evans' Markov chain on ``cells`` cells.

    Examples
    --------
    >>> arl = average_run_length(10.0, 2.0)
    >>> bool(arl > math.exp(10.0 + GAUSSIAN_SLACK))
    True
    """
    width = h / cells
    edges = np.arange(cells + 1) * width
    starts = (np.arange(cells) + 0.5) * width
    starts[0] = 0.0  # the first cell stands for the reset state
    z = (edges[None, :] - starts[:, None] + kl) / math.sqrt(2.0 * kl)
    cdf = special.ndtr(z)
    moves = np.diff(cdf, axis=1)
    moves[:, 0] += cdf[:, 0]  # below 0: reset
    arl = np.linalg.solve(np.eye(cells) - moves, np.ones(cells))
    return float(arl[0])


class _Bank:
    """The CUSUM matrix, its threshold, alarms and JSON state, shared by both banks."""

    def __init__(self, rows: int, columns: int, h: float) -> None:
        self.h = float(h)
        self.stats = np.zeros((rows, columns))
        self.peak = self.stats  # the statistics at the last update, before any reset
        self.updates = 0

    def _step(self, llr: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Add one block's log-likelihood ratios; return the rows that alarmed (then reset)."""
        self.stats = np.maximum(self.stats + llr, 0.0)
        self.updates += 1
        hit: NDArray[np.bool_] = np.asarray((self.stats >= self.h).any(axis=1), dtype=np.bool_)
        self.peak = self.stats
        if hit.any():
            # Every alternative of an alarmed row starts again: one change, one finding, and
            # the next one only on fresh evidence.
            self.stats = self.stats.copy()
            self.stats[hit] = 0.0
        return hit

    def winner(self, row: int) -> int:
        """The column (alternative) that stood highest at the last update of ``row``."""
        return int(np.argmax(self.peak[row]))

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state (floats round-trip exactly through JSON)."""
        return {"h": self.h, "updates": self.updates, "stats": self.stats.tolist()}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`; a snapshot of another shape is refused."""
        stats = np.asarray(state["stats"], dtype=np.float64).reshape(-1, self.stats.shape[1])
        if stats.shape != self.stats.shape:
            raise SnapshotError(f"CUSUM snapshot has shape {stats.shape}, not {self.stats.shape}")
        self.stats = stats
        self.updates = int(state["updates"])


class GaussianCusum(_Bank):
    """Two-sided CUSUMs for shifts of the mean of standardised statistics, one row each.

    Parameters
    ----------
    shifts : sequence of float, or array of shape (rows, alternatives)
        Alternatives, in standard deviations per event (negative: a fall); the same for
        every row, or a row each.
    guard : sequence of float
        Per row, the allowance added for the reference's own uncertainty (standard deviations).
    h : float
        Threshold (:func:`gaussian_threshold`).

    Examples
    --------
    >>> bank = GaussianCusum([-0.5, 0.5], guard=[0.0, 0.0], h=10.0)
    >>> bank.update(np.array([20.0, -2.0]), np.array([64, 64])).tolist()  # sums, counts
    [False, False]
    >>> bank.stats.round(2).tolist()
    [[0.0, 2.0], [0.0, 0.0]]
    >>> bank.update(np.array([40.0, 0.0]), np.array([64, 64])).tolist()
    [True, False]
    """

    def __init__(
        self, shifts: Sequence[float] | NDArray[np.float64], guard: Sequence[float], h: float
    ) -> None:
        alternatives = np.asarray(shifts, dtype=np.float64)
        super().__init__(len(guard), alternatives.shape[-1], h)
        self.shifts = np.broadcast_to(alternatives, self.stats.shape).copy()
        self.guard = np.asarray(guard, dtype=np.float64)
        # Per row and alternative, what each event costs: delta**2 / 2 plus the guard.
        self._drift = self.shifts**2 / 2 + np.abs(self.shifts) * self.guard[:, None]

    def update(
        self, sums: NDArray[np.float64], counts: NDArray[np.int64] | NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        """One block: per row, the sum of its standardised values and how many there were."""
        n = np.asarray(counts, dtype=np.float64)[:, None]
        llr = sums[:, None] * self.shifts - n * self._drift
        return self._step(llr)


class BernoulliCusum(_Bank):
    """CUSUMs for a change in the rate of hits (a category's share, an error rate), one row each.

    Parameters
    ----------
    rates : sequence of float
        Per row, the reference rate ``p`` (clipped into (1e-6, 1 - 1e-6)).
    ratios : sequence of float
        Alternatives as odds ratios (``> 1``: more hits, ``< 1``: fewer).
    h : float
        Threshold (:func:`threshold`).

    Examples
    --------
    >>> bank = BernoulliCusum([0.25], ratios=[3.0], h=30.0)
    >>> [bool(bank.update(np.array([55]), np.array([100]))[0]) for _ in range(3)]
    [False, True, False]
    """

    def __init__(self, rates: Sequence[float], ratios: Sequence[float], h: float) -> None:
        super().__init__(len(rates), len(ratios), h)
        p = np.clip(np.asarray(rates, dtype=np.float64), 1e-6, 1 - 1e-6)[:, None]
        r = np.asarray(ratios, dtype=np.float64)[None, :]
        q = r * p / (1 - p + r * p)
        self.rates = p[:, 0]
        self.ratios = r[0]
        self._hit = np.log(q / p)
        self._miss = np.log((1 - q) / (1 - p))

    def update(self, hits: NDArray[np.int64], counts: NDArray[np.int64]) -> NDArray[np.bool_]:
        """One block: per row, the hits and the events they were counted among."""
        c = hits.astype(np.float64)[:, None]
        n = counts.astype(np.float64)[:, None]
        return self._step(c * self._hit + (n - c) * self._miss)


__all__ = [
    "GAUSSIAN_SLACK",
    "GUARD_SE",
    "BernoulliCusum",
    "GaussianCusum",
    "average_run_length",
    "gaussian_threshold",
    "threshold",
]
