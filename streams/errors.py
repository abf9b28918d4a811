"""Exception root of the ``streams`` package and its narrow subclasses."""

from __future__ import annotations


class StreamsError(Exception):
    """Root of every error raised by :mod:`streams`."""


class ServiceError(StreamsError):
    """A local service (Kafka, Redis) could not be fetched, started, reached or stopped.

    Parameters
    ----------
    service
        Which service: ``"kafka"`` or ``"redis"``.
    message
        What went wrong, said for the person who has to fix it.
    """

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


class ConfigError(StreamsError):
    """Settings or command-line arguments that cannot work together."""


class FencedError(StreamsError):
    """A write of a model's monitors was refused: another process took them over since
    this one did (a newer ownership epoch), so this one's state is stale."""


class TransactionFencedError(StreamsError):
    """A scoring producer's transactional id was taken over again and again: another worker
    of the model runs with the same worker id (``exactly_once``).

    Parameters
    ----------
    transactional_id
        The id both producers use.
    message
        What to change, said for the person who has to fix it.
    """

    def __init__(self, transactional_id: str, message: str) -> None:
        super().__init__(message)
        self.transactional_id = transactional_id


__all__ = ["ConfigError", "FencedError", "ServiceError", "StreamsError", "TransactionFencedError"]
