"""The scikit-learn pipeline: preprocessing and estimator in one exportable object.

Numeric columns are median-imputed and, for the linear model, scaled with
:class:`~sklearn.preprocessing.RobustScaler` (median/IQR, so outliers do not dominate the fit).
Tree ensembles get no scaler: their splits are invariant to per-feature monotone rescaling, and
a scaler in front of a tree makes scikit-learn (float64 scaling, then a float32 cast) and ONNX
(float32 scaling) disagree at split thresholds, which fails the parity gate. Categorical
columns get a ``__missing__`` category for missing values and are one-hot encoded, ignoring
categories unseen in training. The whole pipeline is exported to ONNX, so a worker feeds it
raw features.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, RobustScaler
from sklearn.utils.class_weight import compute_sample_weight

from models.data import MISSING_CATEGORY
from models.errors import ConfigError

EstimatorKind = Literal["logreg", "rf", "gbdt"]
ESTIMATORS: tuple[str, ...] = ("logreg", "rf", "gbdt")
ParamValue = float | int | str | bool | None


def estimator_params(kind: str, seed: int) -> dict[str, ParamValue]:
    """Hyper-parameters used for ``kind`` (recorded in the card).

    Tree sizes are bounded so the exported graph stays small and fast to score.
    ``gbdt`` is :class:`~sklearn.ensemble.GradientBoostingClassifier`: the histogram variant
    does not convert with the pinned skl2onnx.

    Raises
    ------
    ConfigError
        Unknown estimator.
    """
    if kind == "logreg":
        return {"C": 1.0, "max_iter": 2000, "solver": "lbfgs"}
    if kind == "rf":
        return {
            "n_estimators": 100,
            "max_depth": 12,
            "min_samples_leaf": 3,
            "random_state": seed,
            "n_jobs": 1,
        }
    if kind == "gbdt":
        return {"n_estimators": 150, "max_depth": 3, "learning_rate": 0.1, "random_state": seed}
    raise ConfigError(
        f"unknown estimator {kind!r}; choose one of {', '.join(ESTIMATORS)}",
        option="model",
        value=kind,
    )


def build_pipeline(kind: str, n_numeric: int, n_categorical: int, seed: int = 42) -> Pipeline:
    """An unfitted pipeline over a matrix whose numeric columns come first.

    Parameters
    ----------
    kind : {"logreg", "rf", "gbdt"}
        The estimator; the final step is named ``clf``.
    n_numeric, n_categorical : int
        Number of numeric and categorical columns.
    seed : int
        Random state of the estimator.

    Returns
    -------
    Pipeline

    Examples
    --------
    >>> pipe = build_pipeline("logreg", n_numeric=2, n_categorical=1)
    >>> [name for name, _ in pipe.steps]
    ['pre', 'clf']
    """
    params = estimator_params(kind, seed)
    clf: LogisticRegression | RandomForestClassifier | GradientBoostingClassifier
    if kind == "logreg":
        clf = LogisticRegression(**params)
    elif kind == "rf":
        clf = RandomForestClassifier(**params)
    else:
        clf = GradientBoostingClassifier(**params)
    parts: list[tuple[str, Pipeline, list[int]]] = []
    if n_numeric:
        steps: list[tuple[str, SimpleImputer | RobustScaler]] = [
            ("impute", SimpleImputer(strategy="median"))
        ]
        if kind == "logreg":
            steps.append(("scale", RobustScaler()))
        num = Pipeline(steps)
        parts.append(("num", num, list(range(n_numeric))))
    if n_categorical:
        cat = Pipeline(
            [
                (
                    "impute",
                    SimpleImputer(
                        missing_values=MISSING_CATEGORY,
                        strategy="constant",
                        fill_value="__missing__",
                    ),
                ),
                ("onehot", OneHotEncoder(handle_unknown="ignore")),
            ]
        )
        parts.append(("cat", cat, list(range(n_numeric, n_numeric + n_categorical))))
    pre = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("pre", pre), ("clf", clf)])


def class_balance_weights(y: NDArray[np.int64], mode: str) -> NDArray[np.float64]:
    """Per-row weights for ``--class-weight``: ones, or ``n / (2 · n_class)`` for ``balanced``.

    Examples
    --------
    >>> class_balance_weights(np.array([0, 0, 0, 1]), "balanced").tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    if mode == "none":
        return np.ones(y.shape[0], dtype=np.float64)
    if mode == "balanced":
        return np.asarray(compute_sample_weight("balanced", y), dtype=np.float64)
    raise ConfigError(
        f"unknown class weight {mode!r}; choose none or balanced", option="class_weight", value=mode
    )


__all__ = [
    "ESTIMATORS",
    "EstimatorKind",
    "build_pipeline",
    "class_balance_weights",
    "estimator_params",
]
