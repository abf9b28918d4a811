"""The retrainer's training window from a SQL query instead of Redis.

With ``DRIFTLINE_RETRAIN_SQL`` (and ``DRIFTLINE_RETRAIN_DB``) a retrain request trains on the
rows of that query: where labelled data usually lives, and as much of it as the query says,
rather than the last ``window_size`` labelled events kept in Redis. The query returns one column
per feature of the champion's card and its target column (more columns are ignored), oldest
rows first: the most recent part is held out for the gates, as with the Redis window. Two
named parameters are bound, for the query to use or not:

- ``:model``, the model's name;
- ``:since``, UNIX seconds: the time of the retrain request after a drift (only what was
  labelled since then should count), 0 otherwise.

For example, on PostgreSQL::

    SELECT income, region, approved FROM loans
    WHERE model = :model AND decided_at >= to_timestamp(:since) ORDER BY decided_at

Each target value must be one of the card's two classes; rows without one are left out.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from models.card import ModelCard, QueryInfo
from models.errors import DataError
from models.table import MISSING_TOKENS, Cell, Table
from streams.adapters.sql import read_query


def _missing(cell: Cell) -> bool:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return True
    return isinstance(cell, str) and cell.strip().lower() in MISSING_TOKENS


def _same(value: Cell, name: str) -> bool:
    """Whether a target cell is the class ``name`` (``1`` and ``"1.0"`` are the same class)."""
    text = value.strip() if isinstance(value, str) else str(value)
    if text == name:
        return True
    try:
        return float(text) == float(name)
    except ValueError:
        return False


def window_rows(table: Table, card: ModelCard, source: str) -> list[dict[str, Any]]:
    """The rows of ``table`` as the retrainer's window entries: ``{"f": features, "y": 0/1}``.

    Raises
    ------
    DataError
        A feature or the target is not a column, or a target value is neither class.
    """
    columns = list(table.columns)
    wanted = [f.name for f in card.features]
    if card.sensitive is not None and card.sensitive.column in columns:
        wanted.append(card.sensitive.column)
    lacking = [c for c in [*wanted, card.target] if c not in columns]
    if lacking:
        raise DataError(
            f"{source}: the window query lacks column(s) {', '.join(lacking)}; the model "
            f"{card.name} needs {', '.join([*(f.name for f in card.features), card.target])}",
            source=source,
        )
    kinds = {f.name: f.kind for f in card.features}
    at = {c: columns.index(c) for c in [*wanted, card.target]}
    negative, positive = card.classes
    rows: list[dict[str, Any]] = []
    for row in table.rows:
        label = row[at[card.target]]
        if _missing(label):
            continue
        if _same(label, positive):
            y = 1
        elif _same(label, negative):
            y = 0
        else:
            raise DataError(
                f"{source}: target {card.target!r} value {label!r} is neither class of the "
                f"model ({negative!r}, {positive!r})",
                source=source,
                column=card.target,
            )
        features: dict[str, Any] = {}
        for name in wanted:
            cell = row[at[name]]
            if cell is None or _missing(cell):
                features[name] = None
            elif kinds.get(name) == "numeric":
                try:
                    features[name] = float(cell)
                except ValueError:
                    raise DataError(
                        f"{source}: feature {name!r} is numeric, the query gives {cell!r}",
                        source=source,
                        column=name,
                    ) from None
            else:
                features[name] = cell if isinstance(cell, str) else str(cell)
        rows.append({"f": features, "y": y})
    return rows


async def read_window(
    db: str, query: str, card: ModelCard, since: float
) -> tuple[list[dict[str, Any]], QueryInfo]:
    """Run the window query (in a thread: the driver blocks) and return its entries.

    An empty result is an empty window (the request waits for data), not an error.
    """
    params = {"model": card.name, "since": since}
    table, info = await asyncio.to_thread(read_query, db, query, params, allow_empty=True)
    return window_rows(table, card, info.database), info


__all__ = ["read_window", "window_rows"]
