"""Load a user's CSV file into a :class:`~models.data.Dataset`.

The file is read into a :class:`~models.table.Table` of text cells; the dataset is made from it
by :func:`~models.table.dataset_from_table`, as for a SQL query's result: the same column
kinds, missing values and checks.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from models.data import Dataset
from models.errors import DataError
from models.table import MISSING_TOKENS, Table, dataset_from_table


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
    >>> import numpy as np
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
    table = Table(tuple(header), tuple(tuple(r) for r in rows))
    return dataset_from_table(
        table, target=target, source=src, sensitive=sensitive, features=features
    )


__all__ = ["MISSING_TOKENS", "load_csv"]
