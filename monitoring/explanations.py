"""What a variant's feature monitor adds to say why a model drifted: evidence and the PCA.

:class:`FeatureExplanations` sits beside the per-feature detectors of one variant
(:class:`~monitoring.drift.FeatureMonitor`) and reads the same summaries:

- the *evidence* of each feature's drift (:class:`~monitoring.attribution.FeatureEvidence`),
  fed every summary's numeric block sums (the normal scores the CUSUMs read) and each
  categorical feature's counts in its reference's category order; :func:`explain_checks`
  turns it, weighted by the card's importances, into the ``explained_by`` of the
  prediction-drift, performance and concept-drift findings;
- with a PCA in the card and the CUSUM detectors, the *multivariate* detector
  (:class:`~monitoring.multivariate.MultivariateDrift`), fed the
  :class:`~monitoring.multivariate.ReconstructionBlock` each summary carries; it is counted in
  the model's one false-alarm budget (:func:`~monitoring.sequential_drift.calibrate`).

``explained_by`` is ``[[feature, share], ...]``, largest share first (at most
``EXPLAINED_TOP``); an empty list means no feature drifted beyond noise, which points to a
concept drift. A card without importances gives no ``explained_by`` at all.

"Beyond noise" is a floor on each feature's evidence (a normal deviate) that grows with the
number of features and half-lives looked at (:func:`blame_floor`): on a stationary stream the
largest of 80 deviates (20 features, 4 half-lives) passes 3 in about one batch in sixteen
(measured: 6 %), so a fixed floor of 3 would blame a feature for every concept drift that
long; at most ``BLAME_RATE`` of the explanations of a stationary stream name a feature.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from models.card import ModelCard
from monitoring.attribution import FLOOR, FeatureEvidence
from monitoring.config import MonitorConfig
from monitoring.findings import Check
from monitoring.multivariate import (
    MultivariateDrift,
    Reconstruction,
    ReconstructionBlock,
    reconstruction_block,
)
from monitoring.sequential_drift import calibrate
from monitoring.summary import FeatureCounts
from monitoring.windows import CategoricalReference, NumericReference

EXPLAINED_KINDS = frozenset({"prediction_drift", "performance", "concept_drift"})
EXPLAINED_TOP = 5  # features named in a finding's explained_by
BLAME_RATE = 1e-3  # explanations of a stationary stream that may name a feature (at most)


class FeatureExplanations:
    """Drift evidence of every feature and the multivariate detector, of one variant.

    Parameters
    ----------
    card : ModelCard
        The card whose reference bins the variant's summaries are on (its PCA, if any).
    config : MonitorConfig
        ``stream_detector`` (the multivariate detector runs with ``cusum`` only) and
        ``detector_block``.
    numeric : sequence of NumericReference
        The numeric features' references, in the summaries' column order.
    categorical : sequence of CategoricalReference
        The categorical features' references, in the summaries' order.
    reference_rows : sequence of int
        Rows behind each categorical reference (the numeric ones say theirs).

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.workflow import TrainOptions, train
    >>> from monitoring.drift import FeatureMonitor
    >>> res = train(synthetic("hyperplane", rows=4000, seed=1), TrainOptions(name="h", folds=2))
    >>> fm = FeatureMonitor(res.card, MonitorConfig())
    >>> live = synthetic("hyperplane", rows=2048, seed=2).numeric
    >>> live[:, 0] += 0.3  # x0 shifts
    >>> for s in range(0, 2048, 256):
    ...     _ = fm.observe(live[s : s + 256], [], {})
    >>> from monitoring.findings import Finding
    >>> drift = Finding("prediction_drift", "cusum", 20.0, 12.7, None, {})
    >>> found = explain_checks([("prediction_drift||cusum", drift, False)],
    ...                        fm.explain.evidence, res.card.importance.values)
    >>> found[0][1].details["explained_by"][0][0]
    'x0'
    >>> fm.explain.multi is not None  # the card has a PCA of its numeric features
    True
    """

    def __init__(
        self,
        card: ModelCard,
        config: MonitorConfig,
        numeric: Sequence[NumericReference],
        categorical: Sequence[CategoricalReference],
        reference_rows: Sequence[int],
    ) -> None:
        self._categories = [r.categories for r in categorical]
        shares = {r.name: r.fractions.tolist() for r in categorical}
        rows = [*(r.count for r in numeric), *reference_rows]
        names = [r.name for r in numeric]
        self.evidence = FeatureEvidence(names, shares, reference_rows=rows)
        self.model: Reconstruction | None = None
        self.multi: MultivariateDrift | None = None
        self._columns: NDArray[np.intp] | None = None
        model = Reconstruction.from_card(card)
        position = {n: j for j, n in enumerate(names)}
        usable = model is not None and all(c in position for c in model.columns)
        if model is not None and usable and config.stream_detector == "cusum":
            self.model = model
            self._columns = np.array([position[c] for c in model.columns], dtype=np.intp)
            h = calibrate(card, config).gaussian
            self.multi = MultivariateDrift(model, h, config.detector_block)

    def block(self, matrix: NDArray[np.float64]) -> ReconstructionBlock | None:
        """The multivariate detector's sums of a batch (numeric matrix in the monitor's column
        order), or None without the detector."""
        if self.model is None or self._columns is None:
            return None
        return reconstruction_block(matrix[:, self._columns], self.model)

    def observe(self, counts: FeatureCounts, details: dict[str, Any]) -> list[Check]:
        """Add a summary's features to the evidence and the multivariate detector; the
        detector's findings once a block of ``detector_block`` events closes."""
        cats = [
            np.array([c.get(k, 0) for k in keys], dtype=np.int64)
            for keys, c in zip(self._categories, counts.categorical, strict=True)
        ]
        self.evidence.add(counts.normal, cats)
        if self.multi is None or counts.reconstruction is None:
            return []
        return self.multi.update(counts.reconstruction, details)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: ``evidence`` and ``multivariate`` (null without the detector)."""
        return {
            "evidence": self.evidence.snapshot(),
            "multivariate": None if self.multi is None else self.multi.snapshot(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`; what a snapshot lacks (one older than the evidence or
        the detector, or taken without it) starts afresh."""
        evidence = state.get("evidence")
        if evidence is not None:
            self.evidence.restore(evidence)
        multi = state.get("multivariate")
        if multi is not None and self.multi is not None:
            self.multi.restore(multi)


