"""What health and metrics say of one sink: :class:`SinkStatus`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.sinks.transports import DeliveryError


@dataclass
class SinkStatus:
    """What health and metrics say of one sink (mutated on its runner's task only)."""

    name: str
    type: str
    failing_after: int
    delivered: int = 0
    failed_attempts: int = 0
    dropped: int = 0
    resolved: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_success_at: float | None = None
    last_failure_at: float | None = None
    backlog: int | None = None  # entries not yet acknowledged by the sink's group

    @property
    def failing(self) -> bool:
        """Whether the last ``failing_after`` attempts (or more) all failed."""
        return self.consecutive_failures >= self.failing_after

    def success(self, now: float) -> None:
        """Note an attempt the receiver accepted."""
        self.consecutive_failures = 0
        self.last_success_at = now

    def failure(self, error: DeliveryError, now: float) -> None:
        """Note an attempt that failed."""
        self.failed_attempts += 1
        self.consecutive_failures += 1
        self.last_error = error.reason
        self.last_failure_at = now

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for ``/health`` and Redis."""
        return {
            "type": self.type,
            "status": "failing" if self.failing else "ok",
            "delivered": self.delivered,
            "failed_attempts": self.failed_attempts,
            "consecutive_failures": self.consecutive_failures,
            "dropped": self.dropped,
            "resolved": self.resolved,
            "backlog": self.backlog,
            "last_error": self.last_error,
            "last_success_at": self.last_success_at,
            "last_failure_at": self.last_failure_at,
        }


__all__ = ["SinkStatus"]
