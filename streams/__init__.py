"""The I/O shell of Driftline around the pure :mod:`models` and :mod:`monitoring` libraries.

Its subpackages are layers, and imports point down only (``tests/unit/test_layering.py``):
:mod:`~streams.cli` → :mod:`~streams.worker`, :mod:`~streams.local` →
:mod:`~streams.control`, :mod:`~streams.monitors`, :mod:`~streams.scoring`,
:mod:`~streams.ops` → :mod:`~streams.adapters` → :mod:`~streams.contracts`,
:mod:`~streams.config`, :mod:`streams.errors` (the exception root, re-exported here).
"""

from __future__ import annotations

from streams.errors import ConfigError, ServiceError, StreamsError

__all__ = ["ConfigError", "ServiceError", "StreamsError"]
