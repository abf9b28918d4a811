"""The label-free performance estimate of each ``"<version>/<variant>"`` a model's monitors see.

Workers add each batch's expected confusion sums to its summary
(:attr:`monitoring.summary.BatchSummary.expected`, computed with the calibrator and thresholds
of the card whose bins the summary is on); :class:`ScopeEstimates` feeds them to one
:class:`~monitoring.estimator.PerformanceEstimator`, keyed by scope, watching each scope with
that card (its calibrator, calibration error, thresholds and holdout figure), so that a
version without a card of its own is estimated, like its labelled metrics, against the
champion's. :class:`~monitoring.model_monitor.ModelMonitor` records the checks with its
other findings and reports :meth:`ScopeEstimates.metrics` as ``metrics[scope]["estimated"]``.

Its JSON state is the ``estimate_state`` part of a monitor snapshot: each scope's card
version and the estimator's blocks (:mod:`monitoring.monitor_snapshot`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from models.card import ModelCard
from monitoring.config import MonitorConfig
from monitoring.errors import SnapshotError
from monitoring.estimation import ExpectedConfusion
from monitoring.estimator import PerformanceEstimator
from monitoring.findings import Check


class ScopeEstimates:
    """Estimated accuracy, precision, recall and F1 per scope, from summaries' blocks.

    Parameters
    ----------
    config : MonitorConfig
        ``window``, ``min_labels``, ``performance_margin`` and ``performance_metric``
        (:meth:`PerformanceEstimator.from_config`).

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.workflow import TrainOptions, train
    >>> from monitoring.estimation import expected_confusion
    >>> res = train(synthetic("sea", rows=3000, seed=1), TrainOptions(name="sea", folds=3))
    >>> est = ScopeEstimates(MonitorConfig(window=1000, min_labels=200))
    >>> live = synthetic("sea", rows=1000, seed=2)
    >>> p = res.pipeline.predict_proba(live.matrix())[:, 1]
    >>> block = expected_confusion(p, res.card.calibrator, res.card.thresholds.default)
    >>> est.observe("1/champion", res.card, block, {"version": "1"})
    [('performance||estimated_f1_drop', None, True)]
    >>> figures = est.metrics()["1/champion"]
    >>> figures["events"], figures["f1"]["low"] <= figures["f1"]["value"] <= figures["f1"]["high"]
    (1000, True)
    """

    def __init__(self, config: MonitorConfig) -> None:
        self._estimator = PerformanceEstimator.from_config(config)
        self._refs: dict[str, str] = {}

    def _watch(self, scope: str, card: ModelCard) -> None:
        if self._refs.get(scope) != card.version:
            # Re-added on another card (a version's own card learnt later): blocks are kept.
            self._estimator.add_card(card, key=scope)
            self._refs[scope] = card.version

    def observe(
        self, scope: str, card: ModelCard, block: ExpectedConfusion, details: Mapping[str, Any]
    ) -> list[Check]:
        """Add the block of a summary counted on ``card`` and check the scope's estimate."""
        self._watch(scope, card)
        return self._estimator.observe(scope, block, details)

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per scope: ``{"events", "bias", metric: {"value", "low", "high"} | None}`` over
        the window (:meth:`monitoring.estimation.Estimate.to_dict`)."""
        return {s: self._estimator.estimate(s).to_dict() for s in sorted(self._refs)}

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: ``{"refs": {scope: card version}, "blocks": {scope: [...]}}``."""
        return {"refs": dict(self._refs), "blocks": self._estimator.snapshot()}

    def restore(self, state: Mapping[str, Any], card: Callable[[str], ModelCard]) -> None:
        """Continue from :meth:`snapshot`; ``card`` gives the card of a version (the
        champion's when the version's own is not known here)."""
        if not isinstance(state, Mapping) or not isinstance(state.get("refs"), Mapping):
            raise SnapshotError("estimate_state must be an object with refs", found=state)
        for scope, ref in state["refs"].items():
            self._watch(str(scope), card(str(ref)))
        self._estimator.restore(state.get("blocks") or {})


__all__ = ["ScopeEstimates"]
