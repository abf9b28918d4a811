"""Model lifecycle as a pure library: data, training, evaluation, fairness, ONNX export, registry, scorer.

Nothing here imports Faust, Kafka or Redis clients; functions take and return plain values.
"""

from __future__ import annotations

from models.errors import ModelError

__all__ = ["ModelError"]
