"""Reference profiles for drift monitoring."""

from __future__ import annotations

import numpy as np
import pytest

from models.profile import categorical_profile, numeric_profile


def test_numeric_profile_deciles_and_missing() -> None:
    values = np.concatenate([np.arange(1000, dtype=np.float64), [np.nan] * 250])
    prof = numeric_profile(values)
    assert prof.count == 1250
    assert prof.missing_rate == pytest.approx(0.2)
    assert prof.bin_fractions is not None and prof.bin_edges is not None
    assert len(prof.bin_fractions) == 10
    assert all(f == pytest.approx(0.1, abs=0.002) for f in prof.bin_fractions)
    assert prof.quantiles is not None and prof.quantiles == sorted(prof.quantiles)
    assert prof.quantiles[0] == 0 and prof.quantiles[-1] == 999
    assert prof.mean == pytest.approx(499.5)


def test_numeric_profile_of_constant_and_empty_columns() -> None:
    prof = numeric_profile(np.full(10, 3.0))
    assert prof.bin_fractions == [1.0]
    empty = numeric_profile(np.full(5, np.nan))
    assert empty.missing_rate == 1.0 and empty.quantiles is None


def test_categorical_profile() -> None:
    prof = categorical_profile(np.array(["a", "a", "b", ""], dtype=object))
    assert prof.frequencies == {"": 0.25, "a": 0.5, "b": 0.25}
    assert prof.missing_rate == 0.25
