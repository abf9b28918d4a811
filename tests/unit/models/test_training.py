"""The pipeline layout per estimator and the class-balance weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, RobustScaler

from models.errors import ConfigError
from models.training import build_pipeline, class_balance_weights, estimator_params


@pytest.mark.parametrize(
    ("kind", "cls", "scaled"),
    [
        ("logreg", LogisticRegression, True),
        ("rf", RandomForestClassifier, False),
        ("gbdt", GradientBoostingClassifier, False),
    ],
)
def test_pipeline_layout(kind: str, cls: type, scaled: bool) -> None:
    pipe = build_pipeline(kind, n_numeric=3, n_categorical=2, seed=7)
    assert isinstance(pipe.named_steps["clf"], cls)
    pre = pipe.named_steps["pre"]
    num = pre.transformers[0][1]
    assert pre.transformers[0][2] == [0, 1, 2]
    assert pre.transformers[1][2] == [3, 4]
    assert isinstance(num.steps[-1][1], RobustScaler) == scaled
    assert isinstance(pre.transformers[1][1].steps[-1][1], OneHotEncoder)


def test_pipeline_without_categoricals_or_numerics() -> None:
    assert [t[0] for t in build_pipeline("rf", 2, 0).named_steps["pre"].transformers] == ["num"]
    assert [t[0] for t in build_pipeline("rf", 0, 2).named_steps["pre"].transformers] == ["cat"]


def test_pipeline_imputes_and_handles_unseen_categories() -> None:
    x = np.array([[1.0, "a"], [np.nan, "b"], [3.0, ""], [4.0, "a"]] * 10, dtype=object)
    y = np.array([0, 1, 0, 1] * 10)
    pipe = build_pipeline("logreg", 1, 1).fit(x, y)
    proba = pipe.predict_proba(np.array([[np.nan, "zzz"]], dtype=object))
    assert np.isfinite(proba).all()


def test_unknown_estimator() -> None:
    with pytest.raises(
        ConfigError, match="unknown estimator 'svm'; choose one of logreg, rf, gbdt"
    ):
        estimator_params("svm", 0)


def test_class_balance_weights() -> None:
    y = np.array([0] * 8 + [1] * 2)
    w = class_balance_weights(y, "balanced")
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())
    assert (class_balance_weights(y, "none") == 1).all()
    with pytest.raises(ConfigError):
        class_balance_weights(y, "auto")
