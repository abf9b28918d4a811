"""Exception hierarchy of the ``models`` package.

Every error raised on purpose by :mod:`models` derives from :class:`ModelError`, so callers
at the edge (CLI, scoring worker) can catch one type, print ``str(err)`` as a one-line message
and decide on an exit code or a dead-letter route. Subclasses carry the context a caller needs
(the column, the figure, the model version) as attributes.
"""

from __future__ import annotations

from collections.abc import Mapping


class ModelError(Exception):
    """Root of every error raised by :mod:`models`."""


class DataError(ModelError):
    """The training data is unusable (empty, unreadable, bad target, constant column, ...).

    Parameters
    ----------
    message : str
        One-line description of the problem.
    source : str or None
        Where the data came from (a CSV path or a dataset name).
    column : str or None
        The offending column, when there is one.
    """

    def __init__(
        self, message: str, *, source: str | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.source = source
        self.column = column


class UnknownFeatureError(DataError):
    """A requested feature, target or sensitive column does not exist in the data."""


class ConfigError(ModelError):
    """A training option is invalid (unknown estimator, dataset, mitigation, ...).

    Parameters
    ----------
    message : str
        One-line description of the problem.
    option : str
        Name of the offending option.
    value : object
        The rejected value.
    """

    def __init__(self, message: str, *, option: str, value: object) -> None:
        super().__init__(message)
        self.option = option
        self.value = value


class ExportError(ModelError):
    """The pipeline could not be converted to ONNX."""


class ParityError(ExportError):
    """The ONNX model does not reproduce scikit-learn on the holdout.

    Parameters
    ----------
    max_abs_diff : float
        Largest absolute difference between ONNX and scikit-learn probabilities.
    label_mismatches : int
        Number of holdout rows whose predicted label differs.
    tolerance : float
        The tolerance the gate enforced.
    """

    def __init__(self, max_abs_diff: float, label_mismatches: int, tolerance: float) -> None:
        super().__init__(
            f"ONNX parity gate failed: max |p_onnx - p_sklearn| = {max_abs_diff:.3g} "
            f"(tolerance {tolerance:.0e}), {label_mismatches} label mismatch(es) on the holdout"
        )
        self.max_abs_diff = max_abs_diff
        self.label_mismatches = label_mismatches
        self.tolerance = tolerance


class RegistryError(ModelError):
    """A registry operation failed (bad name, unknown version or alias, corrupt card, ...).

    Parameters
    ----------
    message : str
        One-line description of the problem.
    name : str or None
        The model name concerned.
    version : str or None
        The model version concerned.
    """

    def __init__(
        self, message: str, *, name: str | None = None, version: str | None = None
    ) -> None:
        super().__init__(message)
        self.name = name
        self.version = version


class ModelNotFoundError(RegistryError):
    """The requested model, version or alias does not exist."""


class AliasMovedError(RegistryError):
    """An alias no longer points where the caller's decision saw it: another process acted
    first, and this decision is not to be applied twice."""


class IntegrityError(RegistryError):
    """The model file does not match the sha256 recorded in its card (tampered or corrupt).

    Parameters
    ----------
    name, version : str
        The model version that failed the check.
    expected, actual : str
        The recorded and the computed sha256.
    """

    def __init__(self, *, name: str, version: str, expected: str, actual: str) -> None:
        super().__init__(
            f"model {name}@{version} failed its integrity check: model.onnx sha256 is "
            f"{actual[:12]}…, card records {expected[:12]}…; refusing to load a tampered file",
            name=name,
            version=version,
        )
        self.expected = expected
        self.actual = actual


class InvalidInputError(ModelError):
    """Rows given to a scorer do not match the model's feature schema.

    Parameters
    ----------
    row_errors : mapping of int to str
        For every bad row (index in the batch), why it was rejected. A worker can route those
        rows to a dead-letter topic and score the others again.
    """

    def __init__(self, row_errors: Mapping[int, str]) -> None:
        self.row_errors = dict(row_errors)
        first = min(self.row_errors)
        more = len(self.row_errors) - 1
        suffix = f" (and {more} more bad row(s))" if more else ""
        super().__init__(f"row {first}: {self.row_errors[first]}{suffix}")


class GateInputError(ModelError):
    """The inputs of the promotion gates are unusable (not a failing gate: a wrong call).

    Parameters
    ----------
    message : str
        One-line description of the problem.
    gate : str or None
        The gate that could not run, when one is concerned.
    version : str or None
        The model version concerned (candidate or champion).
    """

    def __init__(
        self, message: str, *, gate: str | None = None, version: str | None = None
    ) -> None:
        super().__init__(message)
        self.gate = gate
        self.version = version


class HistoryError(ModelError):
    """The history file of a model cannot be written or read, or a record is invalid.

    Parameters
    ----------
    message : str
        One-line description of the problem.
    model : str or None
        The model name concerned.
    """

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message)
        self.model = model


__all__ = [
    "ConfigError",
    "DataError",
    "ExportError",
    "GateInputError",
    "HistoryError",
    "IntegrityError",
    "InvalidInputError",
    "ModelError",
    "ModelNotFoundError",
    "ParityError",
    "RegistryError",
    "UnknownFeatureError",
]
