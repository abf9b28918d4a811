"""CSV loading: kinds, missing values, and every bad input with a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.csvio import load_csv
from models.errors import DataError, UnknownFeatureError


def _write(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(n: int = 40) -> list[str]:
    return [f"{i},{'ab'[i % 2]},{i % 3},{(i * 7) % 5 > 1}" for i in range(n)]


def test_loads_numeric_categorical_and_missing(credit_csv: Path) -> None:
    ds = load_csv(credit_csv, target="decision", sensitive="sex")
    assert ds.numeric_names == ("age", "income", "debt_ratio")
    assert ds.categorical_names == ("job", "region")
    assert ds.classes == ("approved", "denied")
    assert np.isnan(ds.numeric[:, 1]).mean() == pytest.approx(0.05, abs=0.02)
    assert (ds.categorical[:, 0] == "").mean() == pytest.approx(0.03, abs=0.015)
    assert ds.groups is not None and set(ds.groups.tolist()) == {"F", "M"}
    assert ds.sensitive is not None and ds.sensitive.groups == ["F", "M"]
    assert "sex" not in ds.feature_names


def test_features_option_selects_and_may_include_sensitive(credit_csv: Path) -> None:
    ds = load_csv(credit_csv, target="decision", sensitive="sex", features=["income", "sex"])
    assert ds.feature_names == ("income", "sex")


def test_numeric_target_orders_classes_numerically(tmp_path: Path) -> None:
    body = "\n".join(f"{i},{10 if i % 3 else 9}" for i in range(60))
    ds = load_csv(_write(tmp_path, "x,y\n" + body), target="y")
    assert ds.classes == ("9", "10")
    assert ds.class_balance() == {"9": 20, "10": 40}


def test_rows_without_target_are_dropped(tmp_path: Path) -> None:
    body = "\n".join(f"{i},{i % 2}" for i in range(40)) + "\n5,\n6,NA\n"
    assert len(load_csv(_write(tmp_path, "x,y\n" + body), target="y")) == 40


def test_semicolon_separated_files_are_read(tmp_path: Path) -> None:
    body = "\n".join(f"{i};{'ab'[i % 2]};{i % 2}" for i in range(40))
    ds = load_csv(_write(tmp_path, "x;c;y\n" + body), target="y")
    assert ds.feature_names == ("x", "c")


@pytest.mark.parametrize(
    ("text", "kwargs", "error", "message"),
    [
        ("", {}, DataError, "empty"),
        ("x,y\n", {}, DataError, "no data rows"),
        ("x,y\n" + "\n".join(f"{i},1" for i in range(30)), {}, DataError, "must be binary"),
        (
            "x,y\n" + "\n".join(f"{i},{i % 3}" for i in range(30)),
            {},
            DataError,
            "found 3 class",
        ),
        ("x,y\n" + "\n".join(f"{i}," for i in range(30)), {}, DataError, "has no values"),
        ("x,y\n1,0\n2,1,3\n", {}, DataError, "line 3 has 3 fields"),
        ("x,x,y\n1,2,0\n", {}, DataError, "duplicate column"),
        ("a,b,c,y\n" + "\n".join(_rows()), {"target": "z"}, UnknownFeatureError, "unknown target"),
        ("a,b,c,y\n" + "\n".join(_rows()), {"features": ["a", "q"]}, UnknownFeatureError, "'q'"),
        ("a,b,c,y\n" + "\n".join(_rows()), {"sensitive": "s"}, UnknownFeatureError, "sensitive"),
        ("a,b,c,y\n" + "\n".join(_rows()), {"features": ["a", "y"]}, DataError, "cannot also"),
        (
            "a,k,y\n" + "\n".join(f"{i},7,{i % 2}" for i in range(40)),
            {},
            DataError,
            "'k' is constant",
        ),
        (
            "a,k,y\n" + "\n".join(f"{i},,{i % 2}" for i in range(40)),
            {},
            DataError,
            "'k' is constant",
        ),
        (
            "a,s,y\n" + "\n".join(f"{i},{i},{i % 2}" for i in range(40)),
            {"sensitive": "s"},
            DataError,
            "band it",
        ),
    ],
)
def test_bad_csv_gives_one_clear_error(
    tmp_path: Path, text: str, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    path = _write(tmp_path, text)
    args: dict[str, object] = {"target": "y"} | kwargs
    with pytest.raises(error, match=message) as info:
        load_csv(path, **args)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read CSV: No such file"):
        load_csv(tmp_path / "missing.csv", target="y")
    with pytest.raises(DataError, match="cannot read CSV"):
        load_csv(tmp_path, target="y")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage\x00\x9c" * 50)
    with pytest.raises(DataError, match="cannot read CSV"):
        load_csv(binary, target="y")
