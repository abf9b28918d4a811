"""A plain table of training data (named columns, rows of plain values) and its dataset.

A CSV file (:mod:`models.csvio`) and the result of a SQL query (read by the streams shell,
which holds the database client) both arrive here as a :class:`Table`; one function,
:func:`dataset_from_table`, turns either into a checked :class:`~models.data.Dataset`, so both
sources get the same column kinds, the same missing values and the same errors.

Column kinds are inferred: a column whose every non-missing cell is a finite number (or text
that parses as one) is numeric, anything else is categorical. ``None``, NaN, empty text and
the usual missing markers (``NA``, ``null``, ``?``, ...) are missing values. Rows without a
target value are dropped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from models.card import SensitiveSpec
from models.data import MISSING_CATEGORY, Dataset, as_float32_exact, check_dataset
from models.errors import DataError, UnknownFeatureError

Cell = str | int | float | bool | None
"""A plain cell: what a CSV file (text) or a database driver (numbers, text, NULL) gives."""

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})
MAX_SENSITIVE_GROUPS = 20


@dataclass(frozen=True)
class Table:
    """Named columns and rows of plain cells, as read from a file or a query.

    Parameters
    ----------
    columns : tuple of str
        Column names, unique.
    rows : tuple of tuple of Cell
        Each row holds one cell per column.

    Examples
    --------
    >>> t = Table(("x", "y"), ((1.5, 0), (2.5, 1)))
    >>> len(t), t.sha256() == Table(("x", "y"), ((1.5, 0), (2.5, 1))).sha256()
    (2, True)
    >>> t.sha256() == Table(("x", "y"), ((2.5, 1), (1.5, 0))).sha256()
    False
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def __len__(self) -> int:
        return len(self.rows)

    def canonical(self) -> bytes:
        """The table as canonical JSON bytes: ``{"columns": [...], "rows": [[...], ...]}``.

        Equal tables (same names, same cells in the same order) give equal bytes.
        """
        return orjson.dumps({"columns": list(self.columns), "rows": [list(r) for r in self.rows]})

    def sha256(self) -> str:
        """The sha256 of :meth:`canonical`: the fingerprint of a query's result."""
        return hashlib.sha256(self.canonical()).hexdigest()


def _is_missing(cell: Cell) -> bool:
    if cell is None:
        return True
    if isinstance(cell, float):
        return math.isnan(cell)
    return isinstance(cell, str) and cell.strip().lower() in MISSING_TOKENS


def _number(cell: Cell) -> float | None:
    if isinstance(cell, bool) or cell is None:
        return None
    if isinstance(cell, int | float):
        value = float(cell)
    else:
        try:
            value = float(cell)
        except ValueError:
            return None
    return value if math.isfinite(value) else None


def _text(cell: Cell) -> str:
    return cell.strip() if isinstance(cell, str) else str(cell)


def _check_column(name: str, header: Sequence[str], role: str, src: str) -> int:
    if name not in header:
        raise UnknownFeatureError(
            f"{src}: unknown {role} column {name!r}; columns are {', '.join(header)}",
            source=src,
            column=name,
        )
    return list(header).index(name)


def _target_classes(values: list[str], target: str, src: str) -> tuple[str, str]:
    distinct = sorted(set(values))
    if len(distinct) != 2:
        shown = ", ".join(distinct[:5]) + (", ..." if len(distinct) > 5 else "")
        raise DataError(
            f"{src}: target {target!r} must be binary, found {len(distinct)} class(es): {shown}",
            source=src,
            column=target,
        )
    if all(_number(v) is not None for v in distinct):
        distinct.sort(key=float)
    return distinct[0], distinct[1]


def _sensitive(
    kept: Sequence[Sequence[Cell]], s_idx: int, sensitive: str, src: str
) -> tuple[SensitiveSpec, np.ndarray]:
    raw = [r[s_idx] for r in kept]
    groups = np.array([MISSING_CATEGORY if _is_missing(v) else _text(v) for v in raw], dtype=object)
    names = sorted({g for g in groups.tolist() if g != MISSING_CATEGORY})
    if len(names) > MAX_SENSITIVE_GROUPS:
        raise DataError(
            f"{src}: sensitive column {sensitive!r} has {len(names)} distinct values "
            f"(at most {MAX_SENSITIVE_GROUPS}); band it into groups first",
            source=src,
            column=sensitive,
        )
    if len(names) < 2:
        raise DataError(
            f"{src}: sensitive column {sensitive!r} needs at least two groups",
            source=src,
            column=sensitive,
        )
    spec = SensitiveSpec(name=sensitive, column=sensitive, kind="column", groups=names)
    return spec, groups


