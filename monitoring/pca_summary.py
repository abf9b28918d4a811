"""The multivariate detector's summary of some events: a few sums that merge by adding.

Kept apart from :mod:`monitoring.multivariate` (which makes and reads it) so that the batch
summaries (:mod:`monitoring.summary`) carry it without importing the detectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReconstructionBlock:
    """What the multivariate detector needs of some events; blocks merge by adding.

    ``summary`` is :meth:`Reconstruction.summarise` of the errors (the standardised sums of
    their normal scores and of the squares, and their counts); ``error`` the sum of the errors
    and ``columns`` each column's sum of squared residuals, for the finding's details.

    Examples
    --------
    >>> a = ReconstructionBlock(3, (0.5, 3.0, 1.0, 3.0), 2.5, (1.0, 1.5))
    >>> b = ReconstructionBlock.from_json(a.to_json())
    >>> a.merge(b).events, a.merge(b).columns
    (6, (2.0, 3.0))
    """

    events: int
    summary: tuple[float, float, float, float]
    error: float
    columns: tuple[float, ...]

    @classmethod
    def empty(cls, columns: int) -> ReconstructionBlock:
        """No events."""
        return cls(0, (0.0, 0.0, 0.0, 0.0), 0.0, (0.0,) * columns)

    def merge(self, other: ReconstructionBlock) -> ReconstructionBlock:
        """The block of both blocks' events."""
        s = tuple(a + b for a, b in zip(self.summary, other.summary, strict=True))
        cols = tuple(a + b for a, b in zip(self.columns, other.columns, strict=True))
        return ReconstructionBlock(
            self.events + other.events,
            (s[0], s[1], s[2], s[3]),
            self.error + other.error,
            cols,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "events": self.events,
            "summary": list(self.summary),
            "error": self.error,
            "columns": list(self.columns),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReconstructionBlock:
        """Inverse of :meth:`to_json`."""
        s = [float(v) for v in data["summary"]]
        return cls(
            int(data["events"]),
            (s[0], s[1], s[2], s[3]),
            float(data["error"]),
            tuple(float(v) for v in data["columns"]),
        )


__all__ = ["ReconstructionBlock"]
