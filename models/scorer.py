"""Runtime scoring: the :class:`Scorer` contract and its ONNX Runtime implementation.

A scorer takes raw feature rows (``dict`` name → value, as they arrive in events) and returns
predicted labels and class probabilities. ``None`` (or NaN) is a missing value that the
exported pipeline imputes; a missing key, a string in a numeric feature or a non-finite
number is an input error.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from models.card import ModelCard
from models.data import MISSING_CATEGORY, assign_groups
from models.errors import IntegrityError, InvalidInputError, ModelError
from models.export import make_session, onnx_feed
from models.fairness import apply_thresholds
from models.registry import Registry

Rows = Sequence[Mapping[str, object]]
Prediction = tuple[NDArray[np.int64], NDArray[np.float32]]
#: The numeric features of a batch as a scorer read them: name -> column (NaN = missing).
NumericColumns = dict[str, NDArray[np.float64]]
_NUMERIC_TYPES = frozenset({int, float, type(None)})
_CATEGORY_TYPES = frozenset({str, int, type(None)})


@runtime_checkable
class Scorer(Protocol):
    """Scores batches of raw feature rows for one model version."""

    @property
    def name(self) -> str:
        """Model name."""
        ...

    @property
    def version(self) -> str:
        """Model version."""
        ...

    def predict_batch(self, rows: Rows) -> Prediction:
        """Labels (int64, shape (n,)) and class probabilities (float32, shape (n, 2))."""
        ...


def predict_with_numeric(
    scorer: Scorer, rows: Rows
) -> tuple[NDArray[np.int64], NDArray[np.float32], NumericColumns | None]:
    """``scorer.predict_batch(rows)`` and, when the scorer can give them (an
    :class:`OnnxScorer`), the numeric features as it read them; None otherwise."""
    if isinstance(scorer, OnnxScorer):
        return scorer.predict_numeric(rows)
    labels, proba = scorer.predict_batch(rows)
    return labels, proba, None


def _numeric_cell(value: object) -> tuple[float, str | None]:
    if value is None:
        return math.nan, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan, f"expected a number, got {type(value).__name__} {value!r:.40}"
    try:
        number = float(value)
    except OverflowError:
        return math.nan, f"number out of range: {value!r:.40}"
    if math.isinf(number):
        return math.nan, f"non-finite number {value!r}"
    return number, None


def _category_cell(value: object) -> tuple[str, str | None]:
    if value is None:
        return MISSING_CATEGORY, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), None
    return MISSING_CATEGORY, f"expected a string, got {type(value).__name__} {value!r:.40}"


def _row_getter(names: Sequence[str]) -> Callable[[Mapping[str, object]], tuple[object, ...]]:
    """A C-level ``row -> tuple of values`` for ``names`` (raises KeyError on a missing one)."""
    if not names:
        return lambda _row: ()
    getter = itemgetter(*names)
    if len(names) == 1:
        return lambda row: (getter(row),)
    return getter


class OnnxScorer:
    """Scores rows with a verified ONNX model and the thresholds of its card.

    Parameters
    ----------
    card : ModelCard
        The version's card (feature schema, ONNX interface, thresholds).
    payload : bytes
        The ONNX model; its sha256 must match ``card.onnx.sha256``.
    threads : int
        Intra-op threads of the onnxruntime session (default 1: workers scale by process).

    Raises
    ------
    IntegrityError
        ``payload`` does not match the card.

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.workflow import TrainOptions, train
    >>> result = train(synthetic("sea", rows=400, seed=3), TrainOptions(name="sea", folds=3))
    >>> scorer = OnnxScorer(result.card, result.payload)
    >>> rows = [{"x0": 9.0, "x1": 9.0, "x2": 1.0}, {"x0": 0.5, "x1": None, "x2": 3.0}]
    >>> labels, proba = scorer.predict_batch(rows)
    >>> labels.tolist(), proba.shape
    ([1, 0], (2, 2))
    >>> scorer.predict_batch([{"x0": "high", "x1": 1.0, "x2": 1.0}])
    Traceback (most recent call last):
    ...
    models.errors.InvalidInputError: row 0: feature 'x0': expected a number, got str 'high'
    """

    def __init__(self, card: ModelCard, payload: bytes, *, threads: int = 1) -> None:
        actual = hashlib.sha256(payload).hexdigest()
        if actual != card.onnx.sha256:
            raise IntegrityError(
                name=card.name, version=card.version, expected=card.onnx.sha256, actual=actual
            )
        self.card = card
        self._session = make_session(payload, threads)
        expected = {i.name for i in card.onnx.inputs}
        got = {i.name for i in self._session.get_inputs()}
        if expected != got:
            raise ModelError(
                f"model {card.name}@{card.version}: ONNX inputs {got} != card {expected}"
            )
        self._num = [f.name for f in card.features if f.kind == "numeric"]
        self._cat = [f.name for f in card.features if f.kind == "categorical"]
        self._num_getter = _row_getter(self._num)
        self._cat_getter = _row_getter(self._cat)
        self._thresholds = card.thresholds
        self._outputs = [card.onnx.output_probability]

    @classmethod
    def from_registry(cls, registry: Registry, ref: str, *, threads: int = 1) -> OnnxScorer:
        """Load ``NAME[@VERSION|@ALIAS]`` from ``registry`` (sha256-verified)."""
        loaded = registry.load(ref)
        return cls(loaded.card, loaded.payload, threads=threads)

    @property
    def name(self) -> str:
        """Model name."""
        return self.card.name

    @property
    def version(self) -> str:
        """Model version."""
        return self.card.version

    @property
    def classes(self) -> tuple[str, str]:
        """Names of class 0 and class 1 (the positive class)."""
        return self.card.classes[0], self.card.classes[1]

    def encode(self, rows: Rows) -> tuple[NDArray[np.float64], NDArray[np.generic]]:
        """Validate rows and pack them into the numeric and categorical blocks.

        Raises
        ------
        InvalidInputError
            With the reason for every bad row.
        """
        n = len(rows)
        try:
            num_rows = list(map(self._num_getter, rows))
            cat_rows = list(map(self._cat_getter, rows))
        except (KeyError, TypeError):
            return self._encode_checked(rows)
        num_types = set(map(type, chain.from_iterable(num_rows)))
        cat_types = set(map(type, chain.from_iterable(cat_rows)))
        if not (num_types <= _NUMERIC_TYPES and cat_types <= _CATEGORY_TYPES):
            return self._encode_checked(rows)
        try:
            num = np.array(num_rows, dtype=np.float64).reshape(n, len(self._num))
        except OverflowError:
            return self._encode_checked(rows)
        if np.isinf(num).any():
            return self._encode_checked(rows)
        if cat_types <= {str}:
            cat = np.array(cat_rows, dtype=str).reshape(n, len(self._cat))
        else:
            cells = [[_category_cell(v)[0] for v in row] for row in cat_rows]
            cat = np.array(cells, dtype=str).reshape(n, len(self._cat))
        return num, cat

    def _encode_checked(self, rows: Rows) -> tuple[NDArray[np.float64], NDArray[np.generic]]:
        n = len(rows)
        num = np.full((n, len(self._num)), np.nan, dtype=np.float64)
        cat = np.full((n, len(self._cat)), MISSING_CATEGORY, dtype=object)
        errors: dict[int, str] = {}
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                errors[i] = f"expected an object of features, got {type(row).__name__}"
                continue
            absent = [f for f in (*self._num, *self._cat) if f not in row]
            if absent:
                errors[i] = (
                    f"missing feature(s): {', '.join(absent)} (send null for a missing value)"
                )
                continue
            for j, f in enumerate(self._num):
                num[i, j], err = _numeric_cell(row[f])
                if err:
                    errors.setdefault(i, f"feature {f!r}: {err}")
            for j, f in enumerate(self._cat):
                cat[i, j], err = _category_cell(row[f])
                if err:
                    errors.setdefault(i, f"feature {f!r}: {err}")
        if errors:
            raise InvalidInputError(errors)
        return num, cat

    def _groups(self, rows: Rows, num: NDArray[np.float64]) -> NDArray[np.object_] | None:
        spec = self.card.sensitive
        if spec is None or not self._thresholds.per_group:
            return None
        if spec.kind == "bands" and spec.column in self._num:
            return assign_groups(spec, num[:, self._num.index(spec.column)])
        raw = np.empty(len(rows), dtype=object)
        raw[:] = [r.get(spec.column) for r in rows]
        return assign_groups(spec, raw)

    def predict_batch(self, rows: Rows) -> Prediction:
        """Labels and class probabilities for a batch of raw rows, in one ONNX call.

        Labels apply the card's thresholds: ``p1 > threshold(group)``, the default
        threshold for rows whose group is missing or unknown.
        """
        labels, proba, _ = self.predict_numeric(rows)
        return labels, proba

    def predict_numeric(
        self, rows: Rows
    ) -> tuple[NDArray[np.int64], NDArray[np.float32], NumericColumns]:
        """:meth:`predict_batch`, plus the numeric features as they were read for the model.

        The columns are views of the block the model was fed, so that a caller who needs
        them too (the monitors) does not read every row's features a second time.
        """
        if len(rows) == 0:
            empty = np.zeros(0, dtype=np.float64)
            columns = {name: empty for name in self._num}
            return np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.float32), columns
        num, cat = self.encode(rows)
        (proba,) = self._session.run(self._outputs, onnx_feed(num, cat, self.card.onnx.inputs))
        labels = apply_thresholds(
            proba[:, 1],
            self._groups(rows, num),
            self._thresholds.per_group,
            self._thresholds.default,
        )
        columns = {name: num[:, j] for j, name in enumerate(self._num)}
        return labels, proba.astype(np.float32, copy=False), columns


class FixedScorer:
    """A scorer that returns the same positive-class probability for every row (for tests).

    Examples
    --------
    >>> labels, proba = FixedScorer(0.8).predict_batch([{}, {"a": 1}])
    >>> labels.tolist(), proba[0].tolist()
    ([1, 1], [0.20000000298023224, 0.800000011920929])
    >>> isinstance(FixedScorer(0.1), Scorer)
    True
    """

    def __init__(self, p_positive: float, *, name: str = "fixed", version: str = "0") -> None:
        self._p = p_positive
        self._name = name
        self._version = version

    @property
    def name(self) -> str:
        """Model name."""
        return self._name

    @property
    def version(self) -> str:
        """Model version."""
        return self._version

    def predict_batch(self, rows: Rows) -> Prediction:
        """Constant probabilities; label 1 when the probability exceeds 0.5."""
        proba = np.tile(np.array([1 - self._p, self._p], dtype=np.float32), (len(rows), 1))
        return (proba[:, 1] > 0.5).astype(np.int64), proba


__all__ = [
    "FixedScorer",
    "NumericColumns",
    "OnnxScorer",
    "Prediction",
    "Rows",
    "Scorer",
    "predict_with_numeric",
]
