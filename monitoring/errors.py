"""Exception hierarchy of the ``monitoring`` package.

Every error raised on purpose by :mod:`monitoring` derives from :class:`MonitoringError`, so
the streams shell can catch one type, log ``str(err)`` and decide what to do with the batch.
Subclasses carry the context a caller needs as attributes.
"""

from __future__ import annotations

from models.errors import ConfigError


class MonitoringError(Exception):
    """Root of every error raised by :mod:`monitoring`."""


class MonitorConfigError(MonitoringError, ConfigError):
    """A monitoring setting is invalid.

    A :class:`~models.errors.ConfigError` too: one definition of a rejected option (its
    ``option`` and ``value``) for both libraries, caught as either root.
    """


class BatchError(MonitoringError):
    """A batch given to a monitor is inconsistent (length mismatch, unknown feature, ...).

    Parameters
    ----------
    message : str
        One-line description of the problem.
    version, variant : str or None
        The model version and variant the batch belonged to.
    """

    def __init__(
        self, message: str, *, version: str | None = None, variant: str | None = None
    ) -> None:
        super().__init__(message)
        self.version = version
        self.variant = variant


class SnapshotError(MonitoringError):
    """A snapshot cannot be restored (corrupt, wrong schema version, other model or features).

    Parameters
    ----------
    message : str
        One-line description of the problem.
    found : object
        The offending value found in the snapshot, when there is one.
    """

    def __init__(self, message: str, *, found: object = None) -> None:
        super().__init__(message)
        self.found = found


__all__ = ["BatchError", "MonitorConfigError", "MonitoringError", "SnapshotError"]
