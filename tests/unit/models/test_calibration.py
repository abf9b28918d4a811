"""The holdout's isotonic calibrator: fitted at training, stored as knots, applied by interp."""

from __future__ import annotations

import numpy as np
import orjson
from sklearn.isotonic import IsotonicRegression

from models.calibration import fit_calibrator
from models.card import ModelCard
from models.data import synthetic
from models.workflow import TrainOptions, train


def test_knots_reproduce_isotonic_regression() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(5000)
    y = (rng.random(5000) < np.sqrt(p)).astype(np.int64)
    cal = fit_calibrator(y, p)
    assert cal is not None
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    probe = np.linspace(-0.5, 1.5, 2001)
    gap = np.abs(np.interp(probe, cal.x, cal.y) - iso.predict(probe))
    # knots are rounded to 5 decimals: only the steep ramps between two near knots move
    assert gap.max() < 2e-3
    assert gap.mean() < 1e-5
    assert all(a <= b for a, b in zip(cal.x, cal.x[1:], strict=False))
    assert all(a <= b for a, b in zip(cal.y, cal.y[1:], strict=False))


def test_calibration_error_is_out_of_fold_and_tells_good_from_bad_scores() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(8000)
    y = (rng.random(8000) < p).astype(np.int64)
    good = fit_calibrator(y, p)
    assert good is not None
    # out of fold: finite-sample noise, not the in-sample fit's near-zero
    assert 0.0 < good.calibration_error < 0.03
    assert abs(good.brier - float(np.mean(p * (1 - p)))) < 0.01
    noise = fit_calibrator(y, rng.random(8000))  # scores that say nothing
    assert noise is not None
    assert noise.brier > good.brier + 0.05


def test_no_calibrator_without_both_classes() -> None:
    assert fit_calibrator(np.zeros(100, dtype=np.int64), np.linspace(0, 1, 100)) is None
    assert fit_calibrator(np.array([0] * 95 + [1] * 5), np.linspace(0, 1, 100)) is None


def test_training_stores_it_in_the_card_and_old_cards_still_load() -> None:
    card = train(synthetic("sea", rows=1500, seed=2), TrainOptions(name="s", folds=2)).card
    assert card.calibrator is not None
    assert card.calibrator.rows == card.data.holdout_rows
    assert len(card.calibrator.x) == len(card.calibrator.y) >= 2
    assert ModelCard.from_json(card.to_json()) == card
    old = orjson.loads(card.to_json())
    del old["calibrator"]
    assert ModelCard.from_json(orjson.dumps(old)).calibrator is None
