"""A scored batch reduced to a :class:`~monitoring.summary.BatchSummary`, where it was scored.

:class:`Summariser` holds, per model version, the reference bins of its card (the feature
and score monitors' own counting, :meth:`monitoring.drift.FeatureMonitor.summarise` and
:meth:`monitoring.drift.ScoreMonitor.summarise`), so that a worker and the owner of the
monitors count alike: :meth:`monitoring.model_monitor.ModelMonitor.observe_batch` is this
summariser followed by :meth:`~monitoring.model_monitor.ModelMonitor.observe_summary`. It adds
the batch's expected confusion sums, on the same card's calibrator and thresholds
(:meth:`monitoring.estimator.PerformanceEstimator.block`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from models.card import ModelCard
from monitoring.config import MonitorConfig
from monitoring.drift import FeatureMonitor, ScoreMonitor
from monitoring.errors import BatchError
from monitoring.estimator import PerformanceEstimator
from monitoring.monitor_inputs import feature_columns
from monitoring.summary import BatchSummary


class Summariser:
    """Summaries of scored batches on the reference bins of each version's card.

    Parameters
    ----------
    card : ModelCard
        The champion's card; a version without a card of its own (:meth:`add_card`) is
        counted on this one's bins, and its summaries say so (``ref``).
    config : MonitorConfig or None
        The monitors' settings (``ks_bins`` sets the KS histogram); defaults when None.

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.workflow import TrainOptions, train
    >>> res = train(synthetic("sea", rows=600, seed=1), TrainOptions(name="s", folds=2))
    >>> live = synthetic("sea", rows=300, seed=2)
    >>> num = {n: live.numeric[:, j] for j, n in enumerate(live.numeric_names)}
    >>> p = res.pipeline.predict_proba(live.matrix())[:, 1]
    >>> s = Summariser(res.card).summarise(num, {}, p, "v9", "champion")
    >>> s.rows, s.ref == res.card.version, int(s.features.numeric.missing.sum())
    (300, True, 0)
    """

    def __init__(self, card: ModelCard, config: MonitorConfig | None = None) -> None:
        self.card = card
        self.config = config or MonitorConfig()
        self.numeric = [f.name for f in card.features if f.kind == "numeric"]
        self.categorical = [f.name for f in card.features if f.kind == "categorical"]
        self._cards: dict[str, ModelCard] = {card.version: card}
        self._counters: dict[str, tuple[FeatureMonitor, ScoreMonitor]] = {}
        # Only its blocks are used: one per card, with its calibrator and thresholds.
        self._blocks = PerformanceEstimator()

    def add_card(self, card: ModelCard) -> None:
        """Count the batches of ``card.version`` on its own reference bins."""
        self._cards[card.version] = card
        self._counters.pop(card.version, None)

    def counters(self, version: str) -> tuple[str, FeatureMonitor, ScoreMonitor]:
        """The reference card's version and the monitors that count ``version``'s batches."""
        card = self._cards.get(version, self.card)
        made = self._counters.get(card.version)
        if made is None:
            score = ScoreMonitor(card.reference.score, self.config)
            made = FeatureMonitor(card, self.config), score
            self._counters[card.version] = made
            self._blocks.add_card(card)
        return card.version, made[0], made[1]

    def summarise(
        self,
        numeric: Mapping[str, NDArray[np.float64]],
        categorical: Mapping[str, NDArray[np.object_]],
        scores: NDArray[np.floating],
        version: str,
        variant: str,
        groups: NDArray[np.object_] | None = None,
        predicted: NDArray[np.integer] | None = None,
    ) -> BatchSummary:
        """The summary of one scored batch of one (version, variant).

        Parameters
        ----------
        numeric, categorical, scores, version, variant, groups
            As :meth:`monitoring.model_monitor.ModelMonitor.observe_batch` takes them.
        predicted : ndarray of int or None
            The labels the scorer gave; None: decided by the card's thresholds (per group
            where ``groups`` are given), as the scorer decides them.

        Raises
        ------
        BatchError
            Columns of another length than the scores.
        """
        p = np.asarray(scores, dtype=np.float64).reshape(-1)
        n = p.shape[0]
        details = {"version": version, "variant": variant}
        ref, features, score = self.counters(version)
        matrix, cats = feature_columns(
            numeric, categorical, self.numeric, self.categorical, n, details
        )
        ungrouped = 0
        if groups is not None and self.card.sensitive is not None:
            if len(groups) != n:
                raise BatchError(f"{len(groups)} groups for {n} scores", **details)
            ungrouped = int(np.count_nonzero(groups == ""))
        return BatchSummary(
            version,
            variant,
            ref,
            n,
            ungrouped,
            features.summarise(matrix, cats),
            score.summarise(p),
            self._blocks.block(ref, p, predicted, groups),
        )


__all__ = ["Summariser"]
