"""The runtime scorer: validation against the card, missing values, thresholds, threads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.csvio import load_csv
from models.data import assign_groups
from models.errors import IntegrityError, InvalidInputError
from models.fairness import apply_thresholds
from models.scorer import FixedScorer, OnnxScorer, Scorer
from models.workflow import TrainOptions, TrainResult, train
from tests.unit.conftest import rows_of

GOOD = {"x0": 5.0, "x1": 5.0, "x2": 5.0}


def test_scorers_satisfy_the_protocol(sea_result: TrainResult) -> None:
    assert isinstance(OnnxScorer(sea_result.card, sea_result.payload), Scorer)
    assert isinstance(FixedScorer(0.3), Scorer)


def test_null_and_nan_are_imputed_like_training(sea_result: TrainResult) -> None:
    scorer = OnnxScorer(sea_result.card, sea_result.payload)
    _, with_none = scorer.predict_batch([{"x0": 5.0, "x1": None, "x2": 1.0}])
    _, with_nan = scorer.predict_batch([{"x0": 5.0, "x1": math.nan, "x2": 1.0}])
    x = np.array([[5.0, np.nan, 1.0]])
    assert np.allclose(with_none, sea_result.pipeline.predict_proba(x), atol=1e-5)
    assert np.array_equal(with_none, with_nan)


def test_integers_are_numbers_and_extra_keys_are_ignored(sea_result: TrainResult) -> None:
    scorer = OnnxScorer(sea_result.card, sea_result.payload)
    _, a = scorer.predict_batch([{"x0": 5, "x1": 5, "x2": 5, "other": "x"}])
    _, b = scorer.predict_batch([GOOD])
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"x0": "high", "x1": 1.0, "x2": 1.0}, "feature 'x0': expected a number, got str 'high'"),
        ({"x0": "3.5", "x1": 1.0, "x2": 1.0}, "expected a number, got str"),
        ({"x0": True, "x1": 1.0, "x2": 1.0}, "expected a number, got bool"),
        ({"x0": math.inf, "x1": 1.0, "x2": 1.0}, "non-finite"),
        ({"x0": 10**400, "x1": 1.0, "x2": 1.0}, "out of range"),
        ({"x0": [1], "x1": 1.0, "x2": 1.0}, "got list"),
        ({"x0": 1.0, "x2": 1.0}, "missing feature\\(s\\): x1"),
    ],
)
def test_bad_rows_are_reported_per_row(
    sea_result: TrainResult, bad: dict[str, object], message: str
) -> None:
    scorer = OnnxScorer(sea_result.card, sea_result.payload)
    with pytest.raises(InvalidInputError, match=message) as info:
        scorer.predict_batch([GOOD, bad, GOOD, bad])
    assert sorted(info.value.row_errors) == [1, 3]
    assert str(info.value).startswith("row 1: ")
    assert "1 more bad row" in str(info.value)


def test_non_mapping_row_is_rejected(sea_result: TrainResult) -> None:
    scorer = OnnxScorer(sea_result.card, sea_result.payload)
    with pytest.raises(InvalidInputError, match="expected an object of features"):
        scorer.predict_batch([GOOD, ["x0", 1.0]])  # type: ignore[list-item]


def test_empty_batch(sea_result: TrainResult) -> None:
    labels, proba = OnnxScorer(sea_result.card, sea_result.payload).predict_batch([])
    assert labels.shape == (0,) and proba.shape == (0, 2)


def test_payload_must_match_card(sea_result: TrainResult) -> None:
    with pytest.raises(IntegrityError):
        OnnxScorer(sea_result.card, sea_result.payload + b"\x00")


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_do_not_change_results(sea_result: TrainResult, threads: int) -> None:
    scorer = OnnxScorer(sea_result.card, sea_result.payload, threads=threads)
    single = OnnxScorer(sea_result.card, sea_result.payload)
    rows = [{"x0": float(i % 10), "x1": float(i % 7), "x2": 1.0} for i in range(100)]
    assert np.array_equal(scorer.predict_batch(rows)[1], single.predict_batch(rows)[1])


def test_categoricals_accept_ints_none_and_unseen_values(credit_csv: Path) -> None:
    ds = load_csv(credit_csv, target="decision", sensitive="sex")
    result = train(ds, TrainOptions(name="credit", folds=2))
    scorer = OnnxScorer(result.card, result.payload)
    base = {"age": 40, "income": 30000.0, "debt_ratio": 0.2, "job": "nurse", "region": "north"}
    rows = [base, base | {"job": None}, base | {"job": "astronaut"}, base | {"region": 3}]
    labels, proba = scorer.predict_batch(rows)
    assert labels.shape == (4,)
    x = np.array(
        [
            [40.0, 30000.0, 0.2, "nurse", "north"],
            [40.0, 30000.0, 0.2, "", "north"],
            [40.0, 30000.0, 0.2, "astronaut", "north"],
            [40.0, 30000.0, 0.2, "nurse", "3"],
        ],
        dtype=object,
    )
    assert np.abs(proba - result.pipeline.predict_proba(x)).max() <= 1e-4
    with pytest.raises(InvalidInputError, match="feature 'job': expected a string, got float"):
        scorer.predict_batch([base | {"job": 1.5}])


def test_per_group_thresholds_are_applied(agrawal_threshold: TrainResult) -> None:
    card = agrawal_threshold.card
    assert card.thresholds.per_group
    scorer = OnnxScorer(card, agrawal_threshold.payload)
    rows = rows_of_agrawal(400)
    labels, proba = scorer.predict_batch(rows)
    assert card.sensitive is not None
    groups = assign_groups(card.sensitive, np.array([r["age"] for r in rows], dtype=np.float64))
    expected = apply_thresholds(proba[:, 1], groups, card.thresholds.per_group)
    assert np.array_equal(labels, expected)
    assert not np.array_equal(labels, (proba[:, 1] > 0.5).astype(np.int64))


def test_group_from_a_raw_column_and_missing_group(credit_csv: Path) -> None:
    ds = load_csv(credit_csv, target="decision", sensitive="sex")
    result = train(ds, TrainOptions(name="credit", folds=2, mitigate="threshold"))
    per_group = result.card.thresholds.per_group
    assert set(per_group) == {"F", "M"}
    scorer = OnnxScorer(result.card, result.payload)
    rows = rows_of(ds, 200)
    sexes = ["F", "M", None, "X"] * 50
    labels, proba = scorer.predict_batch([r | {"sex": s} for r, s in zip(rows, sexes, strict=True)])
    thr = np.array([per_group.get(str(s), 0.5) if s else 0.5 for s in sexes])
    assert np.array_equal(labels, (proba[:, 1] > thr).astype(np.int64))
    # A row without the sensitive key scores with the default threshold instead of failing.
    labels2, _ = scorer.predict_batch(rows[:4])
    assert np.array_equal(labels2, (proba[:4, 1] > 0.5).astype(np.int64))


def rows_of_agrawal(count: int) -> list[dict[str, object]]:
    from models.data import synthetic

    return rows_of(synthetic("agrawal", rows=count, seed=99), count)


def test_predict_numeric_gives_the_columns_the_model_was_fed(sea_result: TrainResult) -> None:
    scorer = OnnxScorer(sea_result.card, sea_result.payload)
    rows: list[dict[str, object]] = [
        {"x0": 1.0, "x1": None, "x2": 3},
        {"x0": 7.5, "x1": 2.0, "x2": 0.0},
    ]
    labels, proba, columns = scorer.predict_numeric(rows)
    want_labels, want_proba = scorer.predict_batch(rows)
    assert np.array_equal(labels, want_labels) and np.array_equal(proba, want_proba)
    assert list(columns) == ["x0", "x1", "x2"]
    assert columns["x0"].tolist() == [1.0, 7.5]
    assert math.isnan(columns["x1"][0]) and columns["x1"][1] == 2.0  # None is missing: NaN
    assert columns["x2"].dtype == np.float64 and columns["x2"].tolist() == [3.0, 0.0]
    empty = scorer.predict_numeric([])
    assert empty[0].shape == (0,) and all(len(c) == 0 for c in empty[2].values())
