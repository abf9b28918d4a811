"""Calibrated sequential detectors: false alarms within the budget on every feature family,
delays near Lorden's bound, categories and the error stream, exact snapshots."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from models.profile import categorical_profile, numeric_profile
from monitoring.cusum import GAUSSIAN_SLACK, gaussian_threshold, threshold
from monitoring.rate_drift import CATEGORY_RATIOS, CategoricalDrift, ErrorDrift
from monitoring.sequential_drift import LOCATION_SHIFTS, SCALE_SHIFTS, NumericDrift, ScoreDrift
from monitoring.windows import CategoricalReference, NumericReference

Draw = Callable[[np.random.Generator, int], NDArray[np.float64]]
FAMILIES: dict[str, Draw] = {
    "gaussian": lambda rng, n: rng.normal(size=n),
    "skewed": lambda rng, n: rng.lognormal(sigma=1.0, size=n),
    "heavy": lambda rng, n: rng.standard_t(3, size=n),
    "discrete": lambda rng, n: rng.poisson(3.0, size=n).astype(np.float64),
}
BLOCK = 256
PER_NUMERIC = len(LOCATION_SHIFTS) + len(SCALE_SHIFTS)


def _refs(rng: np.random.Generator, rows: int = 50_000) -> list[NumericReference]:
    return [
        NumericReference.from_profile(f"{name}{i}", numeric_profile(draw(rng, rows)))
        for name, draw in FAMILIES.items()
        for i in range(2)
    ]


def _stream(rng: np.random.Generator, events: int) -> NDArray[np.float64]:
    cols = [draw(rng, events) for draw in FAMILIES.values() for _ in range(2)]
    return np.column_stack(cols)


def _alarms(det: NumericDrift, x: NDArray[np.float64]) -> list[tuple[int, int, str]]:
    """(event at the block's end, column, test) of every alarm."""
    out = []
    for start in range(0, x.shape[0] - BLOCK + 1, BLOCK):
        det.add(x[start : start + BLOCK])
        out += [(start + BLOCK, j, test) for j, test, _, _ in det.flush()]
    return out


def test_the_discrete_feature_falls_back_to_its_moments_and_the_others_to_normal_scores() -> None:
    det = NumericDrift(_refs(np.random.default_rng(0)), h=10.0)
    assert det._pit.tolist() == [True] * 6 + [False] * 2


@pytest.mark.parametrize("budget", [1.0, 300.0])
def test_a_million_stationary_events_stay_within_the_budget(budget: float) -> None:
    rng = np.random.default_rng(11)
    refs = _refs(rng)
    h = gaussian_threshold(threshold(budget * 1e-6, PER_NUMERIC * len(refs), BLOCK))
    det = NumericDrift(refs, h)
    found = _alarms(det, _stream(rng, 1_000_000))
    assert len(found) <= budget, found[:10]


@pytest.mark.parametrize(("shift", "bound"), [(0.25, 531), (0.5, 133), (1.0, 33)])
def test_mean_shift_delays_are_within_twice_lordens_bound_or_the_first_block(
    shift: float, bound: int
) -> None:
    # Lorden: log(1 / alpha) / KL, alpha = 1e-6 per event over 16 one-sided tests (8 features).
    assert bound == pytest.approx(math.log(16e6) / (shift**2 / 2), rel=0.02)
    rng = np.random.default_rng(5)
    refs = _refs(rng, rows=200_000)[:2]  # two Gaussian features
    h = gaussian_threshold(threshold(1e-6, PER_NUMERIC * 8, BLOCK))
    delays = []
    for _ in range(10):
        det = NumericDrift(refs, h)
        x = rng.normal(size=(20_480, 2))
        x[10_240:, 0] += shift
        found = [e for e, j, _ in _alarms(det, x) if j == 0 and e > 10_240]
        assert not [e for e, _, _ in _alarms(NumericDrift(refs, h), x[:10_240])]
        delays.append(found[0] - 10_240)
    assert float(np.median(delays)) <= max(2 * bound, BLOCK)


def test_a_scale_change_is_found_by_the_scale_test() -> None:
    rng = np.random.default_rng(6)
    refs = _refs(rng)[:1]
    det = NumericDrift(refs, gaussian_threshold(threshold(1e-6, PER_NUMERIC * 8, BLOCK)))
    x = rng.normal(size=(8192, 1))
    x[4096:] *= 1.5
    found = _alarms(det, x)
    assert found and found[0][0] - 4096 <= 1000 and found[0][2] == "scale"


def _categories(rng: np.random.Generator, share: float, n: int) -> NDArray[np.object_]:
    other = rng.choice(["b", "c", "d"], size=n)
    return np.where(rng.random(n) < share, "a", other).astype(object)


def test_categorical_shares_stay_quiet_then_find_a_mix_change() -> None:
    rng = np.random.default_rng(8)
    profile = categorical_profile(_categories(rng, 0.25, 50_000))
    ref = CategoricalReference.from_profile("c", profile)
    h = threshold(100e-6, 4 * len(CATEGORY_RATIOS), BLOCK)
    det = CategoricalDrift([ref], [50_000], h)
    quiet = 0
    for _ in range(1_000_000 // BLOCK):
        det.add([_categories(rng, 0.25, BLOCK)])
        quiet += len(det.checks({}))
    assert quiet <= 100
    delay = None
    for b in range(40):
        det.add([_categories(rng, 0.55, BLOCK)])
        if det.checks({}):
            delay = (b + 1) * BLOCK
            break
    assert delay is not None and delay <= 1500


def test_the_error_rate_rising_is_concept_drift_and_a_steady_one_is_not() -> None:
    rng = np.random.default_rng(9)
    det = ErrorDrift(0.2, rows=5000, h=threshold(100e-6, 3))
    quiet = sum(det.update(rng.random(100) < 0.2) is not None for _ in range(10_000))
    assert quiet <= 100  # a million labels in batches of 100
    later = [b for b in range(100) if det.update(rng.random(100) < 0.3) is not None]
    assert later and later[0] * 100 < 2_000


def test_a_restored_detector_continues_exactly() -> None:
    rng = np.random.default_rng(10)
    refs = _refs(rng, rows=5000)
    x = _stream(rng, 40 * BLOCK)
    x[20 * BLOCK :, 2] += 0.5
    a, b = NumericDrift(refs, 9.0), NumericDrift(refs, 9.0)
    _alarms(a, x[: 20 * BLOCK + 100])
    a.add(x[20 * BLOCK : 20 * BLOCK + 100])
    b.restore(json.loads(json.dumps(a.snapshot())))
    assert _alarms(a, x[20 * BLOCK + 100 :]) == _alarms(b, x[20 * BLOCK + 100 :])
    assert np.array_equal(a.bank.stats, b.bank.stats)


@pytest.mark.parametrize("budget", [1.0, 300.0])
def test_saturating_scores_against_a_small_holdout_stay_within_the_budget(budget: float) -> None:
    # Scores piled up near 0 and 1 (a confident model), the reference a 10,000-row holdout.
    rng = np.random.default_rng(12)

    def scores(n: int) -> NDArray[np.float64]:
        return np.asarray(1 / (1 + np.exp(-2.0 * rng.standard_t(3, size=n))), dtype=np.float64)

    ref = NumericReference.from_profile("score", numeric_profile(scores(10_000)))
    det = ScoreDrift(ref, gaussian_threshold(threshold(budget * 1e-6, PER_NUMERIC * 9, BLOCK)))
    assert det._logit
    found = _alarms(det, scores(1_000_000).reshape(-1, 1))
    assert len(found) <= budget, found[:10]


def test_squeezed_scores_are_a_fall_in_scale() -> None:
    rng = np.random.default_rng(13)
    ref = NumericReference.from_profile("score", numeric_profile(rng.random(10_000)))
    det = ScoreDrift(ref, gaussian_threshold(threshold(1e-6, PER_NUMERIC * 9, BLOCK)))
    p = rng.random(8192)
    p[4096:] = 0.3 + 0.4 * p[4096:]
    found = _alarms(det, p.reshape(-1, 1))
    assert found and found[0][0] > 4096 and found[0][2] == "scale"


def test_the_budget_and_the_detector_count_set_the_thresholds() -> None:
    from models.data import synthetic
    from models.workflow import TrainOptions, train
    from monitoring.config import MonitorConfig
    from monitoring.sequential_drift import calibrate

    card = train(synthetic("agrawal", rows=600, seed=1), TrainOptions(name="a", folds=2)).card
    one = calibrate(card, MonitorConfig())
    loose = calibrate(card, MonitorConfig(false_alarms_per_million=100.0))
    assert one.events - loose.events == pytest.approx(math.log(100))
    assert one.labels - one.events == pytest.approx(math.log(BLOCK))
    assert one.events - one.gaussian == pytest.approx(GAUSSIAN_SLACK)
    cats = sum(len(c.categories or []) for c in card.features if c.kind == "categorical")
    assert one.detectors >= PER_NUMERIC * 8 + cats * len(CATEGORY_RATIOS)
