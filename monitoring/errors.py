"""Exception root of the ``monitoring`` package."""

from __future__ import annotations


class MonitoringError(Exception):
    """Root of every error raised by :mod:`monitoring`."""


__all__ = ["MonitoringError"]