def blame_floor(evidence: FeatureEvidence, rate: float = BLAME_RATE) -> float:
    """The evidence below which a feature counts as not drifted: the normal deviate that all
    of ``evidence``'s features and half-lives together pass with probability ``rate`` at most
    (Bonferroni), and never below :data:`~monitoring.attribution.FLOOR`.

    Examples
    --------
    >>> round(blame_floor(FeatureEvidence([f"x{i}" for i in range(20)], {})), 2)
    4.21
    """
    looks = max(len(evidence.numeric) + len(evidence.categorical), 1) * evidence.half_lives.size
    return max(FLOOR, float(ndtri(1.0 - rate / looks)))


def explain_checks(
    checks: Sequence[Check],
    evidence: FeatureEvidence | None,
    importance: Mapping[str, float] | None,
) -> list[Check]:
    """``checks`` whose prediction-drift, performance and concept-drift findings carry
    ``details["explained_by"]``: the features that explain them, ranked (see the module).

    Nothing is added without evidence (no scored events seen yet) or importances (an older
    card).
    """
    if evidence is None or importance is None:
        return list(checks)
    ranked: list[list[Any]] | None = None
    out: list[Check] = []
    for key, finding, periodic in checks:
        if finding is not None and finding.kind in EXPLAINED_KINDS:
            if ranked is None:  # one ranking for every finding of the call
                top = evidence.explain(importance, blame_floor(evidence), EXPLAINED_TOP)
                ranked = [[name, round(share, 4)] for name, share in top]
            details = {**finding.details, "explained_by": ranked}
            finding = dataclasses.replace(finding, details=details)
        out.append((key, finding, periodic))
    return out


__all__ = [
    "BLAME_RATE",
    "EXPLAINED_KINDS",
    "EXPLAINED_TOP",
    "FeatureExplanations",
    "blame_floor",
    "explain_checks",
]
