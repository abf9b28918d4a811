"""The feature monitors of a model's variants, each counting on the bins of one card.

A variant's :class:`~monitoring.drift.FeatureMonitor` counts on the reference bins of one
card: a summary on another card's bins (a new version promoted) starts the variant's monitor
afresh on that card, and summaries that still come on the bins it left (a worker that has not
swapped yet) have no monitor (:meth:`VariantFeatures.monitor` returns None; the caller counts
them as ``unreferenced``). Each monitor's drift evidence explains the model's prediction-drift
and performance findings (:mod:`monitoring.explanations`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.card import ModelCard
from monitoring.attribution import FeatureEvidence
from monitoring.config import MonitorConfig
from monitoring.drift import FeatureMonitor

# Reference cards a variant's feature monitor remembers having left.
_RETIRED = 8


class VariantFeatures:
    """Per variant, the feature monitor of the card its summaries are counted on.

    Parameters
    ----------
    config : MonitorConfig
        The monitors' settings.

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.workflow import TrainOptions, train
    >>> card = train(synthetic("sea", rows=600, seed=1), TrainOptions(name="s", folds=2)).card
    >>> newer = card.model_copy(update={"version": "v2"})
    >>> features = VariantFeatures(MonitorConfig())
    >>> features.monitor("champion", card).ref == card.version
    True
    >>> features.monitor("champion", newer).ref  # promoted: afresh on the new card's bins
    'v2'
    >>> features.monitor("champion", card) is None  # a late summary on the bins it left
    True
    """

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.monitors: dict[str, FeatureMonitor] = {}

    def monitor(self, variant: str, card: ModelCard) -> FeatureMonitor | None:
        """The monitor of ``variant``'s summaries counted on ``card``'s bins, None when the
        variant's monitor left those bins."""
        fm = self.monitors.get(variant)
        if fm is not None and fm.ref == card.version:
            return fm
        retired = [] if fm is None else [*fm.retired, fm.ref]
        if card.version in retired:
            return None
        fm = self.monitors[variant] = FeatureMonitor(card, self.config)
        fm.retired = retired[-_RETIRED:]
        return fm

    def evidence(self, variant: str) -> FeatureEvidence | None:
        """The drift evidence of ``variant``'s features, else of the champion's (a variant
        whose features are not monitored), None before any summary."""
        fm = self.monitors.get(variant) or self.monitors.get(self.config.champion_variant)
        return None if fm is None else fm.explain.evidence

    def statistics(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """Per variant and feature, the last closed window's statistics."""
        return {v: dict(m.last) for v, m in sorted(self.monitors.items()) if m.last}

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state, per variant."""
        return {v: m.snapshot() for v, m in self.monitors.items()}

    def restore(
        self, state: Mapping[str, Any], cards: Mapping[str, ModelCard], default: str
    ) -> None:
        """Inverse of :meth:`snapshot`, each monitor on the card of its ``ref`` (``default``
        when absent); one counted on a card not in ``cards`` starts afresh."""
        for variant, fs in state.items():
            card = cards.get(str(fs.get("ref", default)))
            if card is None:
                continue
            fm = self.monitors[variant] = FeatureMonitor(card, self.config)
            fm.restore(fs)


__all__ = ["VariantFeatures"]
