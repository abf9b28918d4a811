"""Training options, the card it produces, and both fairness mitigations before/after."""

from __future__ import annotations

import numpy as np
import pytest

from models.card import FairnessSnapshot, ModelCard
from models.data import Dataset, synthetic
from models.errors import ConfigError
from models.workflow import TrainOptions, TrainResult, train


def _tpr_gap(snap: FairnessSnapshot) -> float:
    tprs = [g.tpr for g in snap.groups.values() if g.tpr is not None]
    return max(tprs) - min(tprs)


def test_reweigh_reports_before_and_after_and_narrows_parity_gap(agrawal: Dataset) -> None:
    card = train(agrawal, TrainOptions(name="a", folds=3, mitigate="reweigh")).card
    assert card.fairness is not None
    assert card.fairness.mitigation == card.training.mitigation == "reweigh"
    assert card.fairness.after is not None
    assert set(card.fairness.before.groups) == {"<40", "40-59", "60+"}
    before, after = card.fairness.before, card.fairness.after
    assert after.demographic_parity_difference < before.demographic_parity_difference - 0.1
    assert card.thresholds.per_group == {}
    assert card.metrics.holdout_served is None


def test_threshold_mitigation_narrows_tpr_gap(agrawal_threshold: TrainResult) -> None:
    card = agrawal_threshold.card
    assert card.fairness is not None and card.fairness.after is not None
    assert card.fairness.mitigation == "threshold"
    assert _tpr_gap(card.fairness.after) < _tpr_gap(card.fairness.before) - 0.2
    assert card.thresholds.group_by == "age_band"
    assert card.thresholds.objective == "tpr"
    assert set(card.thresholds.per_group) == {"<40", "40-59", "60+"}
    assert all(0.0 < t < 1.0 for t in card.thresholds.per_group.values())
    served = card.metrics.holdout_served
    assert served is not None
    assert served.confusion_matrix != card.metrics.holdout.confusion_matrix
    assert served.roc_auc == card.metrics.holdout.roc_auc  # scores are unchanged


def test_no_mitigation_reports_current_fairness_only(agrawal: Dataset) -> None:
    card = train(agrawal, TrainOptions(name="a", folds=2)).card
    assert card.fairness is not None
    assert card.fairness.mitigation == "none"
    assert card.fairness.after is None


def test_balanced_class_weight_raises_recall_on_imbalanced_data() -> None:
    ds = synthetic("agrawal", rows=2000, seed=3)
    # Keep a fifth of the positives to make the classes imbalanced.
    keep = np.flatnonzero((ds.y == 0) | (np.arange(len(ds)) % 5 == 0))
    imbalanced = ds.subset(keep)
    assert imbalanced.class_balance()["1"] < imbalanced.class_balance()["0"] / 4
    plain = train(imbalanced, TrainOptions(name="i", folds=3)).card
    balanced = train(imbalanced, TrainOptions(name="i", folds=3, class_weight="balanced")).card
    assert balanced.training.class_weight == "balanced"
    assert balanced.metrics.cv["recall"].mean > plain.metrics.cv["recall"].mean + 0.1


def test_card_records_schema_profiles_and_data(sea_result: TrainResult) -> None:
    card = sea_result.card
    assert card.schema_version == 1
    assert card.version == "draft"
    assert card.classes == ["0", "1"]
    assert [(f.name, f.kind) for f in card.features] == [
        ("x0", "numeric"),
        ("x1", "numeric"),
        ("x2", "numeric"),
    ]
    spec = card.features[0]
    assert spec.minimum is not None and spec.maximum is not None and spec.minimum < spec.maximum
    assert [i.name for i in card.onnx.inputs] == ["num"]
    assert card.data.rows == 600 and card.data.train_rows + card.data.holdout_rows == 600
    assert sum(card.data.class_balance.values()) == 600
    assert len(card.data.fingerprint) == 64
    score = card.reference.score
    assert score.bin_fractions is not None and sum(score.bin_fractions) == pytest.approx(1.0)
    assert card.training.params["max_iter"] == 2000
    assert ModelCard.from_json(card.to_json()) == card
    summary = card.summary()
    assert {"name", "version", "metrics", "fairness", "parity", "sha256"} <= set(summary)


def test_categorical_schema_and_two_inputs(agrawal_threshold: TrainResult) -> None:
    card = agrawal_threshold.card
    car = next(f for f in card.features if f.name == "car")
    assert car.kind == "categorical"
    assert car.categories == sorted(car.categories or []) and len(car.categories or []) == 20
    assert [(i.name, i.columns) for i in card.onnx.inputs][1] == ("cat", ["car", "zipcode"])
    freq = card.reference.features["zipcode"].frequencies
    assert freq is not None and sum(freq.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("opts", "option"),
    [
        ({"estimator": "xgboost"}, "model"),
        ({"estimator": "hgb"}, "model"),
        ({"mitigate": "magic"}, "mitigate"),
        ({"class_weight": "heavy"}, "class_weight"),
        ({"folds": 1}, "folds"),
        ({"threshold_objective": "fpr"}, "threshold_objective"),
    ],
)
def test_bad_options(agrawal: Dataset, opts: dict[str, object], option: str) -> None:
    with pytest.raises(ConfigError) as info:
        train(agrawal, TrainOptions(name="x", **opts))  # type: ignore[arg-type]
    assert info.value.option == option


def test_mitigation_needs_a_sensitive_attribute() -> None:
    with pytest.raises(ConfigError, match="needs a sensitive attribute"):
        train(synthetic("sea", rows=300), TrainOptions(name="x", mitigate="reweigh"))
