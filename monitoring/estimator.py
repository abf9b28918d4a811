"""Estimated performance per model version over the last scored events, before any label.

:class:`PerformanceEstimator` keeps, per version, the :class:`~monitoring.estimation.
ExpectedConfusion` blocks of at least its last ``window`` scored events (whole blocks: the
oldest goes once the rest still hold ``window``), and checks the monitored figure (F1 or
accuracy, ``MonitorConfig.performance_metric``) once ``min_events`` are in: a ``performance``
finding with ``details["estimated"] = True`` when the band's high end falls below the card's
holdout figure minus ``performance_margin`` (the threshold the labelled check uses), so that
it fires only when even the most favourable reading of the scores says the model is worse
than allowed. Its detector is ``estimated_<metric>_drop``; its statistic the band's high end.

The version's calibrator, thresholds, holdout figure and bias come from its card; the blocks
are the only state (:meth:`PerformanceEstimator.snapshot`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.card import Calibrator, ModelCard
from monitoring.config import MonitorConfig
from monitoring.errors import MonitoringError, SnapshotError
from monitoring.estimation import Estimate, ExpectedConfusion, Z, expected_confusion
from monitoring.findings import Check, Finding

# The running total is summed afresh from the blocks after this many have left the window,
# so that float subtractions cannot drift.
_RESUM = 1024


@dataclass
class _Version:
    calibrator: Calibrator | None
    bias: float
    threshold: float
    reference: float
    per_group: Mapping[str, float] = field(default_factory=dict)
    blocks: deque[ExpectedConfusion] = field(default_factory=deque)
    total: ExpectedConfusion = field(default_factory=ExpectedConfusion)
    dropped: int = 0


def _minus(a: ExpectedConfusion, b: ExpectedConfusion) -> ExpectedConfusion:
    # A sum the window emptied may come out a rounding error below zero: a negative
    # variance would fail the band's square root.
    return ExpectedConfusion(
        a.pos - b.pos,
        a.neg - b.neg,
        max(0.0, a.tp - b.tp),
        max(0.0, a.fn - b.fn),
        max(0.0, a.var_pos - b.var_pos),
        max(0.0, a.var_neg - b.var_neg),
    )


class PerformanceEstimator:
    """Label-free estimated accuracy, precision, recall and F1 of each model version.

    Parameters
    ----------
    window : int
        Scored events the estimate covers (at least; whole blocks).
    min_events : int
        No verdict before this many events are in the window.
    margin : float
        A finding when the band's high end < the holdout figure - ``margin``.
    metric : {"f1", "accuracy"}
        The figure checked.
    z : float
        Standard deviations of the realized figure in the band.

    Examples
    --------
    >>> from models.card import Calibrator
    >>> est = PerformanceEstimator(window=1000, min_events=500, margin=0.1, metric="accuracy")
    >>> cal = Calibrator(x=[0.0, 1.0], y=[0.0, 1.0], rows=1000, calibration_error=0.01,
    ...                  brier=0.1)
    >>> est.add("3", calibrator=cal, bias=0.01, threshold=0.5, reference=0.9)
    >>> rng = np.random.default_rng(0)
    >>> confident = [est.observe("3", est.block("3", rng.choice([0.02, 0.98], 250)))
    ...              for _ in range(4)]
    >>> [f for checks in confident for _, f, _ in checks if f is not None]
    []
    >>> unsure = [est.observe("3", est.block("3", rng.uniform(0.3, 0.7, 250))) for _ in range(4)]
    >>> finding = unsure[-1][0][1]
    >>> finding.kind, finding.detector, finding.details["estimated"], finding.threshold
    ('performance', 'estimated_accuracy_drop', True, 0.8)
    """

    def __init__(
        self,
        window: int = 2000,
        min_events: int = 200,
        margin: float = 0.1,
        metric: str = "f1",
        z: float = Z,
    ) -> None:
        self.window = window
        self.min_events = min_events
        self.margin = margin
        self.metric = metric
        self.z = z
        self._versions: dict[str, _Version] = {}

    @classmethod
    def from_config(cls, config: MonitorConfig) -> PerformanceEstimator:
        """The monitors' settings: ``window`` scored events (the windowed tests' size), no
        verdict before ``min_labels`` events, ``performance_margin``, ``performance_metric``."""
        return cls(
            window=config.window,
            min_events=config.min_labels,
            margin=config.performance_margin,
            metric=config.performance_metric,
        )

    def add(
        self,
        version: str,
        *,
        calibrator: Calibrator | None,
        bias: float,
        threshold: float,
        reference: float,
        per_group: Mapping[str, float] | None = None,
    ) -> None:
        """Watch ``version`` (again: its blocks are kept); ``per_group`` thresholds replace
        ``threshold`` for the events of those groups (:meth:`block`'s ``groups``)."""
        old = self._versions.get(version)
        state = _Version(calibrator, bias, threshold, reference, dict(per_group or {}))
        if old is not None:
            state.blocks, state.total = old.blocks, old.total
        self._versions[version] = state

    def add_card(self, card: ModelCard, key: str | None = None) -> None:
        """Watch the card's version under ``key`` (default: the version; e.g.
        ``"<version>/<variant>"`` to keep variants apart): its calibrator and calibration
        error (or, on a card without one, the raw scores and the holdout's raw calibration
        error), its thresholds and its holdout figure of the metric."""
        cal = card.calibrator
        bias = card.metrics.holdout.calibration_error if cal is None else cal.calibration_error
        self.add(
            card.version if key is None else key,
            calibrator=cal,
            bias=bias,
            threshold=card.thresholds.default,
            per_group=card.thresholds.per_group,
            # As the labelled check's: the served thresholds' figure when the card has them.
            reference=float(
                getattr(card.metrics.holdout_served or card.metrics.holdout, self.metric)
            ),
        )

    @property
    def versions(self) -> list[str]:
        """The versions watched."""
        return list(self._versions)

    def _state(self, version: str) -> _Version:
        try:
            return self._versions[version]
        except KeyError:
            raise MonitoringError(f"no estimator for version {version!r}; add its card") from None

    def block(
        self,
        version: str,
        scores: NDArray[np.floating],
        predicted: NDArray[np.integer] | None = None,
        groups: NDArray[np.object_] | None = None,
    ) -> ExpectedConfusion:
        """The expected confusion block of a batch of ``version``'s scores.

        ``predicted``: the labels the scorer gave; else the version's thresholds decide them
        as the scorer does: each event's group's (``groups``, the sensitive group of each
        event) where the card has one, the default threshold elsewhere.
        """
        st = self._state(version)
        threshold: float | NDArray[np.float64] = st.threshold
        if predicted is None and groups is not None and st.per_group:
            per_event = np.full(len(groups), st.threshold, dtype=np.float64)
            for group, t in st.per_group.items():
                per_event[groups == group] = t
            threshold = per_event
        return expected_confusion(scores, st.calibrator, threshold, predicted)

    def observe(
        self, version: str, block: ExpectedConfusion, details: Mapping[str, Any] | None = None
    ) -> list[Check]:
        """Add a block (from any worker, any batch) and check the version's estimate."""
        st = self._state(version)
        st.blocks.append(block)
        st.total = st.total.merge(block)
        while len(st.blocks) > 1 and st.total.events - st.blocks[0].events >= self.window:
            st.total = _minus(st.total, st.blocks.popleft())
            st.dropped += 1
        if st.dropped >= _RESUM:
            st.total, st.dropped = _sum(st.blocks), 0
        return self._check(version, st, dict(details or {}))

    def estimate(self, version: str) -> Estimate:
        """The version's estimate over its window."""
        st = self._state(version)
        return st.total.estimate(st.bias, self.z)

    def _check(self, version: str, st: _Version, details: dict[str, Any]) -> list[Check]:
        key = f"performance||estimated_{self.metric}_drop"
        if st.total.events < self.min_events:
            return []
        est = st.total.estimate(st.bias, self.z)
        band = getattr(est, self.metric)
        limit = st.reference - self.margin
        if band is None or band.high >= limit:
            return [(key, None, True)]
        extra = {
            "version": version,  # the caller's own (a key such as "3/champion" is not one)
            **details,
            "estimated": True,
            "estimate": band.value,
            "low": band.low,
            "high": band.high,
            "reference": st.reference,
            "calibration_error": st.bias,
            "events": st.total.events,
        }
        finding = Finding(
            "performance", f"estimated_{self.metric}_drop", band.high, limit, None, extra
        )
        return [(key, finding, True)]

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: each version's ``blocks``, oldest first, and its running
        ``total`` and ``dropped`` count, so that a restored estimator continues exactly."""
        return {
            v: {
                "blocks": [b.to_json() for b in st.blocks],
                "total": st.total.to_json(),
                "dropped": st.dropped,
            }
            for v, st in self._versions.items()
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot` for the versions added; others are ignored (a
        version's bare list of blocks is read too, its total summed afresh)."""
        if not isinstance(state, Mapping):
            raise SnapshotError("estimator snapshot must be an object", found=state)
        for version, saved in state.items():
            st = self._versions.get(version)
            if st is None:
                continue
            whole = saved if isinstance(saved, Mapping) else {"blocks": saved}
            st.blocks = deque(ExpectedConfusion.from_json(b) for b in whole["blocks"])
            st.total, st.dropped = _sum(st.blocks), 0
            if "total" in whole:
                st.total = ExpectedConfusion.from_json(whole["total"])
                st.dropped = int(whole["dropped"])


def _sum(blocks: deque[ExpectedConfusion]) -> ExpectedConfusion:
    total = ExpectedConfusion()
    for b in blocks:
        total = total.merge(b)
    return total


__all__ = ["PerformanceEstimator"]
