"""Windowed PSI/KS against card profiles, and the quality counts of a window."""

from __future__ import annotations

import numpy as np
import orjson

from models.card import FeatureSpec
from models.profile import categorical_profile, numeric_profile
from monitoring.windows import (
    CategoricalReference,
    CategoricalWindow,
    NumericReference,
    NumericWindow,
    psi,
)


def _ref(seed: int = 0, n: int = 4000) -> NumericReference:
    train = np.random.default_rng(seed).normal(10.0, 2.0, n)
    spec = FeatureSpec(name="x", kind="numeric", minimum=train.min(), maximum=train.max())
    return NumericReference.from_profile("x", numeric_profile(train), spec)


def test_same_distribution_passes_and_a_shift_fails() -> None:
    ref = _ref()
    rng = np.random.default_rng(1)
    same = NumericWindow([ref])
    same.add(rng.normal(10.0, 2.0, (2000, 1)))
    res = same.results()[0]
    assert res["psi"] < 0.05
    assert res["ks_pvalue"] > 0.01
    moved = NumericWindow([ref])
    moved.add(rng.normal(11.0, 2.0, (2000, 1)))
    res = moved.results()[0]
    assert res["psi"] > 0.2
    assert res["ks_pvalue"] < 1e-6
    assert 0.15 < res["ks_distance"] < 0.25  # exact KS distance of a 0.5 sigma shift: 0.197


def test_psi_read_off_the_ks_histogram_equals_direct_binning() -> None:
    ref = _ref()
    values = np.random.default_rng(3).normal(10.5, 2.5, (3000, 1))
    window = NumericWindow([ref])
    window.add(values)
    assert ref.inner_edges is not None
    direct = np.bincount(np.searchsorted(ref.inner_edges, values[:, 0], side="right"))
    assert window.psi_counts[0].tolist() == direct.tolist()


def _interpolated_ks_hist(ref: NumericReference, values: np.ndarray, bins: int = 200) -> list[int]:
    """The KS histogram by definition: F_ref(x) of every present value, binned."""
    assert ref.knots_x is not None and ref.knots_p is not None
    u = np.interp(values[~np.isnan(values)], ref.knots_x, ref.knots_p)
    return np.bincount(np.minimum(u * bins, bins - 1).astype(np.int64), minlength=bins).tolist()


def test_ks_histogram_bins_the_reference_cdf_of_every_present_value() -> None:
    rng = np.random.default_rng(9)
    ref = _ref()
    values = rng.normal(10.5, 4.0, 5000)  # a tenth of them beyond the training range
    values[::50] = np.nan
    window = NumericWindow([ref])
    for chunk in np.array_split(values, 3):
        window.add(chunk.reshape(-1, 1))
    assert window.ks_hist[0].tolist() == _interpolated_ks_hist(ref, values)
    # knots that stop short of levels 0 and 1: F_ref is flat (0.1, 0.9) beyond them
    short = NumericReference(
        "s",
        None,
        None,
        np.array([0.0, 1.0, 2.0]),
        np.array([0.1, 0.5, 0.9]),
        1.0,
        1.0,
        None,
        None,
        0.0,
        100,
    )
    x = rng.uniform(-1.0, 3.0, 2000)
    window = NumericWindow([short])
    window.add(x.reshape(-1, 1))
    assert window.ks_hist[0].tolist() == _interpolated_ks_hist(short, x)
    hist = window.ks_hist[0]
    assert hist[:20].sum() == 0 and hist[180] == np.sum(x >= 2.0) and hist[181:].sum() == 0


def test_missing_and_out_of_range_are_counted_and_excluded_from_tests() -> None:
    ref = _ref()
    x = np.random.default_rng(4).normal(10.0, 2.0, (1000, 1))
    x[:100, 0] = np.nan
    x[100:150, 0] = 1e6
    window = NumericWindow([ref])
    window.add(x)
    res = window.results()[0]
    assert res["missing_rate"] == 0.1
    assert res["out_of_range_rate"] == 50 / 900
    assert res["present"] == 900


def test_ks_is_skipped_for_features_with_tied_quantiles() -> None:
    train = np.r_[np.zeros(3000), np.random.default_rng(5).random(1000)]  # atom at zero
    ref = NumericReference.from_profile("c", numeric_profile(train))
    window = NumericWindow([ref])
    window.add(np.r_[np.zeros(1500), np.random.default_rng(6).random(500)].reshape(-1, 1))
    res = window.results()[0]
    assert res["ks_pvalue"] is None
    assert res["psi"] is not None and res["psi"] < 0.1


def test_window_snapshot_round_trips() -> None:
    window = NumericWindow([_ref(), _ref(7)])
    window.add(np.random.default_rng(8).normal(10, 2, (700, 2)))
    twin = NumericWindow([_ref(), _ref(7)])
    twin.restore(orjson.loads(orjson.dumps(window.snapshot())))
    assert twin.results() == window.results()


def test_categorical_psi_and_unseen_categories() -> None:
    train = np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200, dtype=object)
    ref = CategoricalReference.from_profile("car", categorical_profile(train))
    window = CategoricalWindow(ref)
    window.add(np.array(["a"] * 480 + ["b"] * 320 + ["c"] * 200, dtype=object))
    res = window.results()
    assert res["psi"] < 0.01 and res["out_of_range_rate"] == 0.0
    window.reset()
    window.add(np.array(["a"] * 400 + ["zz"] * 100 + [None] * 100 + [""] * 50, dtype=object))
    res = window.results()
    assert res["missing_rate"] == 150 / 650
    assert res["out_of_range_rate"] == 100 / 500
    assert res["unseen"] == ["zz"]
    assert res["psi"] > 0.2
    twin = CategoricalWindow(ref)
    twin.restore(orjson.loads(orjson.dumps(window.snapshot())))
    assert twin.results() == res


def test_psi_is_symmetric_in_its_terms_and_zero_on_equal() -> None:
    a = np.array([0.2, 0.3, 0.5])
    assert psi(a, a) == 0.0
    assert psi(a, a[::-1]) == psi(a[::-1], a)
