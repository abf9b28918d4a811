"""The model card: everything a worker, a monitor or a human needs to know about a version.

The card is a JSON contract (``card.json`` next to ``model.onnx`` in the registry) and is
described by pydantic models so that it validates on load and has a JSON Schema.
"""

from __future__ import annotations

import re
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

CARD_SCHEMA_VERSION = 1
# What a model's name may be: it names a directory of the registry (and its history) and
# travels in topic names, Redis keys and metric labels.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureSpec(_Frozen):
    """One raw input feature as the model expects it.

    ``categories`` lists the categories seen in training (categorical features only);
    ``minimum``/``maximum`` are the training range (numeric features only).
    """

    name: str
    kind: Literal["numeric", "categorical"]
    categories: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    missing_rate: float = 0.0


class SensitiveSpec(_Frozen):
    """How the sensitive group of a row is derived.

    ``kind == "column"``: the group is the string value of ``column`` in the raw row.
    ``kind == "bands"``: the group is the band of the numeric ``column`` cut at ``bins``
    (left-closed), labelled by ``labels`` (``len(labels) == len(bins) + 1``).
    """

    name: str
    column: str
    kind: Literal["column", "bands"]
    bins: list[float] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)


class OnnxInput(_Frozen):
    """One input tensor of the ONNX graph and the raw features packed into its columns."""

    name: str
    kind: Literal["numeric", "categorical"]
    columns: list[str]


class OnnxInfo(_Frozen):
    """The exported file and its interface."""

    file: str = "model.onnx"
    sha256: str
    size_bytes: int
    opset: int
    inputs: list[OnnxInput]
    output_label: str
    output_probability: str


class Profile(_Frozen):
    """Reference distribution of one feature (or of the predicted score) for drift monitoring.

    Numeric: ``quantiles`` at ``quantile_levels``, a histogram over ``bin_edges`` with
    ``bin_fractions`` (bins are training deciles, suitable for PSI), mean and std.
    Categorical: ``frequencies`` of each category (``""`` stands for missing).
    """

    kind: Literal["numeric", "categorical"]
    count: int
    missing_rate: float
    quantile_levels: list[float] | None = None
    quantiles: list[float] | None = None
    bin_edges: list[float] | None = None
    bin_fractions: list[float] | None = None
    mean: float | None = None
    std: float | None = None
    frequencies: dict[str, float] | None = None


class ReferenceProfile(_Frozen):
    """Profiles of every feature (training data) and of the positive-class score (holdout)."""

    features: dict[str, Profile]
    score: Profile


class MetricSummary(_Frozen):
    """Mean and standard deviation of a metric over the cross-validation folds."""

    mean: float
    std: float


class HoldoutMetrics(_Frozen):
    """Metrics of the final model on the holdout, at the default 0.5 threshold."""

    rows: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    log_loss: float
    confusion_matrix: list[list[int]]
    calibration_error: float


class RocCurve(_Frozen):
    """Points of the holdout ROC curve, down-sampled (at most ~100), from (0, 0) to (1, 1)."""

    fpr: list[float]
    tpr: list[float]


class CalibrationCurve(_Frozen):
    """Reliability diagram of the holdout: equal-width bins of the positive-class score.

    ``mean_predicted`` and ``fraction_positive`` are None for an empty bin.
    """

    bin_edges: list[float]
    counts: list[int]
    mean_predicted: list[float | None]
    fraction_positive: list[float | None]


class HoldoutCurves(_Frozen):
    """What the report plots beyond the holdout metrics (``roc`` is None with one class)."""

    roc: RocCurve | None
    calibration: CalibrationCurve


class Metrics(_Frozen):
    """Cross-validation summary (``cv[metric]``) and holdout metrics.

    ``cv`` and ``holdout`` decide labels at 0.5; ``holdout_served`` (only when the card has
    per-group thresholds) decides them as the scorer will, with those thresholds. ``curves``
    is None on cards written before curves were recorded.
    """

    folds: int
    cv: dict[str, MetricSummary]
    holdout: HoldoutMetrics
    holdout_served: HoldoutMetrics | None = None
    curves: HoldoutCurves | None = None


class Calibrator(_Frozen):
    """Isotonic map from the positive-class score to a calibrated probability, fitted on the
    holdout (:func:`models.calibration.fit_calibrator`).

    Piecewise linear through the knots ``(x[i], y[i])`` (``x`` non-decreasing), flat beyond
    the ends: ``numpy.interp(score, x, y)``, no scikit-learn needed to apply it.
    ``calibration_error`` is the expected calibration error (10 equal-width bins) of the
    calibrated scores, each holdout row calibrated by a map fitted without its fold (5
    folds), so that it is not the fit's own optimism; ``brier`` is their Brier score.
    """

    kind: Literal["isotonic"] = "isotonic"
    x: list[float]
    y: list[float]
    rows: int
    calibration_error: float
    brier: float


class GroupMetrics(_Frozen):
    """Outcome rates of one sensitive group; rates undefined on an empty denominator are None."""

    count: int
    base_rate: float
    selection_rate: float
    tpr: float | None
    fpr: float | None
    precision: float | None


class FairnessSnapshot(_Frozen):
    """Per-group metrics and the gaps between groups."""

    groups: dict[str, GroupMetrics]
    demographic_parity_difference: float
    equalized_odds_difference: float
    disparate_impact_ratio: float | None


class FairnessReport(_Frozen):
    """Fairness on the holdout before and after mitigation (``after`` is None without one)."""

    sensitive: str
    mitigation: Literal["none", "reweigh", "threshold"]
    before: FairnessSnapshot
    after: FairnessSnapshot | None = None


