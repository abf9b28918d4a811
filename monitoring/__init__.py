"""Monitoring as a pure library: River drift detectors, online metrics, alert policy.

Nothing here imports Faust, Kafka or Redis clients; functions take and return plain values.
"""

from __future__ import annotations

from monitoring.errors import MonitoringError

__all__ = ["MonitoringError"]
