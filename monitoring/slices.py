"""Online metrics per slice of one context attribute, over a bounded set of its values.

``MonitorConfig.slice_by`` names an attribute of the events' ``context``; each labelled event
falls in one slice: one of the ``slice_top`` most frequent values among labelled events (named
by the value), ``(other)`` for every other value, or ``(none)`` when the event has no such
attribute (no context, absent, null or ``""``). A model never has more than ``slice_top + 2``
slices, and their counts add up to its labelled events. Values are text, as
:func:`slice_values` spells them. The streams shell keeps each event's value with its
prediction in the label join, so a late label falls in the slice its event had when scored.

**Which values** get a slice of their own is :mod:`monitoring.slice_candidates`: a bounded
space-saving table of ``CANDIDATES_PER_SLICE * slice_top`` candidates, which places each event
of a batch in a count column.

**Metrics.** Per ``(version, variant)``, each slice has a cumulative and a rolling count,
accuracy and F1, counted with :class:`monitoring.metrics.GroupCounts` (rows, predicted
positives, positives, true positives per column) and a
:class:`monitoring.metrics.RollingBuffer` of the last ``rolling_window`` events. A value's
cumulative counts start when it becomes a candidate (before, and after it is replaced, its
events are in ``(other)``); each event of the rolling window keeps the *assignment id* of its
value's candidate, so a value replaced and admitted again counts its older events as
``(other)``. A shadow's labels (the champion's events scored once more) use the table but do
not count towards it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitoring.metrics import GroupCounts, RollingBuffer
from monitoring.slice_candidates import (
    CANDIDATES_PER_SLICE,
    FIRST_COL,
    MAX_VALUE_CHARS,
    NONE,
    NONE_COL,
    NONE_ID,
    OTHER,
    OTHER_COL,
    Assigned,
    SliceCounter,
    slice_values,
)


def _rates(counts: NDArray[np.int64]) -> dict[str, Any]:
    """Count, accuracy and F1 from (rows, predicted positives, positives, true positives)."""
    n, sel, pos, tp = (int(v) for v in counts)
    return {
        "count": n,
        "accuracy": None if n == 0 else (n - sel - pos + 2 * tp) / n,
        "f1": None if sel + pos == 0 else 2 * tp / (sel + pos),
    }


class _Scope:
    """Slice counts of one (version, variant): cumulative per column, rolling by id."""

    def __init__(self, window: int) -> None:
        self.cumulative = GroupCounts()
        self.rolling = RollingBuffer(window)

    def add(self, where: Assigned, y: NDArray[np.int64], y_pred: NDArray[np.int64]) -> None:
        self.cumulative.add(where.columns, y, y_pred)
        self.rolling.add(y, y_pred, np.zeros(y.shape[0], dtype=np.float64), where.ids)

    def fold(self, columns: list[int]) -> None:
        """The counts of replaced candidates go to ``(other)``."""
        counts = self.cumulative.counts
        for col in columns:
            if col < counts.shape[1]:
                counts[:, OTHER_COL] += counts[:, col]
                counts[:, col] = 0

    def summary(self, counter: SliceCounter) -> dict[str, Any]:
        width = FIRST_COL + counter.capacity
        cum = np.zeros((4, width), dtype=np.int64)
        saved = self.cumulative.counts[:, :width]
        cum[:, : saved.shape[1]] = saved
        y, y_pred, _, ids = self.rolling.ordered()
        recent = GroupCounts()
        recent.add(counter.columns_of(ids), y, y_pred)
        roll = np.zeros((4, width), dtype=np.int64)
        roll[:, : recent.counts.shape[1]] = recent.counts
        shown = {counter.values[s]: s + FIRST_COL for s in counter.ranked()}
        rest = np.ones(width, dtype=bool)  # (other): its column and the values not shown
        rest[[NONE_COL, *shown.values()]] = False
        out = {v: (cum[:, c], roll[:, c]) for v, c in shown.items() if cum[0, c] or roll[0, c]}
        out[OTHER] = (cum[:, rest].sum(axis=1), roll[:, rest].sum(axis=1))
        out[NONE] = (cum[:, NONE_COL], roll[:, NONE_COL])
        return {v: {"cumulative": _rates(c), "rolling": _rates(r)} for v, (c, r) in out.items()}

    def snapshot(self) -> dict[str, Any]:
        y, y_pred, _, ids = self.rolling.ordered()
        return {
            "cumulative": self.cumulative.snapshot(),
            "rolling": {"y": y.tolist(), "y_pred": y_pred.tolist(), "ids": ids.tolist()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.cumulative.restore(state["cumulative"])
        rolling = state["rolling"]
        y = np.asarray(rolling["y"], dtype=np.int64)
        y_pred = np.asarray(rolling["y_pred"], dtype=np.int64)
        ids = np.asarray(rolling["ids"], dtype=np.int64)
        if not y.shape == y_pred.shape == ids.shape:
            raise ValueError("slice rolling window columns differ in length")
        self.rolling.add(y, y_pred, np.zeros(y.shape[0], dtype=np.float64), ids)


class Slices:
    """Per-slice metrics of one model: the candidate table and the counts of every scope.

    Parameters
    ----------
    by : str
        The context attribute whose values are the slices.
    top : int
        Values shown as their own slice (besides ``(other)`` and ``(none)``).
    rolling_window : int
        Labelled events per scope in the rolling metrics.

    Examples
    --------
    >>> import numpy as np
    >>> slices = Slices("region", top=1, rolling_window=100)
    >>> context = [{"region": "north"}] * 6 + [{"region": "south"}] * 2 + [None]
    >>> values = slice_values(context, "region")
    >>> y = np.array([1, 0, 1, 0, 1, 0, 1, 1, 0]); y_pred = np.array([1, 0, 1, 0, 1, 1, 0, 0, 0])
    >>> slices.observe("3/champion", values, y, y_pred, count=True)
    >>> summary = slices.summary("3/champion")
    >>> list(summary["values"])
    ['north', '(other)', '(none)']
    >>> north = summary["values"]["north"]["cumulative"]
    >>> north["count"], round(north["accuracy"], 3), round(north["f1"], 3)
    (6, 0.833, 0.857)
    >>> summary["values"]["(other)"]["rolling"]["accuracy"]
    0.0
    """

    def __init__(self, by: str, top: int, rolling_window: int) -> None:
        self.by = by
        self.window = rolling_window
        self.counter = SliceCounter(top)
        self._scopes: dict[str, _Scope] = {}

    def observe(
        self,
        scope: str,
        values: Sequence[str | None] | None,
        y: NDArray[np.int64],
        y_pred: NDArray[np.int64],
        count: bool,
    ) -> None:
        """Count one labelled batch of ``scope`` (``values``: each event's slice value, as
        :func:`slice_values` gives it; None when no event had one). ``count``: the values
        count towards the table (False for a shadow's labels)."""
        n = int(y.shape[0])
        if values is None:
            where = Assigned(
                np.full(n, NONE_ID, dtype=np.int64), np.full(n, NONE_COL, dtype=np.int64), []
            )
        else:
            where = self.counter.assign(values, count)
        if where.evicted:
            for counts in self._scopes.values():
                counts.fold(where.evicted)
        target = self._scopes.get(scope)
        if target is None:
            target = self._scopes[scope] = _Scope(self.window)
        target.add(where, y, y_pred)

    def summary(self, scope: str) -> dict[str, Any]:
        """``{"by", "values": {slice: {cumulative, rolling}}}`` of ``scope``: each window's
        ``count``, ``accuracy`` and ``f1``; the shown values by guaranteed count, then
        ``(other)`` and ``(none)`` (always there, with a zero count when empty)."""
        counts = self._scopes.get(scope) or _Scope(1)
        return {"by": self.by, "values": counts.summary(self.counter)}

    def describe(self) -> dict[str, Any]:
        """The attribute, how many values are shown and tracked, and the values counted."""
        c = self.counter
        return {"by": self.by, "top": c.top, "candidates": len(c.values), "seen": c.seen}

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: ``{by, counter, scopes: {scope: {cumulative, rolling}}}``."""
        return {
            "by": self.by,
            "counter": self.counter.snapshot(),
            "scopes": {s: c.snapshot() for s, c in self._scopes.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> bool:
        """Continue from :meth:`snapshot`; False (and left empty) when the snapshot slices
        by another attribute or keeps another number of values.

        Raises
        ------
        KeyError, TypeError, ValueError
            A malformed snapshot.
        """
        saved, c = state["counter"], self.counter
        if state.get("by") != self.by or (saved["top"], saved["capacity"]) != (c.top, c.capacity):
            return False
        self.counter.restore(saved)
        for scope, counts in state["scopes"].items():
            target = self._scopes[str(scope)] = _Scope(self.window)
            target.restore(counts)
        return True


__all__ = [
    "CANDIDATES_PER_SLICE",
    "MAX_VALUE_CHARS",
    "NONE",
    "OTHER",
    "Assigned",
    "SliceCounter",
    "Slices",
    "slice_values",
]
