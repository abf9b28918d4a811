"""The I/O shell of Driftline: settings, local services, Kafka and Redis adapters, the CLI."""

from __future__ import annotations

from streams.errors import ConfigError, ServiceError, StreamsError

__all__ = ["ConfigError", "ServiceError", "StreamsError"]