def dataset_from_table(
    table: Table,
    *,
    target: str,
    source: str,
    sensitive: str | None = None,
    features: Sequence[str] | None = None,
) -> Dataset:
    """Turn a table into a checked dataset.

    Parameters
    ----------
    table : Table
        The data; its column names must be unique.
    target : str
        The binary target column. Its larger value (numerically, else lexically) is the
        positive class.
    source : str
        Where the data came from (a CSV path, a redacted database URL), recorded in the card
        and said in every error.
    sensitive : str or None
        Column holding the sensitive group (at most 20 groups). It is not a model feature
        unless it is listed in ``features``.
    features : sequence of str or None
        Feature columns; default every column except target and sensitive.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        No rows, duplicate column names, non-binary target, constant column.
    UnknownFeatureError
        A named column is not in the table.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rows = tuple(
    ...     (float(rng.normal()), str(rng.choice(["red", "blue"])), int(rng.random() < 0.4))
    ...     for _ in range(60)
    ... )
    >>> ds = dataset_from_table(Table(("x", "colour", "y"), rows), target="y", source="demo")
    >>> ds.numeric_names, ds.categorical_names, ds.classes
    (('x',), ('colour',), ('0', '1'))
    """
    src = source
    header = list(table.columns)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{src}: duplicate column name(s): {', '.join(dupes)}", source=src)
    if not table.rows:
        raise DataError(f"{src}: no data rows", source=src)
    t_idx = _check_column(target, header, "target", src)
    s_idx = None if sensitive is None else _check_column(sensitive, header, "sensitive", src)
    if features is None:
        chosen = [h for h in header if h not in (target, sensitive)]
    else:
        chosen = list(dict.fromkeys(f.strip() for f in features if f.strip()))
        for name in chosen:
            _check_column(name, header, "feature", src)
        if target in chosen:
            raise DataError(f"{src}: the target {target!r} cannot also be a feature", source=src)
    if not chosen:
        raise DataError(f"{src}: no feature columns left", source=src)
    kept = [r for r in table.rows if not _is_missing(r[t_idx])]
    if not kept:
        raise DataError(f"{src}: target {target!r} has no values", source=src, column=target)
    classes = _target_classes([_text(r[t_idx]) for r in kept], target, src)
    y = np.array([classes.index(_text(r[t_idx])) for r in kept], dtype=np.int64)

    numeric_names: list[str] = []
    categorical_names: list[str] = []
    num_cols: list[list[float]] = []
    cat_cols: list[list[str]] = []
    for name in chosen:
        j = header.index(name)
        cells = [r[j] for r in kept]
        parsed = [None if _is_missing(c) else _number(c) for c in cells]
        if all(p is not None or _is_missing(c) for p, c in zip(parsed, cells, strict=True)):
            numeric_names.append(name)
            num_cols.append([math.nan if p is None else p for p in parsed])
        else:
            categorical_names.append(name)
            cat_cols.append([MISSING_CATEGORY if _is_missing(c) else _text(c) for c in cells])

    n = len(kept)
    numeric = np.array(num_cols, dtype=np.float64).T.reshape(n, len(numeric_names))
    categorical = np.array(cat_cols, dtype=object).T.reshape(n, len(categorical_names))
    spec, groups = (None, None) if s_idx is None else _sensitive(kept, s_idx, str(sensitive), src)
    ds = Dataset(
        source=src,
        numeric_names=tuple(numeric_names),
        categorical_names=tuple(categorical_names),
        numeric=as_float32_exact(numeric),
        categorical=categorical,
        y=y,
        classes=classes,
        target=target,
        sensitive=spec,
        groups=groups,
    )
    return check_dataset(ds)


__all__ = ["MAX_SENSITIVE_GROUPS", "MISSING_TOKENS", "Cell", "Table", "dataset_from_table"]
