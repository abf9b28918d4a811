"""The plain table that CSV files and SQL queries both become, and its dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.errors import DataError, UnknownFeatureError
from models.table import Cell, Table, dataset_from_table


def _rows(n: int = 60) -> tuple[tuple[Cell, ...], ...]:
    rng = np.random.default_rng(1)
    return tuple(
        (float(rng.normal()), str(rng.choice(["a", "b"])), int(rng.random() < 0.5))
        for _ in range(n)
    )


def test_typed_cells_and_text_cells_make_the_same_dataset() -> None:
    typed = Table(("x", "c", "y"), _rows())
    text = Table(("x", "c", "y"), tuple(tuple(str(v) for v in r) for r in typed.rows))
    a = dataset_from_table(typed, target="y", source="db")
    b = dataset_from_table(text, target="y", source="db")
    assert a.fingerprint() == b.fingerprint()
    assert a.numeric_names == ("x",) and a.categorical_names == ("c",)


def test_none_and_nan_are_missing_and_rows_without_a_target_are_dropped() -> None:
    rows = list(_rows())
    rows[0] = (None, rows[0][1], rows[0][2])
    rows[1] = (math.nan, None, rows[1][2])
    rows[2] = (1.0, "a", None)
    ds = dataset_from_table(Table(("x", "c", "y"), tuple(rows)), target="y", source="db")
    assert len(ds) == 59
    assert np.isnan(ds.numeric[:2, 0]).all() and ds.categorical[1, 0] == ""


def test_the_checks_name_the_source() -> None:
    rows = _rows()
    with pytest.raises(DataError, match=r"^db: no data rows"):
        dataset_from_table(Table(("x", "y"), ()), target="y", source="db")
    with pytest.raises(UnknownFeatureError, match="unknown target column 'z'"):
        dataset_from_table(Table(("x", "c", "y"), rows), target="z", source="db")
    three = tuple((r[0], r[1], i % 3) for i, r in enumerate(rows))
    with pytest.raises(DataError, match="must be binary, found 3"):
        dataset_from_table(Table(("x", "c", "y"), three), target="y", source="db")
    with pytest.raises(DataError, match="duplicate column"):
        dataset_from_table(Table(("x", "x", "y"), rows), target="y", source="db")


def test_the_fingerprint_follows_names_values_and_order() -> None:
    t = Table(("a", "b"), ((1, "x"), (2, None)))
    assert t.canonical() == b'{"columns":["a","b"],"rows":[[1,"x"],[2,null]]}'
    assert t.sha256() != Table(("a", "c"), t.rows).sha256()
    assert t.sha256() != Table(t.columns, ((1, "x"), (2.5, None))).sha256()
