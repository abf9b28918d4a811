"""Settings of the monitors, as one frozen value passed down from the streams shell.

Every field has a default; ``streams`` reads its settings once and builds a
:class:`MonitorConfig` with :meth:`MonitorConfig.from_mapping`, which rejects unknown names
and bad values with a :class:`~monitoring.errors.MonitorConfigError` naming the setting.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from monitoring.errors import MonitorConfigError

STREAM_DETECTORS: tuple[str, ...] = ("cusum", "adwin", "pagehinkley")
CONCEPT_DETECTORS: tuple[str, ...] = ("cusum", "adwin", "ddm", "eddm", "hddm_a", "hddm_w")
DRIFT_TESTS: tuple[str, ...] = ("psi", "ks")
PERFORMANCE_METRICS: tuple[str, ...] = ("f1", "accuracy")

# (field, lower bound, upper bound, lower bound inclusive)
_RANGES: tuple[tuple[str, float, float, bool], ...] = (
    ("window", 50, 10_000_000, True),
    ("detector_block", 1, 1_000_000, True),
    ("false_alarms_per_million", 0.0, 1_000_000.0, False),
    ("psi_threshold", 0.0, math.inf, False),
    ("ks_pvalue", 0.0, 1.0, False),
    ("adwin_delta", 0.0, 1.0, False),
    ("pagehinkley_threshold", 0.0, math.inf, False),
    ("pagehinkley_delta", 0.0, math.inf, True),
    ("ddm_drift_threshold", 0.0, math.inf, False),
    ("ddm_warm_start", 1, 10_000_000, True),
    ("performance_margin", 0.0, 1.0, True),
    ("rolling_window", 10, 10_000_000, True),
    ("min_labels", 1, 10_000_000, True),
    ("fairness_gap_threshold", 0.0, 1.0, False),
    ("fairness_min_group", 1, 10_000_000, True),
    ("quality_missing_margin", 0.0, 1.0, True),
    ("quality_out_of_range_rate", 0.0, 1.0, True),
    ("replay_limit", 10, 1_000_000, True),
    ("error_replay_limit", 100, 10_000_000, True),
    ("ks_bins", 10, 100_000, True),
    ("confirm_windows", 1, 1000, True),
    ("slice_top", 1, 100, True),
)


@dataclass(frozen=True)
class MonitorConfig:
    """What the monitors test and how sensitive they are.

    Parameters
    ----------
    window : int
        Events per windowed test (PSI, KS, data quality). Windows tumble; tests run once per
        window, never per event.
    psi_threshold : float
        Population stability index above which a window has drifted.
    ks_pvalue : float
        KS p-value below which a window has drifted. For the features it is a family-wise
        level per window: each feature's p-value is compared with ``ks_pvalue`` divided by
        the number of features tested (Bonferroni), so adding features adds no false alarms.
    confirm_windows : int
        Consecutive windows in which a drift test (PSI or KS, of a feature or of the score)
        must fail before it is a finding. Every window is tested against the same reference,
        a sample of the training data, so a reference that happens to sit off the true
        distribution makes one window's failure far likelier than its p-value says (100
        windows of 1,000 rows of a stationary stream failed KS in 3 of 20 shuffled orderings
        with 1, in none of 40 with 2). Windows are disjoint, so two in a row multiply the
        chances; a real shift fails every window and is found one window later.
    drift_tests : tuple of str
        Windowed tests to run: ``psi`` and/or ``ks`` (KS applies to numeric values and scores).
    detector_block : int
        Rows per update of the per-feature and prediction change detectors (their false
        alarm rate then does not depend on the workers' micro-batch sizes).
    false_alarms_per_million : float
        The sequential detectors' false-alarm budget: false alarms per million events per
        model, all of them together (``cusum`` detectors of every feature, the score and the
        error stream; :mod:`monitoring.sequential_drift`). Each threshold grows with the log
        of the number of detectors, so adding features adds no false alarms.
    stream_detector : {"cusum", "adwin", "pagehinkley"}
        Change detectors per block of every feature and of the score: ``cusum``, location
        and scale CUSUMs through the reference distribution (categorical features too),
        calibrated to ``false_alarms_per_million``; or a River detector on the standardised
        block mean of every numeric feature.
    adwin_delta : float
        ADWIN confidence (smaller: fewer false alarms, later detection).
    pagehinkley_threshold, pagehinkley_delta : float
        Page-Hinkley parameters, in standard errors of the batch mean (its input is the
        standardised batch mean, of unit variance): a CUSUM with allowance 0.5 and
        threshold 15 alarmed 0 times in 400,000 stationary batches yet catches a sustained
        shift of 1-2 standard errors within tens of batches.
    concept_detectors : tuple of str
        Detectors on the 0/1 error stream of labelled events: ``cusum`` (against the holdout
        error rate, calibrated to ``false_alarms_per_million``), or River's ``adwin``,
        ``ddm``, ``eddm``, ``hddm_a``, ``hddm_w``.
    ddm_drift_threshold : float
        DDM drift threshold in standard deviations (4: on a stationary error rate of 0.23,
        about 1 % false alarms over 20,000 labels; River's 3 gives 13 %).
    ddm_warm_start : int
        Errors DDM sees before it tests (fewer make it alarm on the first errors of a good
        model, whose early error-rate estimate is near zero).
    performance_metric : {"f1", "accuracy"}
        Rolling metric compared with the card's holdout figure.
    performance_margin : float
        Alert when the rolling metric < card holdout figure - margin.
    rolling_window : int
        Labelled events in the rolling metrics.
    min_labels : int
        No performance or fairness verdict before this many labels in the rolling window.
    fairness_gap_threshold : float
        Demographic-parity or equalized-odds gap above which fairness alerts.
    fairness_min_group : int
        Groups (and, for TPR/FPR, their positives/negatives) smaller than this in the rolling
        window are left out of the gaps.
    quality_missing_margin : float
        Alert when a window's missing rate exceeds the card's rate + margin.
    quality_out_of_range_rate : float
        Alert when the share of present values outside the training range (or of unseen
        categories) exceeds this.
    champion_variant : str
        The variant whose batches feed the feature monitors and raise drift findings.
    drift_all_variants : bool
        Also monitor features and raise drift findings for the other variants.
    replay_limit : int
        Per-batch aggregates kept per change detector to rebuild it after a restore.
    error_replay_limit : int
        Errors kept per concept-drift detector to rebuild it after a restore.
    ks_bins : int
        Bins of the histogram on which KS is computed: the reference CDF's levels
        ``k / ks_bins`` (the deciles among them when a multiple of 10, so that PSI is read off
        it). KS is read at those levels only, a lower bound of the exact distance within
        ``1 / ks_bins``. Every worker's batch summary carries this histogram per numeric
        feature, so it sets what monitoring sends per batch: at 20, a summary of 20 features
        is about 3 KB. A snapshot taken with a multiple of it is rebinned on restore.
    slice_by : str or None
        A context attribute whose values slice the labelled events: per slice, cumulative
        and rolling counts, accuracy and F1 (see :mod:`monitoring.slices`). None: no slices.
    slice_top : int
        Values of ``slice_by`` shown as their own slice (the most frequent ones); every other
        value is ``(other)``, a missing one ``(none)``.

    Examples
    --------
    >>> MonitorConfig.from_mapping({"window": 500, "concept_detectors": ["ddm"]}).window
    500
    >>> MonitorConfig.from_mapping({"psi_threshold": -1})
    Traceback (most recent call last):
    ...
    monitoring.errors.MonitorConfigError: psi_threshold must be > 0.0, got -1
    """

    window: int = 2000
    psi_threshold: float = 0.2
    ks_pvalue: float = 0.001
    confirm_windows: int = 2
    drift_tests: tuple[str, ...] = DRIFT_TESTS
    stream_detector: Literal["cusum", "adwin", "pagehinkley"] = "cusum"
    detector_block: int = 256
    false_alarms_per_million: float = 1.0
    adwin_delta: float = 0.002
    pagehinkley_threshold: float = 15.0
    pagehinkley_delta: float = 0.5
    concept_detectors: tuple[str, ...] = ("cusum",)
    ddm_drift_threshold: float = 4.0
    ddm_warm_start: int = 500
    performance_metric: Literal["f1", "accuracy"] = "f1"
    performance_margin: float = 0.1
    rolling_window: int = 1000
    min_labels: int = 200
    fairness_gap_threshold: float = 0.2
    fairness_min_group: int = 50
    quality_missing_margin: float = 0.1
    quality_out_of_range_rate: float = 0.05
    champion_variant: str = "champion"
    drift_all_variants: bool = False
    replay_limit: int = 500
    error_replay_limit: int = 5000
    ks_bins: int = 20
    slice_by: str | None = None
    slice_top: int = 10

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f.name, f.type, getattr(self, f.name))
        for name, low, high, inclusive in _RANGES:
            value = getattr(self, name)
            ok_low = value >= low if inclusive else value > low
            if not ok_low:
                raise MonitorConfigError(
                    f"{name} must be {'>=' if inclusive else '>'} {low}, got {value}",
                    option=name,
                    value=value,
                )
            if value > high:
                raise MonitorConfigError(
                    f"{name} must be <= {high}, got {value}", option=name, value=value
                )
        _check_choice("stream_detector", (self.stream_detector,), STREAM_DETECTORS)
        _check_choice("concept_detectors", self.concept_detectors, CONCEPT_DETECTORS)
        _check_choice("drift_tests", self.drift_tests, DRIFT_TESTS)
        _check_choice("performance_metric", (self.performance_metric,), PERFORMANCE_METRICS)
        if self.slice_by is not None and not self.slice_by.strip():
            raise MonitorConfigError(
                "slice_by must name a context attribute (or be null)",
                option="slice_by",
                value=self.slice_by,
            )
        if not self.champion_variant:
            raise MonitorConfigError(
                "champion_variant must not be empty", option="champion_variant", value=""
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MonitorConfig:
        """Build a config from settings, validating names, types and ranges.

        Lists are accepted for tuple fields (they come from JSON or env settings).

        Raises
        ------
        MonitorConfigError
            An unknown setting, a value of the wrong type, out of range or not a known choice.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MonitorConfigError(
                f"unknown monitoring setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}",
                option=unknown[0],
                value=values[unknown[0]],
            )
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            kwargs[name] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def _check_type(name: str, annotation: object, value: object) -> None:
    text = str(annotation)
    if text.startswith("tuple"):
        ok = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        expected = "a list of strings"
    elif text == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif text == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(float(value))  # type: ignore[arg-type]
        expected = "a finite number"
    elif text == "str | None":
        ok = value is None or isinstance(value, str)
        expected = "a string or null"
    elif text == "bool":
        ok = isinstance(value, bool)
        expected = "true or false"
    else:  # str and Literal[...] of str
        ok = isinstance(value, str)
        expected = "a string"
    if not ok:
        raise MonitorConfigError(
            f"{name} must be {expected}, got {value!r}", option=name, value=value
        )


def _check_choice(name: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    if name in ("concept_detectors", "drift_tests") and len(set(values)) != len(values):
        raise MonitorConfigError(f"{name} lists a value twice", option=name, value=list(values))
    for v in values:
        if v not in allowed:
            raise MonitorConfigError(
                f"{name}: unknown value {v!r}; choose from {', '.join(allowed)}",
                option=name,
                value=v,
            )


__all__ = [
    "CONCEPT_DETECTORS",
    "DRIFT_TESTS",
    "PERFORMANCE_METRICS",
    "STREAM_DETECTORS",
    "MonitorConfig",
]
