"""Multivariate drift: the reconstruction error of the card's PCA, watched by CUSUMs per block.

Each event's numeric features are standardised as in training and projected on the principal
axes the card kept (:class:`models.card.PcaReference`); what the projection misses, the
squared *reconstruction error*, is small while the features keep their training correlations
and grows when one breaks, even when every feature's own distribution stays the same (which
the per-feature detectors cannot see).

The error is monitored exactly as a numeric feature is (:class:`NumericDrift`, reused), read
as ``log(offset + e)`` (a sum of squares is skewed; logged, its normal scores interpolate
closely, as the score's logits do): each value goes through the holdout's quantiles of it to
a normal score, location and scale CUSUMs run on those, and the threshold comes from
:func:`~monitoring.sequential_drift.calibrate`, which counts these detectors into the model's
one false-alarm budget.

The input of the detector is a :class:`ReconstructionBlock`: a few sums per batch, which add
up across batches and workers (:meth:`ReconstructionBlock.merge`) and travel as JSON, so the
detector never needs the events themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.card import PCA_TINY, ModelCard, PcaReference
from monitoring.findings import Check, Finding
from monitoring.pca_summary import ReconstructionBlock
from monitoring.sequential_drift import NumericDrift
from monitoring.windows import NumericReference

RECONSTRUCTION_ERROR = "reconstruction_error"
# Added to the guard (standard deviations), as SCORE_MODEL_ERROR is for the score: how far the
# error's interpolated reference may be from the truth. Measured on 400,000 stationary events
# of the detection bench's families: means of g and g**2 off by at most 0.016 (Gaussian),
# 0.009 (lognormal) and 0.028 (Poisson, whose error has near-atoms), against a guard of 0.02.
PCA_MODEL_ERROR = 0.02
_TINY_RESIDUAL = math.sqrt(PCA_TINY)
COLUMNS_TOP = 5  # columns a finding names (a share under 1e-4 reads as 0)


class Reconstruction:
    """The card's PCA as arrays: a batch's numeric matrix to each event's reconstruction error.

    Parameters
    ----------
    pca : PcaReference
        From the card (:attr:`models.card.ModelCard.pca`); the matrix's columns are
        ``pca.columns`` in that order.
    """

    def __init__(self, pca: PcaReference) -> None:
        self.columns = list(pca.columns)
        self._mean = np.asarray(pca.mean, dtype=np.float64)
        self._scale = np.asarray(pca.scale, dtype=np.float64)
        self._axes = np.asarray(pca.components, dtype=np.float64).reshape(pca.kept, -1)
        self.reference = NumericReference.from_profile(RECONSTRUCTION_ERROR, pca.error)
        self.column_error = np.asarray(pca.column_error, dtype=np.float64)
        self.offset = pca.offset
        # Only its normal-score curve is used here (summarise), never its CUSUMs.
        self._scores = NumericDrift([self.reference], h=np.inf)

    @classmethod
    def from_card(cls, card: ModelCard) -> Reconstruction | None:
        """The card's reconstruction, or None when the card has no PCA (the detector is off)."""
        return None if card.pca is None else cls(card.pca)

    def residuals(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per event and column, what the kept axes miss (standardised; NaN counts as the
        column's training mean)."""
        z = (np.asarray(matrix, dtype=np.float64) - self._mean) / self._scale
        z[np.isnan(z)] = 0.0
        r = z - (z @ self._axes.T) @ self._axes
        r[np.abs(r) < _TINY_RESIDUAL] = 0.0  # rounding, as in the card's reference
        return np.asarray(r, dtype=np.float64)

    def errors(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each event's squared reconstruction error."""
        r = self.residuals(matrix)
        return np.asarray(np.einsum("ij,ij->i", r, r), dtype=np.float64)

    def summarise(self, errors: NDArray[np.float64]) -> NDArray[np.float64]:
        """:meth:`NumericDrift.summarise` of a vector of errors read as ``log(offset + e)``
        (the card's reference is of those), as 4 numbers."""
        return self._scores.summarise(np.log(self.offset + errors).reshape(-1, 1))[:, 0]


def reconstruction_block(matrix: NDArray[np.float64], model: Reconstruction) -> ReconstructionBlock:
    """The :class:`ReconstructionBlock` of a batch (``(rows, columns)``, ``model.columns``)."""
    r = model.residuals(matrix)
    squared = r * r
    errors = squared.sum(axis=1)
    s = model.summarise(errors)
    return ReconstructionBlock(
        events=int(matrix.shape[0]),
        summary=(float(s[0]), float(s[1]), float(s[2]), float(s[3])),
        error=float(errors.sum()),
        columns=tuple(float(v) for v in squared.sum(axis=0)),
    )


class MultivariateDrift:
    """Location and scale CUSUMs of the reconstruction error, updated from blocks.

    Parameters
    ----------
    model : Reconstruction
        The card's PCA.
    h : float
        Threshold per update (``calibrate(card, config).gaussian``, which counts these).
    block_events : int
        Fewest events per CUSUM update (``config.detector_block``, which the threshold
        assumed); smaller blocks wait for the next ones.

    Examples
    --------
    >>> from models.explain import fit_pca
    >>> rng = np.random.default_rng(1)
    >>> def draw(n, rho):
    ...     z = rng.normal(size=(n, 4))
    ...     z[:, 1] = rho * z[:, 0] + (1 - rho**2) ** 0.5 * z[:, 1]
    ...     return z
    >>> model = Reconstruction(fit_pca(draw(20_000, 0.8), draw(5_000, 0.8), list("abcd")))
    >>> det = MultivariateDrift(model, h=12.0, block_events=256)
    >>> hits = []
    >>> for block in range(40):  # the correlation breaks at block 20; marginals stay N(0, 1)
    ...     x = draw(256, 0.0 if block >= 20 else 0.8)
    ...     hits += [block for _ in det.update(reconstruction_block(x, model), {})]
    >>> hits[0]
    20
    """

    def __init__(self, model: Reconstruction, h: float, block_events: int = 256) -> None:
        self.model = model
        self.block_events = block_events
        self.drift = NumericDrift([model.reference], h, PCA_MODEL_ERROR)
        self.pending = ReconstructionBlock.empty(len(model.columns))

    @property
    def h(self) -> float:
        """The threshold."""
        return self.drift.bank.h

    def update(self, block: ReconstructionBlock, details: Mapping[str, Any]) -> list[Check]:
        """Add a block; once ``block_events`` are in, update the CUSUMs. A finding per alarm
        (``data_drift``, detector ``cusum``, test ``multivariate``, no feature), whose details
        say the alternative, the mean error against the reference's and how the columns share
        the excess residual (the ``COLUMNS_TOP`` largest, largest first)."""
        self.pending = self.pending.merge(block)
        if self.pending.events < self.block_events:
            return []
        closed, self.pending = self.pending, ReconstructionBlock.empty(len(self.model.columns))
        self.drift.pending = np.asarray(closed.summary, dtype=np.float64).reshape(4, 1)
        checks: list[Check] = []
        shares = excess_shares(closed, self.model)
        for _, test, shift, stat in self.drift.flush():
            extra = {
                **details,
                "test": "multivariate",
                "alternative": test,
                "shift": shift,
                "direction": "up" if shift > 0 else "down",
                "mean_error": closed.error / max(closed.events, 1),
                "reference_mean_error": float(self.model.column_error.sum()),
                "columns": [[n, round(s, 4)] for n, s in shares[:COLUMNS_TOP]],
            }
            f = Finding("data_drift", "cusum", stat, self.h, None, extra)
            checks.append(("data_drift||multivariate", f, False))
        return checks

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state."""
        return {"pending": self.pending.to_json(), "cusum": self.drift.snapshot()}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        self.drift.restore(state["cusum"])
        self.pending = ReconstructionBlock.from_json(state["pending"])


def excess_shares(block: ReconstructionBlock, model: Reconstruction) -> list[tuple[str, float]]:
    """The columns whose mean squared residual in ``block`` exceeds the reference's, with
    their share of the excess, largest first: where the broken correlation is."""
    if block.events == 0:
        return []
    live = np.asarray(block.columns, dtype=np.float64) / block.events
    excess = np.maximum(live - model.column_error, 0.0)
    total = float(excess.sum())
    if total <= 0:
        return []
    order = np.argsort(-excess, kind="stable")
    return [(model.columns[j], float(excess[j] / total)) for j in order if excess[j] > 0]


def merge_blocks(blocks: Sequence[ReconstructionBlock], columns: int) -> ReconstructionBlock:
    """All ``blocks`` as one (of ``columns`` columns)."""
    out = ReconstructionBlock.empty(columns)
    for b in blocks:
        out = out.merge(b)
    return out


__all__ = [
    "COLUMNS_TOP",
    "PCA_MODEL_ERROR",
    "RECONSTRUCTION_ERROR",
    "MultivariateDrift",
    "Reconstruction",
    "ReconstructionBlock",
    "excess_shares",
    "merge_blocks",
    "reconstruction_block",
]
