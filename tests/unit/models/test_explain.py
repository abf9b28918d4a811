"""What the card records for explanations: score importance and the PCA of the features."""

from __future__ import annotations

import warnings

import numpy as np
import orjson
import pytest

from models.card import ModelCard
from models.data import Dataset, synthetic
from models.explain import fit_pca, score_importance
from models.training import build_pipeline
from models.workflow import TrainOptions, train


def _linear(seed: int, rows: int, weights: list[float]) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(weights)))
    y = (rng.random(rows) < 1 / (1 + np.exp(-(x @ np.array(weights))))).astype(np.int64)
    names = tuple(f"x{j}" for j in range(len(weights)))
    return Dataset(
        source="linear",
        numeric_names=names,
        categorical_names=(),
        numeric=x,
        categorical=np.empty((rows, 0), dtype=object),
        y=y,
        classes=("0", "1"),
        target="y",
    )


def test_importance_follows_the_coefficients_linearly() -> None:
    weights = [2.0, 1.0, 0.5, 0.0]
    ds = _linear(1, 20_000, weights)
    pipe = build_pipeline("logreg", 4, 0).fit(ds.matrix(), ds.y)
    imp = score_importance(pipe, ds.matrix(), ds.numeric_names, seed=3)
    assert imp is not None and imp.method == "score_permutation" and imp.rows == 2_000
    v = imp.values
    assert abs(sum(v.values()) - 1) < 1e-12
    # Twice the coefficient, twice the importance (an accuracy drop would be near 4x).
    assert 1.7 < v["x0"] / v["x1"] < 2.3
    assert 1.7 < v["x1"] / v["x2"] < 2.3
    assert v["x3"] < 0.02


def test_a_constant_model_has_no_importance() -> None:
    ds = _linear(2, 500, [0.0, 0.0])

    class Constant:
        def predict_proba(self, m: np.ndarray) -> np.ndarray:
            return np.full((m.shape[0], 2), 0.5)

    assert score_importance(Constant(), ds.matrix(), ds.numeric_names) is None  # type: ignore[arg-type]


def test_the_pca_keeps_the_correlated_axis_and_leaves_the_rest_as_error() -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(size=(30_000, 5))
    z[:, 1] = 0.8 * z[:, 0] + 0.6 * z[:, 1]
    x = z * np.array([1.0, 10.0, 0.1, 3.0, 1.0]) + 5.0  # scales do not matter: standardised
    pca = fit_pca(x[:20_000], x[20_000:], [f"x{j}" for j in range(5)])
    assert pca is not None
    # Eigenvalues 1.8, 1, 1, 1, 0.2 of 5: 4 axes reach 90 %, the one left is x0 - x1.
    assert pca.kept == 4 and abs(sum(pca.explained_variance) - 0.96) < 0.01
    left = np.array(pca.column_error)
    assert left[[0, 1]].min() > 10 * left[[2, 3, 4]].max()
    assert abs(left.sum() - 0.2) < 0.02  # the variance of (x0 - x1) / sqrt(2): 1 - 0.8
    assert pca.offset == pytest.approx(0.01 * left.sum())
    # The reference is of log(offset + e): its median that of 0.2 times a chi-square(1).
    assert pca.error.quantiles is not None
    median = pca.error.quantiles[pca.error.quantile_levels.index(0.5)]  # type: ignore[union-attr]
    assert abs(median - np.log(pca.offset + 0.2 * 0.455)) < 0.1


def test_the_pca_never_keeps_every_axis_and_needs_two_columns() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2_000, 3))
    pca = fit_pca(x[:1500], x[1500:], ["a", "b", "c"])
    assert pca is not None and pca.kept == 2
    assert fit_pca(x[:1500, :1], x[1500:, :1], ["a"]) is None


def test_missing_values_count_as_the_mean() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4_000, 3))
    x[::7, 1] = np.nan
    pca = fit_pca(x[:3000], x[3000:], ["a", "b", "c"])
    assert pca is not None and np.isfinite(pca.components).all()
    x[:, 2] = np.nan  # a column never present
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pca = fit_pca(x[:3000], x[3000:], ["a", "b", "c"])
    assert pca is not None and pca.mean[2] == 0.0 and pca.scale[2] == 1.0


def test_a_trained_card_carries_both_and_an_old_card_still_loads() -> None:
    card = train(synthetic("agrawal", rows=1_000, seed=2), TrainOptions(name="a", folds=2)).card
    assert card.importance is not None and card.pca is not None
    assert set(card.importance.values) == {f.name for f in card.features}
    assert card.pca.columns == [f.name for f in card.features if f.kind == "numeric"]
    again = ModelCard.from_json(card.to_json())
    assert again == card
    old = orjson.loads(card.to_json())
    del old["importance"], old["pca"]
    legacy = ModelCard.from_json(orjson.dumps(old))
    assert legacy.importance is None and legacy.pca is None