class Thresholds(_Frozen):
    """Decision thresholds applied to the positive-class probability: label = p > threshold."""

    default: float = 0.5
    group_by: str | None = None
    per_group: dict[str, float] = Field(default_factory=dict)
    objective: Literal["tpr", "selection_rate"] | None = None


class ParityInfo(_Frozen):
    """Result of the ONNX parity gate on the holdout."""

    rows: int
    max_abs_diff: float
    labels_identical: bool
    tolerance: float
    export_seconds: float


class QueryInfo(_Frozen):
    """The SQL query the training data came from, and the fingerprint of its result.

    ``database`` is the database URL with any password masked; ``sha256`` is the sha256 of
    the result's canonical bytes (:meth:`models.table.Table.canonical`): the same query on
    the same data gives the same fingerprint, in the same row order.

    Examples
    --------
    >>> from models.table import Table
    >>> rows = Table(("x", "y"), ((0.5, 1), (1.5, 0)))
    >>> info = QueryInfo(database="sqlite:///d.db", query="SELECT x, y FROM t", rows=len(rows),
    ...                  sha256=rows.sha256())
    >>> info.rows, len(info.sha256)
    (2, 64)
    """

    database: str
    query: str
    rows: int
    sha256: str


class DataInfo(_Frozen):
    """Where the training data came from and its fingerprint (``query``: from SQL only)."""

    source: str
    rows: int
    train_rows: int
    holdout_rows: int
    fingerprint: str
    class_balance: dict[str, int]
    seed: int
    query: QueryInfo | None = None


class TrainingInfo(_Frozen):
    """How the pipeline was trained."""

    estimator: Literal["logreg", "rf", "gbdt"]
    params: dict[str, float | int | str | bool | None]
    class_weight: Literal["none", "balanced"]
    mitigation: Literal["none", "reweigh", "threshold"]
    seconds: float


class FeatureImportance(_Frozen):
    """How much each feature moves the model's score, normalised to sum to 1.

    ``score_permutation``: the mean absolute change of the score's logit when the feature's
    column is shuffled on ``rows`` holdout rows. It is measured on the score, not on accuracy,
    because it weighs the features that explain a *score* shift (linear in a coefficient,
    where an accuracy drop is near quadratic).
    """

    method: Literal["score_permutation"] = "score_permutation"
    rows: int
    values: dict[str, float]


# Squared residuals of the PCA below this are rounding (features with few distinct values, such
# as counts, reconstruct exactly) and count as 0, in the card's reference and live alike.
PCA_TINY = 1e-12


class PcaReference(_Frozen):
    """A PCA of the standardised numeric training features, for multivariate drift.

    ``components`` (``kept`` rows over ``columns``) are the principal axes kept (enough for
    ``explained_variance`` to reach the card's share); ``error`` is the profile of the
    holdout's ``log(offset + e)``, ``e`` the squared reconstruction error (its quantiles
    standardise the live error; the log spreads a skewed error evenly), and ``column_error``
    the mean squared residual per column.
    """

    columns: list[str]
    mean: list[float]
    scale: list[float]
    components: list[list[float]]
    explained_variance: list[float]
    kept: int
    offset: float
    error: Profile
    column_error: list[float]


class ModelCard(_Frozen):
    """The full card of one registered model version.

    ``importance`` and ``pca`` are None on cards written before they were recorded: the
    attribution of findings and the multivariate detector are then off.
    """

    schema_version: int = CARD_SCHEMA_VERSION
    name: str
    version: str
    created_at: str
    parent_version: str | None
    target: str
    classes: list[str]
    features: list[FeatureSpec]
    sensitive: SensitiveSpec | None
    onnx: OnnxInfo
    training: TrainingInfo
    data: DataInfo
    metrics: Metrics
    fairness: FairnessReport | None
    thresholds: Thresholds
    parity: ParityInfo
    reference: ReferenceProfile
    # None on cards written before calibrators were fitted: the estimator then takes the raw
    # scores as probabilities (monitoring.estimation).
    calibrator: Calibrator | None = None
    importance: FeatureImportance | None = None
    pca: PcaReference | None = None

    def to_json(self) -> bytes:
        """Serialise to indented JSON bytes."""
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> ModelCard:
        """Parse and validate JSON bytes."""
        return cls.model_validate(orjson.loads(data))

    def summary(self) -> dict[str, object]:
        """The short JSON summary printed by ``driftline train --json``."""
        return {
            "name": self.name,
            "version": self.version,
            "estimator": self.training.estimator,
            "created_at": self.created_at,
            "parent_version": self.parent_version,
            "sha256": self.onnx.sha256,
            "metrics": self.metrics.model_dump(mode="json", exclude={"curves"}),
            "fairness": None if self.fairness is None else self.fairness.model_dump(mode="json"),
            "thresholds": self.thresholds.model_dump(mode="json"),
            "parity": self.parity.model_dump(mode="json"),
            "data": self.data.model_dump(mode="json"),
        }


__all__ = [
    "CARD_SCHEMA_VERSION",
    "MODEL_NAME",
    "PCA_TINY",
    "CalibrationCurve",
    "Calibrator",
    "DataInfo",
    "FairnessReport",
    "FairnessSnapshot",
    "FeatureImportance",
    "FeatureSpec",
    "GroupMetrics",
    "HoldoutCurves",
    "HoldoutMetrics",
    "MetricSummary",
    "Metrics",
    "ModelCard",
    "OnnxInfo",
    "OnnxInput",
    "ParityInfo",
    "PcaReference",
    "Profile",
    "QueryInfo",
    "ReferenceProfile",
    "RocCurve",
    "SensitiveSpec",
    "Thresholds",
    "TrainingInfo",
]
