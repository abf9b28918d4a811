"""Promotion gates on seeded data: pass, champion refusal, fairness refusal, parity refusal."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from models.data import Dataset, synthetic
from models.errors import ConfigError, GateInputError
from models.gates import GateConfig, GateReport, GateResult, dataset_rows, run_gates
from models.workflow import TrainOptions, TrainResult, train

SPLIT = 1500


def _head(ds: Dataset, n: int = SPLIT) -> Dataset:
    return ds.subset(np.arange(n))


def _tail(ds: Dataset, n: int = SPLIT) -> Dataset:
    return ds.subset(np.arange(n, len(ds)))


@pytest.fixture(scope="module")
def credit_model(credit: Dataset) -> TrainResult:
    """Logistic regression on the first 1,500 credit rows (sensitive column ``sex``)."""
    return train(_head(credit), TrainOptions(name="credit", folds=3))


@pytest.fixture(scope="module")
def drift() -> tuple[TrainResult, TrainResult, Dataset]:
    """A model of the old concept, a model of the new one, and recent rows of the new one.

    Hyperplane generators with different seeds draw different hyperplanes: the same features
    and another rule for the label — a concept drift.
    """
    before = synthetic("hyperplane", rows=3000, seed=1, features=5)
    after = synthetic("hyperplane", rows=3000, seed=2, features=5)
    old = train(_head(before), TrainOptions(name="hp", folds=3))
    new = train(_head(after), TrainOptions(name="hp", folds=3))
    return old, new, _tail(after)


def test_a_good_candidate_passes_every_gate(credit_model: TrainResult, credit: Dataset) -> None:
    report = run_gates(credit_model.card, credit_model.payload, None, _tail(credit), GateConfig())
    assert report.passed, report.summary()
    assert report.failed == []
    assert report.summary() == "passed: cross_validation, champion, fairness, onnx_parity"
    by_metric = {(r.name, r.metric): r for r in report.results}
    fairness = by_metric[("fairness", "dp_gap")]
    assert fairness.value is not None and fairness.value <= 0.25  # evaluated, not skipped
    assert set(fairness.data["groups"]) == {"F", "M"}
    assert by_metric[("champion", "accuracy")].detail == "no champion to beat"
    assert by_metric[("onnx_parity", "sha256")].passed


def test_a_retrained_candidate_beats_a_stale_champion(
    drift: tuple[TrainResult, TrainResult, Dataset],
) -> None:
    old, new, recent = drift
    report = run_gates(new.card, new.payload, (old.card, old.payload), recent, GateConfig())
    assert report.passed, report.summary()
    champ = next(r for r in report.results if r.name == "champion")
    assert champ.value is not None and champ.threshold is not None
    assert champ.value > champ.threshold + 0.1  # the new concept is learnt, the old is not
    assert champ.data["candidate"] > 0.85


def test_the_champion_gate_refuses_a_worse_candidate(
    drift: tuple[TrainResult, TrainResult, Dataset],
) -> None:
    old, new, recent = drift
    report = run_gates(old.card, old.payload, (new.card, new.payload), recent, GateConfig())
    assert not report.passed
    assert report.failed_gates == ["champion"]  # its own CV is fine: only recent data tells
    assert report.summary().startswith("refused: champion accuracy ")
    assert " < " in report.summary()


def test_min_improvement_and_f1_metric(drift: tuple[TrainResult, TrainResult, Dataset]) -> None:
    _, new, recent = drift
    same = run_gates(new.card, new.payload, (new.card, new.payload), recent, GateConfig())
    assert same.passed  # ties pass at min_improvement 0
    stricter = GateConfig(metric="f1", min_improvement=0.01)
    refused = run_gates(new.card, new.payload, (new.card, new.payload), recent, stricter)
    assert refused.failed_gates == ["champion"]
    assert refused.failed[0].metric == "f1"


def test_a_forced_fairness_failure_is_refused_and_named(
    credit_model: TrainResult, credit: Dataset
) -> None:
    config = GateConfig(max_dp_gap=0.01)
    report = run_gates(credit_model.card, credit_model.payload, None, _tail(credit), config)
    assert not report.passed
    assert report.failed_gates == ["fairness"]
    assert report.summary().startswith("refused: fairness dp_gap ")
    assert "> 0.010" in report.summary()
    off = GateConfig(max_dp_gap=None, max_eo_gap=None)
    assert run_gates(credit_model.card, credit_model.payload, None, _tail(credit), off).passed


def test_the_parity_gate_catches_a_payload_whose_hash_differs(
    drift: tuple[TrainResult, TrainResult, Dataset],
) -> None:
    old, new, recent = drift
    # A valid ONNX model, but not the one the card describes.
    report = run_gates(new.card, old.payload, (old.card, old.payload), recent)
    assert not report.passed
    assert "onnx_parity" in report.failed_gates
    sha = next(r for r in report.results if r.metric == "sha256")
    assert not sha.passed and "differs from the card" in sha.detail
    assert "onnx_parity sha256: payload sha256" in report.summary()
    champ = next(r for r in report.results if r.name == "champion")
    assert not champ.passed and champ.detail.startswith("not evaluated")


def test_the_parity_gate_checks_the_recorded_parity(
    drift: tuple[TrainResult, TrainResult, Dataset],
) -> None:
    _, new, recent = drift
    bad = new.card.model_copy(
        update={"parity": new.card.parity.model_copy(update={"max_abs_diff": 3e-3})}
    )
    report = run_gates(bad, new.payload, None, recent)
    assert report.failed_gates == ["onnx_parity"]
    assert "onnx_parity max_abs_diff 3.00e-03 > 1.00e-04" in report.summary()


def test_cross_validation_gate(credit_model: TrainResult, credit: Dataset) -> None:
    report = run_gates(
        credit_model.card, credit_model.payload, None, _tail(credit), GateConfig(min_cv_f1=0.99)
    )
    assert report.failed_gates == ["cross_validation"]
    assert "cross_validation f1 " in report.summary() and "< 0.990" in report.summary()
    wobbly = GateConfig(max_cv_f1_std=0.0)
    report = run_gates(credit_model.card, credit_model.payload, None, _tail(credit), wobbly)
    assert [r.metric for r in report.failed] == ["f1_std"]


def test_report_is_json(credit_model: TrainResult, credit: Dataset) -> None:
    report = run_gates(credit_model.card, credit_model.payload, None, _tail(credit))
    doc = orjson.loads(orjson.dumps(report.to_dict()))
    assert doc["passed"] is True and doc["failed"] == []
    assert doc["candidate"] == "credit@draft"
    assert doc["results"][0]["name"] == "cross_validation"


def test_summary_lists_every_failed_check() -> None:
    report = GateReport(
        results=[
            GateResult("fairness", False, 0.31, 0.2, "dp", "dp_gap", "<="),
            GateResult("champion", False, 0.7, 0.8, "acc", "accuracy", ">="),
            GateResult("onnx_parity", True, None, None, "ok", "sha256"),
        ]
    )
    assert (
        report.summary()
        == "refused: fairness dp_gap 0.310 > 0.200; champion accuracy 0.700 < 0.800"
    )
    assert report.failed_gates == ["fairness", "champion"]


def test_unusable_inputs_raise(drift: tuple[TrainResult, TrainResult, Dataset]) -> None:
    _, new, recent = drift
    other = synthetic("sea", rows=200, seed=1)
    with pytest.raises(GateInputError, match="disagree on features"):
        run_gates(new.card, new.payload, None, other)
    with pytest.raises(GateInputError, match="at least 30"):
        run_gates(new.card, new.payload, None, recent.subset(np.arange(10)))
    sea = train(other, TrainOptions(name="sea", folds=3))
    # x0..x2 are among the holdout's x0..x4: a champion may use fewer features.
    assert run_gates(new.card, new.payload, (sea.card, sea.payload), recent).results
    agr = train(synthetic("agrawal", rows=300, seed=1), TrainOptions(name="agr", folds=3))
    with pytest.raises(GateInputError, match="champion agr@draft"):
        run_gates(new.card, new.payload, (agr.card, agr.payload), recent)
    with pytest.raises(ConfigError):
        GateConfig(metric="auc")  # type: ignore[arg-type]


def test_dataset_rows_marks_missing_values_as_none(credit: Dataset) -> None:
    rows = dataset_rows(credit)
    assert len(rows) == len(credit)
    i, j = map(int, np.argwhere(np.isnan(credit.numeric))[0])
    assert rows[i][credit.numeric_names[j]] is None
    k = int(np.flatnonzero((credit.categorical == "").any(axis=1))[0])
    assert None in [rows[k][n] for n in credit.categorical_names]
