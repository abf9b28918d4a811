"""Load a user's CSV file into a :class:`~models.data.Dataset`.

Column kinds are inferred: a column whose every non-missing cell parses as a finite number is
numeric, anything else is categorical. Empty cells and the usual missing markers (``NA``,
``null``, ``?``, ...) are missing values. Rows without a target value are dropped.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.card import SensitiveSpec
from models.data import MISSING_CATEGORY, Dataset, as_float32_exact, check_dataset
from models.errors import DataError, UnknownFeatureError

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})
MAX_SENSITIVE_GROUPS = 20


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_TOKENS


def _parse_number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    src = str(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            sample = fh.read(8192)
            fh.seek(0)
            try:
                dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
                    sample, delimiters=",;\t|"
                )
            except csv.Error:
                dialect = csv.excel
            reader = csv.reader(fh, dialect)
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise DataError(f"{src}: the CSV file is empty", source=src)
            header = [h.strip() for h in header]
            rows: list[list[str]] = []
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{src}: line {reader.line_num} has {len(row)} fields, "
                        f"the header has {len(header)}",
                        source=src,
                    )
                rows.append([c.strip() for c in row])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataError(f"{src}: cannot read CSV: {reason}", source=src) from exc
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{src}: duplicate column name(s): {', '.join(dupes)}", source=src)
    if not rows:
        raise DataError(f"{src}: the CSV file has a header but no data rows", source=src)
    return header, rows


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
    numbers = [_parse_number(v) for v in distinct]
    if all(n is not None for n in numbers):
        distinct.sort(key=float)
    return distinct[0], distinct[1]


def load_csv(
    path: str | Path,
    *,
    target: str,
    sensitive: str | None = None,
    features: Sequence[str] | None = None,
) -> Dataset:
    """Read a CSV file with a header row into a dataset.

    Parameters
    ----------
    path : str or Path
        The file (comma, semicolon, tab or pipe separated; UTF-8).
    target : str
        The binary target column. Its larger value (numerically, else lexically) is the
        positive class.
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
        Unreadable or empty file, ragged rows, non-binary target, constant column.
    UnknownFeatureError
        A named column is not in the header.

    Examples
    --------
    >>> import tempfile, os
    >>> rng = np.random.default_rng(0)
    >>> lines = ["x,colour,y"] + [
    ...     f"{rng.normal():.3f},{rng.choice(['red', 'blue'])},{int(rng.random() < 0.4)}"
    ...     for _ in range(60)
    ... ]
    >>> with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
    ...     _ = fh.write("\\n".join(lines))
    >>> ds = load_csv(fh.name, target="y")
    >>> ds.numeric_names, ds.categorical_names, ds.classes
    (('x',), ('colour',), ('0', '1'))
    >>> os.unlink(fh.name)
    """
    src = str(path)
    header, rows = _read_rows(Path(path))
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
    kept = [r for r in rows if not _is_missing(r[t_idx])]
    if not kept:
        raise DataError(f"{src}: target {target!r} has no values", source=src, column=target)
    classes = _target_classes([r[t_idx] for r in kept], target, src)
    y = np.array([classes.index(r[t_idx]) for r in kept], dtype=np.int64)

    numeric_names: list[str] = []
    categorical_names: list[str] = []
    num_cols: list[list[float]] = []
    cat_cols: list[list[str]] = []
    for name in chosen:
        j = header.index(name)
        cells = [r[j] for r in kept]
        parsed = [None if _is_missing(c) else _parse_number(c) for c in cells]
        if all(p is not None or _is_missing(c) for p, c in zip(parsed, cells, strict=True)):
            numeric_names.append(name)
            num_cols.append([math.nan if p is None else p for p in parsed])
        else:
            categorical_names.append(name)
            cat_cols.append([MISSING_CATEGORY if _is_missing(c) else c for c in cells])

    n = len(kept)
    numeric = np.array(num_cols, dtype=np.float64).T.reshape(n, len(numeric_names))
    categorical = np.array(cat_cols, dtype=object).T.reshape(n, len(categorical_names))
    spec = None
    groups = None
    if s_idx is not None and sensitive is not None:
        raw = [r[s_idx] for r in kept]
        groups = np.array([MISSING_CATEGORY if _is_missing(v) else v for v in raw], dtype=object)
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


__all__ = ["MISSING_TOKENS", "load_csv"]
