"""Every estimator on every kind of data: train → export → parity → register → load → score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.csvio import load_csv
from models.data import Dataset, synthetic
from models.registry import Registry
from models.scorer import OnnxScorer
from models.workflow import TrainOptions, train
from tests.unit.conftest import ROWS, rows_of

ESTIMATORS = ("logreg", "rf", "gbdt")
KINDS = ("agrawal", "sea", "hyperplane", "csv")
# Every model must beat chance comfortably on these seeded data sets.
MIN_CV_AUC = {"agrawal": 0.75, "sea": 0.95, "hyperplane": 0.85, "csv": 0.7}


def _dataset(kind: str, credit_csv: Path) -> Dataset:
    if kind == "csv":
        return load_csv(credit_csv, target="decision", sensitive="sex")
    return synthetic(kind, rows=ROWS, seed=5)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kind", KINDS)
def test_train_export_register_load_score(
    kind: str,
    estimator: str,
    credit_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = _dataset(kind, credit_csv)
    result = train(ds, TrainOptions(name=f"{kind}-{estimator}", estimator=estimator, folds=3))
    card = result.card

    assert card.parity.labels_identical
    assert card.parity.max_abs_diff <= 1e-4
    assert card.parity.rows == card.data.holdout_rows == len(ds) - card.data.train_rows
    assert card.metrics.cv["roc_auc"].mean >= MIN_CV_AUC[kind]
    assert set(card.metrics.cv) == {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert sum(map(sum, card.metrics.holdout.confusion_matrix)) == card.data.holdout_rows
    assert [f.name for f in card.features] == list(ds.feature_names)
    assert set(card.reference.features) == set(ds.feature_names)
    assert (card.fairness is not None) == (ds.sensitive is not None)

    registry = Registry(tmp_path / "reg")
    stored = registry.register(result.payload, card)
    assert stored.version == "1"
    scorer = OnnxScorer.from_registry(registry, f"{card.name}@1")
    assert (scorer.name, scorer.version) == (card.name, "1")

    rows = rows_of(ds, 300)
    calls = _count_onnx_calls(scorer, monkeypatch)
    labels, proba = scorer.predict_batch(rows)
    expected = result.pipeline.predict_proba(ds.subset(np.arange(300)).matrix())
    assert proba.shape == (300, 2)
    assert np.abs(proba - expected).max() <= 1e-4
    assert np.array_equal(labels, (expected[:, 1] > 0.5).astype(np.int64))
    # one ONNX call for the batch (what it costs is a benchmark figure: bench/components.py)
    assert calls == [300]


def _count_onnx_calls(scorer: OnnxScorer, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each call the scorer makes to its onnxruntime session, from now on."""
    session = scorer._session
    run = session.run
    calls: list[int] = []

    def counted(outputs: Any, feed: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(len(next(iter(feed.values()))))
        return run(outputs, feed, *args, **kwargs)

    monkeypatch.setattr(session, "run", counted)
    return calls
