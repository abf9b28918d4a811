"""Fairness metrics against a hand-computed example, and both mitigation primitives."""

from __future__ import annotations

import numpy as np
import pytest

from models.fairness import apply_thresholds, choose_thresholds, fairness_snapshot, reweigh

# Group A: y = 1 1 1 0 0, ŷ = 1 1 0 1 0 -> selection 3/5, TPR 2/3, FPR 1/2, precision 2/3
# Group B: y = 1 1 0 0 0, ŷ = 1 0 0 0 0 -> selection 1/5, TPR 1/2, FPR 0,   precision 1
# One row without a group, which must not count anywhere.
Y = np.array([1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1])
P = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1])
G = np.array(["A"] * 5 + ["B"] * 5 + [""], dtype=object)


def test_per_group_rates_match_hand_computation() -> None:
    snap = fairness_snapshot(Y, P, G)
    assert set(snap.groups) == {"A", "B"}
    a, b = snap.groups["A"], snap.groups["B"]
    assert (a.count, b.count) == (5, 5)
    assert a.selection_rate == pytest.approx(0.6)
    assert a.tpr == pytest.approx(2 / 3)
    assert a.fpr == pytest.approx(0.5)
    assert a.precision == pytest.approx(2 / 3)
    assert a.base_rate == pytest.approx(0.6)
    assert b.selection_rate == pytest.approx(0.2)
    assert b.tpr == pytest.approx(0.5)
    assert b.fpr == pytest.approx(0.0)
    assert b.precision == pytest.approx(1.0)
    assert b.base_rate == pytest.approx(0.4)


def test_gaps_match_hand_computation() -> None:
    snap = fairness_snapshot(Y, P, G)
    assert snap.demographic_parity_difference == pytest.approx(0.4)
    # max(TPR range 2/3 - 1/2, FPR range 1/2 - 0)
    assert snap.equalized_odds_difference == pytest.approx(0.5)
    assert snap.disparate_impact_ratio == pytest.approx(1 / 3)


def test_undefined_rates_are_none_and_ignored_in_gaps() -> None:
    y = np.array([0, 0, 1, 0])
    p = np.array([1, 0, 1, 0])
    g = np.array(["A", "A", "B", "B"], dtype=object)
    snap = fairness_snapshot(y, p, g)
    assert snap.groups["A"].tpr is None  # no positives in A
    assert snap.groups["B"].precision == 1.0
    # Only FPR is defined in both groups: A 1/2, B 0.
    assert snap.equalized_odds_difference == pytest.approx(0.5)


def test_disparate_impact_is_none_when_nobody_is_selected() -> None:
    snap = fairness_snapshot(np.array([1, 0]), np.array([0, 0]), np.array(["A", "B"], dtype=object))
    assert snap.disparate_impact_ratio is None
    assert snap.demographic_parity_difference == 0.0


def test_reweigh_makes_label_independent_of_group() -> None:
    rng = np.random.default_rng(0)
    g = rng.choice(np.array(["A", "B", "C"], dtype=object), 3000, p=[0.5, 0.3, 0.2])
    base = np.select([g == "A", g == "B"], [0.7, 0.3], 0.1)
    y = (rng.random(3000) < base).astype(np.int64)
    w = reweigh(y, g)
    overall = y.mean()
    for group in ("A", "B", "C"):
        m = g == group
        weighted_rate = (w[m] * y[m]).sum() / w[m].sum()
        assert weighted_rate == pytest.approx(overall)
        # Total weight of each group is preserved.
        assert w[m].sum() == pytest.approx(m.sum())


def test_reweigh_leaves_rows_without_group_at_one() -> None:
    w = reweigh(np.array([1, 0, 1, 0]), np.array(["A", "A", "", "B"], dtype=object))
    assert w[2] == 1.0


def test_choose_thresholds_equalises_tpr() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    g = rng.choice(np.array(["A", "B"], dtype=object), n)
    y = (rng.random(n) < 0.5).astype(np.int64)
    # Group B's scores are shifted down: at 0.5 its TPR is far below A's.
    shift = np.where(g == "B", -0.2, 0.0)
    p = np.clip(0.35 + 0.3 * y + shift + rng.normal(0, 0.1, n), 0, 1)
    before = fairness_snapshot(y, (p > 0.5).astype(np.int64), g)
    gap_before = abs(before.groups["A"].tpr - before.groups["B"].tpr)  # type: ignore[operator]
    thr = choose_thresholds(p, y, g, "tpr")
    after = fairness_snapshot(y, apply_thresholds(p, g, thr), g)
    gap_after = abs(after.groups["A"].tpr - after.groups["B"].tpr)  # type: ignore[operator]
    assert gap_before > 0.4
    assert gap_after < 0.02
    assert thr["B"] < thr["A"]


def test_choose_thresholds_equalises_selection_rate() -> None:
    rng = np.random.default_rng(2)
    g = rng.choice(np.array(["A", "B"], dtype=object), 2000)
    p = np.clip(rng.normal(np.where(g == "A", 0.6, 0.4), 0.15), 0, 1)
    y = (p > 0.5).astype(np.int64)
    thr = choose_thresholds(p, y, g, "selection_rate")
    after = fairness_snapshot(y, apply_thresholds(p, g, thr), g)
    assert after.demographic_parity_difference < 0.02


def test_apply_thresholds_uses_default_for_unknown_and_missing_groups() -> None:
    p = np.array([0.4, 0.4, 0.4, 0.6])
    g = np.array(["A", "Z", "", "A"], dtype=object)
    labels = apply_thresholds(p, g, {"A": 0.3}, default=0.5)
    assert labels.tolist() == [1, 0, 0, 1]
    assert apply_thresholds(p, None, {"A": 0.3}).tolist() == [0, 0, 0, 1]
