"""Label-free performance estimation against known answers."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray
from scipy.special import expit

from models.card import Calibrator, ModelCard
from models.data import Dataset
from models.fairness import apply_thresholds
from models.workflow import TrainOptions, TrainResult, train
from monitoring.config import MonitorConfig
from monitoring.errors import MonitoringError, SnapshotError
from monitoring.estimation import ExpectedConfusion, expected_confusion
from monitoring.estimator import PerformanceEstimator

IDENTITY = Calibrator(x=[0.0, 1.0], y=[0.0, 1.0], rows=1, calibration_error=0.0, brier=0.0)
WEIGHTS = np.array([1.5, -1.0, 0.8])


def _realized(y: NDArray[np.int64], pred: NDArray[np.bool_]) -> dict[str, float]:
    tp = float(np.sum(y[pred]))
    fp = float(np.sum(pred)) - tp
    fn = float(np.sum(y[~pred]))
    return {
        "accuracy": float(np.mean(y == pred)),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
    }


def test_a_hand_worked_block() -> None:
    block = expected_confusion(np.array([0.9, 0.6, 0.3]), IDENTITY, threshold=0.5)
    assert (block.pos, block.neg) == (2, 1)
    assert (block.tp, block.fp, block.tn, block.fn) == pytest.approx((1.5, 0.5, 0.7, 0.3))
    assert (block.var_pos, block.var_neg) == pytest.approx((0.09 + 0.24, 0.21))
    est = block.estimate(bias=0.0, z=1.0)
    assert est.accuracy is not None and est.f1 is not None
    assert est.accuracy.value == pytest.approx(2.2 / 3)
    assert est.accuracy.high - est.accuracy.value == pytest.approx(math.sqrt(0.54) / 3)
    assert est.f1.value == pytest.approx(3.0 / (3.0 + 0.5 + 0.3))
    # the bias moves every p of the predicted positives down, of the negatives up
    low = block.estimate(bias=0.1, z=0.0).accuracy
    assert low is not None
    assert low.low == pytest.approx((1.5 - 0.2 + 0.7 - 0.1) / 3)


def test_a_threshold_per_event_or_the_scorers_labels_decide_the_prediction() -> None:
    scores = np.array([0.9, 0.6, 0.3])
    per_event = expected_confusion(scores, IDENTITY, threshold=np.array([0.95, 0.5, 0.2]))
    given = expected_confusion(scores, IDENTITY, predicted=np.array([0, 1, 1]))
    assert per_event == given
    assert (given.pos, given.tp) == (2, pytest.approx(0.9))


def test_calibrated_scores_estimate_the_realized_figures_within_their_bands() -> None:
    """Perfectly calibrated scores: the band covers the realized figure about 95 % of the
    time (z = 1.96), and the estimate is unbiased, over 300 seeds of 2,000 events."""
    covered = dict.fromkeys(("accuracy", "precision", "recall", "f1"), 0)
    errors: list[float] = []
    seeds = 300
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        p = rng.beta(0.7, 0.9, 2000)
        y = (rng.random(2000) < p).astype(np.int64)
        est = expected_confusion(p, IDENTITY).estimate(bias=0.0)
        real = _realized(y, p > 0.5)
        for name in covered:
            band = getattr(est, name)
            covered[name] += band.low <= real[name] <= band.high
        assert est.accuracy is not None
        errors.append(real["accuracy"] - est.accuracy.value)
    for name, hits in covered.items():
        assert 0.91 <= hits / seeds <= 0.99, (name, hits)
    assert abs(np.mean(errors)) < 0.002
    assert np.std(errors) == pytest.approx(0.0098, rel=0.15)  # sqrt(E[p(1-p)] / 2000)


def test_a_biased_calibrator_is_covered_by_its_bias_term() -> None:
    rng = np.random.default_rng(9)
    p = rng.random(20_000)
    y = (rng.random(20_000) < np.clip(p - 0.03, 0, 1)).astype(np.int64)  # scores 3 points high
    block = expected_confusion(p, IDENTITY)
    real = _realized(y, p > 0.5)
    unaware = block.estimate(bias=0.0)
    aware = block.estimate(bias=0.03)
    assert unaware.precision is not None and aware.precision is not None
    assert not unaware.precision.low <= real["precision"] <= unaware.precision.high
    assert aware.precision.low <= real["precision"] <= aware.precision.high


def test_blocks_merge_to_the_block_of_their_concatenation() -> None:
    rng = np.random.default_rng(5)
    p = rng.random(10_000)
    cal = Calibrator(
        x=[0.1, 0.4, 0.6, 0.9], y=[0.05, 0.3, 0.8, 0.97], rows=1, calibration_error=0, brier=0
    )
    whole = expected_confusion(p, cal, threshold=0.4)
    cuts = np.sort(rng.choice(np.arange(1, p.size), 37, replace=False))
    parts = [expected_confusion(part, cal, threshold=0.4) for part in np.split(p, cuts)]
    left = ExpectedConfusion()
    for part in parts:
        left = left.merge(part)
    right = ExpectedConfusion()
    for part in reversed(parts):
        right = part.merge(right)
    for merged in (left, right):
        assert (merged.pos, merged.neg) == (whole.pos, whole.neg)
        for name in ("tp", "fn", "var_pos", "var_neg"):
            assert getattr(merged, name) == pytest.approx(getattr(whole, name), rel=1e-12)
    wire = orjson.loads(orjson.dumps(left.to_json()))
    assert ExpectedConfusion.from_json(wire) == left
    with pytest.raises(SnapshotError):
        ExpectedConfusion.from_json({"pos": 1})


def _draw(
    rng: np.random.Generator, n: int, shift: float
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    x = rng.normal(size=(n, 3))
    x[:, 0] += shift
    y = (rng.random(n) < expit(x @ WEIGHTS)).astype(np.int64)
    return x, y


def _dataset(x: NDArray[np.float64], y: NDArray[np.int64]) -> Dataset:
    return Dataset(
        source="estimation-test",
        numeric_names=("x0", "x1", "x2"),
        categorical_names=(),
        numeric=x,
        categorical=np.empty((x.shape[0], 0), dtype=object),
        y=y,
        classes=("0", "1"),
        target="label",
    )


@pytest.fixture(scope="module")
def logistic() -> TrainResult:
    """A logistic regression on 3 Gaussian features, its labels a logistic of them."""
    x, y = _draw(np.random.default_rng(0), 20_000, 0.0)
    return train(_dataset(x, y), TrainOptions(name="est", folds=2, seed=0))


def test_under_covariate_shift_the_estimate_is_within_3_points(logistic: TrainResult) -> None:
    card = logistic.card
    assert card.calibrator is not None
    est = PerformanceEstimator(window=10_000, metric="accuracy")
    est.add_card(card)
    for seed in range(5):
        # x0 moves 1.5 sd: the labels follow the same P(y | x), the accuracy changes
        x, y = _draw(np.random.default_rng([seed, 7]), 10_000, 1.5)
        p = logistic.pipeline.predict_proba(x)[:, 1]
        block = est.block(card.version, p)
        estimate = block.estimate(card.calibrator.calibration_error)
        assert estimate.accuracy is not None
        realized = float(np.mean(y == (p > 0.5)))
        assert abs(estimate.accuracy.value - realized) < 0.03
        assert estimate.accuracy.low <= realized <= estimate.accuracy.high
        # the shift moved accuracy by more than the tolerance: the check is not vacuous
        assert abs(realized - card.metrics.holdout.accuracy) > 0.03


def test_the_estimated_finding_fires_before_any_label(logistic: TrainResult) -> None:
    card = logistic.card
    config = MonitorConfig(performance_metric="accuracy", window=2000, min_labels=500)
    rng = np.random.default_rng(11)

    def run(shrink: float) -> list[int]:
        est = PerformanceEstimator.from_config(config)
        est.add_card(card)
        fired: list[int] = []
        for batch in range(40):
            x, _ = _draw(rng, 256, 0.0)
            if batch >= 10:
                x *= shrink  # the events crowd the decision boundary: covariate shift only
            p = logistic.pipeline.predict_proba(x)[:, 1]
            for _, finding, periodic in est.observe(card.version, est.block(card.version, p)):
                assert periodic
                if finding is not None:
                    assert finding.kind == "performance"
                    assert finding.details["estimated"] is True
                    assert finding.statistic < finding.threshold
                    assert finding.threshold == pytest.approx(
                        card.metrics.holdout.accuracy - config.performance_margin
                    )
                    fired.append(batch)
        return fired

    assert run(1.0) == []
    fired = run(0.15)
    assert fired and 10 <= fired[0] <= 20


def test_snapshot_and_restore(logistic: TrainResult) -> None:
    card = logistic.card
    rng = np.random.default_rng(2)
    est = PerformanceEstimator(window=1000)
    est.add_card(card)
    for _ in range(9):
        x, _ = _draw(rng, 300, 0.5)
        est.observe(card.version, est.block(card.version, logistic.pipeline.predict_proba(x)[:, 1]))
    state = orjson.loads(orjson.dumps(est.snapshot()))
    assert sum(b["pos"] + b["neg"] for b in state[card.version]["blocks"]) == 1200  # whole
    again = PerformanceEstimator(window=1000)
    again.add_card(card)
    again.restore(state)
    before, after = est.estimate(card.version), again.estimate(card.version)
    assert after.events == before.events == 1200
    for name in ("accuracy", "precision", "recall", "f1"):
        was, now = getattr(before, name), getattr(after, name)
        assert (now.value, now.low, now.high) == pytest.approx((was.value, was.low, was.high))
    with pytest.raises(MonitoringError, match="no estimator for version '99'"):
        again.estimate("99")


def test_a_card_without_calibrator_uses_raw_scores_and_their_error(
    logistic: TrainResult,
) -> None:
    old: ModelCard = logistic.card.model_copy(update={"calibrator": None})
    est = PerformanceEstimator()
    est.add_card(old)
    p = np.array([0.9, 0.2, 0.7])
    assert est.block(old.version, p) == expected_confusion(p, None)
    assert est.estimate(old.version).bias == old.metrics.holdout.calibration_error


def test_per_group_thresholds_decide_as_the_scorer_does(logistic: TrainResult) -> None:
    per_group = {"a": 0.3, "b": 0.7}
    card = logistic.card.model_copy(
        update={"thresholds": logistic.card.thresholds.model_copy(update={"per_group": per_group})}
    )
    est = PerformanceEstimator()
    est.add_card(card, key=f"{card.version}/champion")
    rng = np.random.default_rng(6)
    p = rng.random(500)
    groups = rng.choice(np.array(["a", "b", ""], dtype=object), 500)
    labels = apply_thresholds(p, groups, per_group, card.thresholds.default)
    block = est.block(f"{card.version}/champion", p, groups=groups)
    assert block == est.block(f"{card.version}/champion", p, predicted=labels)
    assert block.pos == int(labels.sum()) != int((p > 0.5).sum())
    with pytest.raises(MonitoringError):
        est.block(card.version, p)
