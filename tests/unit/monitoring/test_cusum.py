"""CUSUM banks: known answers, the threshold's budget, exact JSON snapshots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from monitoring.cusum import (
    GAUSSIAN_SLACK,
    BernoulliCusum,
    GaussianCusum,
    average_run_length,
    gaussian_threshold,
    threshold,
)
from monitoring.errors import SnapshotError


def test_a_constant_shift_alarms_on_the_block_the_arithmetic_says() -> None:
    # delta 0.5 against a mean of exactly 0.5: each block of 256 adds 0.5 * 128 - 256 / 8 = 32.
    bank = GaussianCusum([0.5], guard=[0.0], h=100.0)
    alarms = [bool(bank.update(np.array([128.0]), np.array([256]))[0]) for _ in range(6)]
    assert alarms == [False, False, False, True, False, False]


def test_the_guard_widens_the_allowance_by_its_share() -> None:
    plain = GaussianCusum([0.5], guard=[0.0], h=1e9)
    guarded = GaussianCusum([0.5], guard=[0.1], h=1e9)
    for bank in (plain, guarded):
        bank.update(np.array([128.0]), np.array([256]))
    assert plain.stats[0, 0] - guarded.stats[0, 0] == pytest.approx(256 * 0.5 * 0.1)


def test_a_fall_is_found_by_the_negative_alternative_only() -> None:
    bank = GaussianCusum([-0.25, 0.25], guard=[0.0], h=5.0)
    hit = bank.update(np.array([-64.0]), np.array([256]))
    assert hit.tolist() == [True] and bank.winner(0) == 0


def test_bernoulli_llr_is_the_binomial_log_likelihood_ratio() -> None:
    bank = BernoulliCusum([0.2], ratios=[4.0], h=1e9)
    bank.update(np.array([50]), np.array([100]))
    q = 4 * 0.2 / (0.8 + 4 * 0.2)
    expected = 50 * math.log(q / 0.2) + 50 * math.log((1 - q) / 0.8)
    assert bank.stats[0, 0] == pytest.approx(expected)


def test_the_threshold_spreads_the_budget_over_detectors_and_block_size() -> None:
    assert threshold(1e-6, 1) == pytest.approx(math.log(1e6))
    assert threshold(1e-6, 100) - threshold(1e-6, 1) == pytest.approx(math.log(100))
    assert threshold(1e-6, 100, 256) == pytest.approx(math.log(100 / 256e-6))


def test_the_markov_chain_run_length_is_the_simulated_one() -> None:
    # 4,000 CUSUMs with no change, Gaussian increments of divergence 1.65, threshold 4.
    rng = np.random.default_rng(5)
    kl, h, runs = 1.65, 4.0, 4_000
    stat, ran, alarmed = np.zeros(runs), np.zeros(runs), np.zeros(runs, dtype=bool)
    while not alarmed.all():
        step = rng.normal(-kl, math.sqrt(2 * kl), size=runs)
        stat = np.where(alarmed, stat, np.maximum(stat + step, 0.0))
        ran += ~alarmed
        alarmed |= stat >= h
    assert ran.mean() == pytest.approx(average_run_length(h, kl), rel=0.05)


@pytest.mark.parametrize("h", [6.0, 12.0, 18.0])
def test_gaussian_cusums_wait_longer_than_lordens_bound_by_the_slack(h: float) -> None:
    # every block divergence: from a shift of 0.01 standard deviations to 0.4, in 256 events
    for kl in np.geomspace(0.01, 20.0, 40):
        assert math.log(average_run_length(h, float(kl))) - h >= GAUSSIAN_SLACK, kl
    assert gaussian_threshold(h) == pytest.approx(h - GAUSSIAN_SLACK)


@pytest.mark.parametrize("budget", [1.0, 100.0, 10_000.0])
def test_stationary_false_alarms_stay_within_the_budget(budget: float) -> None:
    # 16 Gaussian CUSUMs (8 alternatives x 2 rows) on N(0, 1) data for 1M events per row.
    shifts = [-1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0]
    h = gaussian_threshold(threshold(budget * 1e-6, 2 * len(shifts), 256))
    bank = GaussianCusum(shifts, guard=[0.0, 0.0], h=h)
    rng = np.random.default_rng(7)
    blocks = 1_000_000 // 256
    sums = rng.normal(scale=16.0, size=(blocks, 2))  # the sum of 256 standard normals
    counts = np.full(2, 256)
    alarms = sum(int(bank.update(row, counts).sum()) for row in sums)
    assert alarms <= budget


def test_snapshots_round_trip_exactly_through_json() -> None:
    rng = np.random.default_rng(3)
    a = GaussianCusum([-0.25, 0.25], guard=[0.01, 0.02, 0.0], h=9.0)
    b = GaussianCusum([-0.25, 0.25], guard=[0.01, 0.02, 0.0], h=9.0)
    feed = rng.normal(scale=16.0, size=(200, 3)) + 3.0
    for row in feed[:100]:
        a.update(row, np.full(3, 256))
    b.restore(json.loads(json.dumps(a.snapshot())))
    for row in feed[100:]:
        assert a.update(row, np.full(3, 256)).tolist() == b.update(row, np.full(3, 256)).tolist()
    assert np.array_equal(a.stats, b.stats) and a.updates == b.updates == 200


def test_a_snapshot_of_another_shape_is_refused() -> None:
    a = GaussianCusum([0.5], guard=[0.0, 0.0], h=9.0)
    with pytest.raises(SnapshotError):
        a.restore(GaussianCusum([0.5], guard=[0.0], h=9.0).snapshot())
