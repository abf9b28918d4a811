"""Data drift, data quality and prediction drift of one model variant, from micro-batches.

:class:`FeatureMonitor` watches the input features of one variant's traffic:

- per tumbling window of ``config.window`` events: PSI and KS of every numeric feature and
  PSI of every categorical feature against the card's reference profile, and the data-quality
  rates (missing, outside the training range, unseen category);
- per block of ``config.detector_block`` rows: with ``stream_detector="cusum"`` (the
  default), the location and scale CUSUMs of every numeric feature and the category CUSUMs
  of every categorical one, calibrated to the false-alarm budget
  (:mod:`monitoring.sequential_drift`); otherwise one update of a River change detector
  (ADWIN or Page-Hinkley) per numeric feature, fed with the standardised block mean
  (:mod:`monitoring.river_drift`);
- every summary: each feature's drift evidence, and with a PCA in the card the multivariate
  detector of its reconstruction error (:mod:`monitoring.explanations`).

:class:`ScoreMonitor` does the same for the positive-class score (prediction drift).

Both return :data:`Check` tuples: ``(key, finding or None, periodic)``. A periodic check
(windowed tests) that passes returns ``None`` so the caller can clear a standing condition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.card import ModelCard, Profile
from monitoring.config import MonitorConfig
from monitoring.errors import SnapshotError
from monitoring.explanations import FeatureExplanations
from monitoring.findings import Check, Finding
from monitoring.rate_drift import CategoricalDrift
from monitoring.river_drift import (
    block_mean_checks,
    restore_detector,
    river_threshold,
    stream_detector,
)
from monitoring.sequential_drift import NumericDrift, ScoreDrift, calibrate
from monitoring.summary import FeatureCounts
from monitoring.window_checks import window_checks, window_stats
from monitoring.windows import (
    CategoricalReference,
    CategoricalWindow,
    NumericReference,
    NumericWindow,
)


class FeatureMonitor:
    """Windowed data drift and data quality, plus per-batch change detectors, of one variant.

    Parameters
    ----------
    card : ModelCard
        Features, training ranges, missing rates and reference profiles.
    config : MonitorConfig
        Windows, thresholds and detector settings.
    """

    def __init__(self, card: ModelCard, config: MonitorConfig) -> None:
        self.config = config
        self.ref = card.version  # the card whose reference bins the counts are on
        # versions this variant's monitor was on before: their summaries come too late
        self.retired: list[str] = []
        specs = {s.name: s for s in card.features}
        self.numeric = [s.name for s in card.features if s.kind == "numeric"]
        self.categorical = [s.name for s in card.features if s.kind == "categorical"]
        profiles = card.reference.features
        self.num_refs = [
            NumericReference.from_profile(n, _profile(profiles, n, "numeric"), specs[n])
            for n in self.numeric
        ]
        self.cat_refs = [
            CategoricalReference.from_profile(n, _profile(profiles, n, "categorical"), specs[n])
            for n in self.categorical
        ]
        self.window = NumericWindow(self.num_refs, config.ks_bins)
        self.cat_windows = [CategoricalWindow(r) for r in self.cat_refs]
        cusum = config.stream_detector == "cusum"
        self.detectors = [] if cusum else [stream_detector(config) for _ in self.numeric]
        cal = calibrate(card, config)
        counts = [_profile(profiles, n, "categorical").count for n in self.categorical]
        # Built whatever the detector: its normal scores are part of every summary.
        self.normal = NumericDrift(self.num_refs, cal.gaussian)
        self.cusum: tuple[NumericDrift, CategoricalDrift] | None = None
        if cusum:
            self.cusum = self.normal, CategoricalDrift(self.cat_refs, counts, cal.events)
        # drift evidence (why it drifted) and, with a PCA in the card, multivariate drift
        self.explain = FeatureExplanations(card, config, self.num_refs, self.cat_refs, counts)
        self.ks_tests = sum(r.knots_x is not None for r in self.num_refs)
        self._mean = np.array([r.mean for r in self.num_refs])
        self._std = np.array([r.std for r in self.num_refs])
        self.rows = 0  # rows in the current window
        self.windows = 0  # windows closed
        self.streaks: dict[str, int] = {}  # consecutive failed windows per drift check
        # Rows since the detectors' last update: they update once per block of
        # ``detector_block`` rows, whatever the size of the batches that brought them, so that
        # their false-alarm rate does not depend on how a worker happened to batch the stream.
        self.block_rows = 0
        self.block_sums = np.zeros(len(self.numeric))
        self.block_present = np.zeros(len(self.numeric), dtype=np.int64)
        # per feature, the last closed window's statistics; not snapshotted (for the timeline)
        self.last: dict[str, dict[str, float | None]] = {}

    def summarise(
        self, matrix: NDArray[np.float64], cats: Sequence[NDArray[np.object_]]
    ) -> FeatureCounts:
        """The counts of a batch (numeric matrix in ``self.numeric`` order, categorical
        columns) on this monitor's reference bins, without observing them."""
        return FeatureCounts(
            self.window.count(matrix),
            self.normal.summarise(matrix) if self.numeric else np.zeros((4, 0)),
            [w.count(col) for w, col in zip(self.cat_windows, cats, strict=True)],
            self.explain.block(matrix),
        )

    def observe(
        self, matrix: NDArray[np.float64], cats: list[NDArray[np.object_]], details: dict[str, Any]
    ) -> list[Check]:
        """Feed one batch (numeric matrix in ``self.numeric`` order, categorical columns),
        cut where the open window ends."""
        checks: list[Check] = []
        start, n = 0, matrix.shape[0]
        while start < n:
            end = min(n, start + max(self.config.window - self.rows, 1))
            part = [c[start:end] for c in cats]
            checks += self.observe_counts(self.summarise(matrix[start:end], part), details)
            start = end
        return checks

    def observe_counts(self, counts: FeatureCounts, details: dict[str, Any]) -> list[Check]:
        """Feed the counts of a block (:meth:`summarise`, or merged summaries).

        The window closes once it holds ``config.window`` rows or more, and the detectors
        update once ``config.detector_block`` rows or more have come since they last did.
        """
        checks: list[Check] = []
        num = counts.numeric
        self.window.add_counts(num)
        for w, c in zip(self.cat_windows, counts.categorical, strict=True):
            w.add_counts(num.rows, c)
        self.rows += num.rows
        if self.rows >= self.config.window:
            checks += self._close(details)
        self.block_sums += num.sums
        self.block_present += num.present
        self.block_rows += num.rows
        if self.cusum is not None:
            self.cusum[0].pending += counts.normal
            self.cusum[1].add_counts(counts.categorical)
        checks += self.explain.observe(counts, details)
        if self.block_rows >= self.config.detector_block:
            if self.cusum is None:
                checks += block_mean_checks(
                    self.detectors,
                    self.numeric,
                    self.block_sums,
                    self.block_present,
                    (self._mean, self._std),
                    self.config,
                    details,
                )
            else:
                checks += self.cusum[0].checks("data_drift", details, feature=True)
                checks += self.cusum[1].checks(details)
            self.block_rows = 0
            self.block_sums = np.zeros(len(self.numeric))
            self.block_present = np.zeros(len(self.numeric), dtype=np.int64)
        return checks

    def _close(self, details: dict[str, Any]) -> list[Check]:
        self.windows += 1
        checks: list[Check] = []
        base = {**details, "window": self.windows}
        for ref, res in zip(self.num_refs, self.window.results(), strict=True):
            self.last[ref.name] = window_stats(res)
            checks += window_checks(
                "data_drift", ref.name, res, self.config, base, self.streaks, self.ks_tests
            )
            checks += self._quality(ref.name, ref.missing_rate, res, base)
        for w in self.cat_windows:
            res = w.results()
            self.last[w.ref.name] = window_stats(res)
            checks += window_checks("data_drift", w.ref.name, res, self.config, base, self.streaks)
            checks += self._quality(w.ref.name, w.ref.missing_rate, res, base)
        self.window.reset()
        for w in self.cat_windows:
            w.reset()
        self.rows = 0
        return checks

    def _quality(
        self, name: str, ref_missing: float, res: Mapping[str, Any], details: dict[str, Any]
    ) -> list[Check]:
        cfg = self.config
        extra = {**details, "rows": res["rows"], "reference_missing_rate": ref_missing}
        limit = ref_missing + cfg.quality_missing_margin
        rate = float(res["missing_rate"])
        miss = Finding("data_quality", "missing_rate", rate, limit, name, extra)
        checks: list[Check] = [
            (f"data_quality|{name}|missing_rate", miss if rate > limit else None, True)
        ]
        oor = float(res["out_of_range_rate"])
        extra = {**details, "rows": res["present"]}
        if res.get("unseen"):
            extra["unseen"] = list(res["unseen"])
        limit = cfg.quality_out_of_range_rate
        bad = res["present"] > 0 and oor > limit
        f = Finding("data_quality", "out_of_range", oor, limit, name, extra) if bad else None
        checks.append((f"data_quality|{name}|out_of_range", f, True))
        return checks

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: open window counts and detectors."""
        return {
            "ref": self.ref,
            "retired": list(self.retired),
            "rows": self.rows,
            "windows": self.windows,
            "block": {
                "rows": self.block_rows,
                "sums": self.block_sums.tolist(),
                "present": self.block_present.tolist(),
            },
            "numeric": self.window.snapshot(),
            "categorical": {w.ref.name: w.snapshot() for w in self.cat_windows},
            "streaks": dict(self.streaks),
            "detectors": {
                n: d.snapshot() for n, d in zip(self.numeric, self.detectors, strict=False)
            },
            "cusum": None if self.cusum is None else [c.snapshot() for c in self.cusum],
            **self.explain.snapshot(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        if len(state["numeric"]["missing"]) != len(self.numeric):
            raise SnapshotError("feature snapshot has another number of numeric features")
        self.rows, self.windows = int(state["rows"]), int(state["windows"])
        self.retired = [str(v) for v in state.get("retired", ())]  # absent before summaries
        block = state.get("block")  # absent from snapshots older than block updates
        if block is not None:
            self.block_rows = int(block["rows"])
            self.block_sums = np.asarray(block["sums"], dtype=np.float64)
            self.block_present = np.asarray(block["present"], dtype=np.int64)
        self.window.restore(state["numeric"])
        self.streaks = {str(k): int(v) for k, v in state.get("streaks", {}).items()}
        for w in self.cat_windows:
            w.restore(state["categorical"][w.ref.name])
        for n, d in zip(self.numeric, self.detectors, strict=False):  # none with CUSUM
            if n in state["detectors"]:  # absent when the snapshot's detector was CUSUM
                restore_detector(d, state["detectors"][n])
        saved = state.get("cusum")  # absent from snapshots older than CUSUM, null without
        if saved and self.cusum is not None:
            self.cusum[0].restore(saved[0])
            self.cusum[1].restore(saved[1])
        self.explain.restore(state)


class ScoreMonitor:
    """Prediction drift of one (version, variant): windowed PSI/KS and a change detector.

    ``h`` is the CUSUM threshold (the ``gaussian`` one of the model's
    :func:`~monitoring.sequential_drift.calibrate`)
    when ``config.stream_detector`` is ``cusum``.
    """

    def __init__(self, profile: Profile, config: MonitorConfig, h: float = 20.0) -> None:
        self.config = config
        self.ref = NumericReference.from_profile("score", profile)
        self.window = NumericWindow([self.ref], config.ks_bins)
        cusum = config.stream_detector == "cusum"
        self.detector = None if cusum else stream_detector(config)
        self.normal = ScoreDrift(self.ref, h)  # its summaries are part of every summary
        self.cusum = self.normal if cusum else None
        self.rows = 0
        self.windows = 0
        self.streaks: dict[str, int] = {}  # consecutive failed windows per drift check
        self.block_sum = 0.0  # scores since the detector's last update (see FeatureMonitor)
        self.block_count = 0
        self.last: dict[str, float | None] = {}  # last closed window; not snapshotted

    def summarise(self, scores: NDArray[np.float64]) -> FeatureCounts:
        """The counts of a batch of positive-class scores, without observing them."""
        col = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
        return FeatureCounts(self.window.count(col), self.normal.summarise(col), [])

    def observe(self, scores: NDArray[np.float64], details: dict[str, Any]) -> list[Check]:
        """Feed one batch of positive-class scores, cut where the open window ends."""
        checks: list[Check] = []
        start, n = 0, scores.shape[0]
        while start < n:
            end = min(n, start + max(self.config.window - self.rows, 1))
            checks += self.observe_counts(self.summarise(scores[start:end]), details)
            start = end
        return checks

    def observe_counts(self, counts: FeatureCounts, details: dict[str, Any]) -> list[Check]:
        """Feed the counts of a block of scores (:meth:`summarise`, or merged summaries)."""
        checks: list[Check] = []
        num = counts.numeric
        self.window.add_counts(num)
        self.rows += num.rows
        if self.rows >= self.config.window:
            self.windows += 1
            res = self.window.results()[0]
            self.last = window_stats(res)
            base = {**details, "window": self.windows}
            checks += window_checks("prediction_drift", None, res, self.config, base, self.streaks)
            self.window.reset()
            self.rows = 0
        self.block_sum += float(num.sums[0])
        self.block_count += int(num.present[0])
        if self.cusum is not None:
            self.cusum.pending += counts.normal
        if self.block_count < self.config.detector_block:
            return checks
        if self.cusum is not None:
            self.block_sum, self.block_count = 0.0, 0
            return checks + self.cusum.checks("prediction_drift", details, feature=False)
        if self.detector is not None:
            count, self.block_count = self.block_count, 0
            mean, self.block_sum = self.block_sum / count, 0.0
            shift = (mean - self.ref.mean) / self.ref.std
            z = shift * math.sqrt(count)
            if self.detector.update(z):
                extra = {
                    **details,
                    "batch_mean": mean,
                    "reference_mean": self.ref.mean,
                    "z": z,
                    **self.detector.last_change,
                }
                f = Finding(
                    "prediction_drift",
                    self.detector.kind,
                    shift,
                    river_threshold(self.config),
                    None,
                    extra,
                )
                checks.append((f"prediction_drift||{self.detector.kind}", f, False))
        return checks

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "rows": self.rows,
            "windows": self.windows,
            "window": self.window.snapshot(),
            "detector": self._detector_state(),
            "block": [self.block_sum, self.block_count],
            "streaks": dict(self.streaks),
        }

    def _detector_state(self) -> dict[str, Any]:
        if self.cusum is not None:
            return {"kind": "cusum", **self.cusum.snapshot()}
        return {} if self.detector is None else self.detector.snapshot()

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        self.rows, self.windows = int(state["rows"]), int(state["windows"])
        self.window.restore(state["window"])
        saved = state["detector"]
        if self.cusum is not None and saved.get("kind") == "cusum":
            self.cusum.restore(saved)
        elif self.detector is not None:
            restore_detector(self.detector, saved)
        self.block_sum, self.block_count = state.get("block", (0.0, 0))
        self.streaks = {str(k): int(v) for k, v in state.get("streaks", {}).items()}


def fits(monitor: FeatureMonitor | ScoreMonitor, counts: FeatureCounts) -> bool:
    """Whether ``counts`` are on ``monitor``'s bins: the shapes of its window and detectors."""
    window = monitor.window
    cats = monitor.cat_windows if isinstance(monitor, FeatureMonitor) else []
    pca = monitor.explain.model if isinstance(monitor, FeatureMonitor) else None
    block = counts.reconstruction
    num = counts.numeric
    return (
        num.ks.shape == window.ks_hist.shape
        and num.psi.shape == window.psi_shape
        and counts.normal.shape == (4, len(window.refs))
        and len(counts.categorical) == len(cats)
        and (block is None or pca is None or len(block.columns) == len(pca.columns))
    )


def _profile(profiles: Mapping[str, Profile], name: str, kind: str) -> Profile:
    prof = profiles.get(name)
    if prof is None:  # a card without a profile for a feature: nothing to compare against
        return Profile(kind=kind, count=0, missing_rate=0.0)  # type: ignore[arg-type]
    return prof


__all__ = ["Check", "FeatureMonitor", "ScoreMonitor", "fits"]
