"""Synthetic datasets and the dataset checks."""

from __future__ import annotations

import numpy as np
import pytest

from models.data import AGE_BANDS, Dataset, assign_groups, check_dataset, synthetic
from models.errors import ConfigError, DataError


@pytest.mark.parametrize(
    ("kind", "n_num", "n_cat", "sensitive"),
    [("agrawal", 7, 2, "age_band"), ("sea", 3, 0, None), ("hyperplane", 10, 0, None)],
)
def test_synthetic_shapes_and_sensitive_attribute(
    kind: str, n_num: int, n_cat: int, sensitive: str | None
) -> None:
    ds = synthetic(kind, rows=300, seed=3)
    assert len(ds) == 300
    assert ds.numeric.shape == (300, n_num)
    assert ds.categorical.shape == (300, n_cat)
    assert set(np.unique(ds.y)) == {0, 1}
    assert (ds.sensitive.name if ds.sensitive else None) == sensitive
    # float32-exact, so ONNX sees the same numbers as scikit-learn
    assert np.array_equal(ds.numeric, ds.numeric.astype(np.float32).astype(np.float64))


def test_synthetic_is_deterministic_per_seed() -> None:
    a, b, c = (synthetic("agrawal", rows=200, seed=s) for s in (1, 1, 2))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


def test_agrawal_groups_follow_age_bands() -> None:
    ds = synthetic("agrawal", rows=500, seed=4)
    age = ds.numeric[:, ds.numeric_names.index("age")]
    assert ds.groups is not None
    assert set(ds.groups[age < 40].tolist()) == {"<40"}
    assert set(ds.groups[(age >= 40) & (age < 60)].tolist()) == {"40-59"}
    assert set(ds.groups[age >= 60].tolist()) == {"60+"}


def test_assign_groups_for_a_column() -> None:
    from models.card import SensitiveSpec

    spec = SensitiveSpec(name="sex", column="sex", kind="column", groups=["F", "M"])
    values = np.array(["F", None, "M", 7], dtype=object)
    assert assign_groups(spec, values).tolist() == ["F", "", "M", "7"]
    assert assign_groups(AGE_BANDS, np.array([39.9, 60.0])).tolist() == ["<40", "60+"]


@pytest.mark.parametrize(("kind", "rows"), [("mnist", 100), ("sea", 10)])
def test_bad_synthetic_options(kind: str, rows: int) -> None:
    with pytest.raises(ConfigError):
        synthetic(kind, rows=rows)


def _tiny(numeric: np.ndarray, y: np.ndarray) -> Dataset:
    return Dataset(
        source="t",
        numeric_names=tuple(f"f{i}" for i in range(numeric.shape[1])),
        categorical_names=(),
        numeric=numeric,
        categorical=np.empty((len(y), 0), dtype=object),
        y=y,
        classes=("0", "1"),
        target="y",
    )


def test_check_dataset_rejects_constant_and_all_missing_columns() -> None:
    y = np.array([0, 1] * 20)
    ok = np.arange(40, dtype=np.float64)
    with pytest.raises(DataError, match="'f1' is constant") as info:
        check_dataset(_tiny(np.column_stack([ok, np.full(40, 3.0)]), y))
    assert info.value.column == "f1"
    with pytest.raises(DataError, match="'f0' is constant"):
        check_dataset(_tiny(np.full((40, 1), np.nan), y))


def test_check_dataset_needs_both_classes() -> None:
    with pytest.raises(DataError, match="at least 10 rows of each class"):
        check_dataset(_tiny(np.arange(40, dtype=np.float64)[:, None], np.zeros(40, dtype=np.int64)))
