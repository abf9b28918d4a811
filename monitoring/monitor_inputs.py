"""A producer's batch as the arrays the monitors read: feature columns and sensitive groups.

:class:`monitoring.model_monitor.ModelMonitor` takes features as mappings of name to values,
as the scoring worker decodes them; the monitors read one float matrix and one object column
per categorical feature, in the card's order (:func:`feature_columns`). The sensitive group of
each event comes from a feature, an extra column or the event's context
(:func:`sensitive_groups`), and the fairness counts index groups by integer code
(:class:`GroupCodes`). A labelled batch is checked and flattened by :func:`labelled_columns`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.card import SensitiveSpec
from models.data import assign_groups
from monitoring.errors import BatchError


def feature_columns(
    numeric: Mapping[str, NDArray[np.float64]],
    categorical: Mapping[str, NDArray[np.object_]],
    numeric_names: Sequence[str],
    categorical_names: Sequence[str],
    n: int,
    details: Mapping[str, str],
) -> tuple[NDArray[np.float64], list[NDArray[np.object_]]]:
    """The numeric features as one column-major matrix and the categorical ones as columns.

    A feature absent from the mappings is all missing (NaN, None).

    Raises
    ------
    BatchError
        A feature with other than ``n`` values (``details`` go into the error).

    Examples
    --------
    >>> matrix, cats = feature_columns(
    ...     {"x": np.array([1.0, 2.0])}, {}, ["x", "y"], ["c"], 2, {"variant": "champion"}
    ... )
    >>> matrix.tolist(), [c.tolist() for c in cats]
    ([[1.0, nan], [2.0, nan]], [[None, None]])
    """
    matrix = np.empty((n, len(numeric_names)), dtype=np.float64, order="F")
    for j, name in enumerate(numeric_names):
        col = numeric.get(name)
        if col is None:
            matrix[:, j] = np.nan
            continue
        if len(col) != n:
            raise BatchError(f"feature {name!r} has {len(col)} values for {n} scores", **details)
        matrix[:, j] = col
    cats: list[NDArray[np.object_]] = []
    for name in categorical_names:
        ccol = categorical.get(name)
        if ccol is None:
            ccol = np.full(n, None, dtype=object)
        elif len(ccol) != n:
            raise BatchError(f"feature {name!r} has {len(ccol)} values for {n} scores", **details)
        cats.append(np.asarray(ccol, dtype=object))
    return matrix, cats


def labelled_columns(
    y_true: NDArray[np.int64],
    y_pred: NDArray[np.int64],
    scores: NDArray[np.floating],
    sizes: Sequence[int | None],
    details: Mapping[str, str],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """True and predicted labels and scores as flat arrays, checked.

    ``sizes``: the lengths of the batch's other columns (None for one not given).

    Raises
    ------
    BatchError
        Columns of different lengths, or labels other than 0/1.
    """
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    yp = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not y.shape == yp.shape == p.shape or any(n not in (None, y.size) for n in sizes):
        raise BatchError("y_true, y_pred, scores, groups and slices differ in length", **details)
    if ((y != 0) & (y != 1)).any() or ((yp != 0) & (yp != 1)).any():
        raise BatchError("labels must be 0 or 1", **details)
    return y, yp, p


def sensitive_groups(
    spec: SensitiveSpec,
    numeric: Mapping[str, NDArray[np.float64]],
    categorical: Mapping[str, NDArray[np.object_]],
    context: Sequence[Mapping[str, Any] | None] | None = None,
) -> NDArray[np.object_]:
    """Sensitive group of each row (``""`` when unknown).

    The sensitive column may be a feature, an extra column of the mappings, or an attribute of
    each event's ``context`` (attributes the model never reads). When it is absent every row's
    group is ``""``.

    Examples
    --------
    >>> from models.data import AGE_BANDS
    >>> sensitive_groups(AGE_BANDS, {}, {}, [{"age": 25}, None, {"age": 64}]).tolist()
    ['<40', '', '60+']
    """
    values: NDArray[Any] | None = None
    if spec.column in numeric:
        values = np.asarray(numeric[spec.column])
    elif spec.column in categorical:
        values = np.asarray(categorical[spec.column], dtype=object)
    elif context is not None:
        col = spec.column
        values = np.array([c.get(col) if c else None for c in context], dtype=object)
    if values is None:
        n = next((len(v) for v in (*numeric.values(), *categorical.values())), 0)
        return np.full(n, "", dtype=object)
    if spec.kind == "bands" and values.dtype == object:
        values = np.array([np.nan if v is None else v for v in values.tolist()], dtype=float)
    return assign_groups(spec, values)


class GroupCodes:
    """Sensitive group names in code order; a name first seen in a batch gets the next code.

    Parameters
    ----------
    names : iterable of str
        The groups known so far (the card's, or a snapshot's), codes 0, 1, ...

    Examples
    --------
    >>> codes = GroupCodes(["<40", "40-59"])
    >>> codes.encode(np.array(["40-59", "", None, "60+"], dtype=object), 4).tolist()
    [1, -1, -1, 2]
    >>> codes.names
    ['<40', '40-59', '60+']
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)
        self._index = {g: i for i, g in enumerate(self.names)}

    def encode(self, groups: NDArray[np.object_] | None, n: int) -> NDArray[np.int64]:
        """Code of each of ``n`` events' groups, -1 when unknown (all -1 when None)."""
        if groups is None:
            return np.full(n, -1, dtype=np.int64)
        index = self._index
        out = np.empty(n, dtype=np.int64)
        for i, g in enumerate(groups.tolist()):
            if g is None or g == "":
                out[i] = -1
                continue
            code = index.get(g)
            if code is None:
                code = index[str(g)] = len(self.names)
                self.names.append(str(g))
            out[i] = code
        return out


__all__ = ["GroupCodes", "feature_columns", "sensitive_groups"]
