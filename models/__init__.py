"""Model lifecycle as a pure library.

Data, training, evaluation, fairness, ONNX export with a parity gate, registry, runtime scorer.

Nothing here imports Faust, Kafka or Redis clients; functions take and return plain values.
:mod:`models.report` renders a model's HTML report; it draws with matplotlib, so it is
imported on demand rather than here.

The usual path::

    ds = synthetic("agrawal", rows=5000, seed=1)          # or load_csv(path, target="y")
    result = train(ds, TrainOptions(name="credit", estimator="rf"))
    card = Registry("./registry").register(result.payload, result.card)
    scorer = OnnxScorer.from_registry(Registry("./registry"), "credit@champion")
    labels, probabilities = scorer.predict_batch(rows)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from models.card import ModelCard
from models.errors import (
    ConfigError,
    DataError,
    ExportError,
    GateInputError,
    HistoryError,
    IntegrityError,
    InvalidInputError,
    ModelError,
    ModelNotFoundError,
    ParityError,
    RegistryError,
    UnknownFeatureError,
)

if TYPE_CHECKING:
    from models.csvio import load_csv
    from models.data import Dataset, synthetic
    from models.gate_config import GateConfig
    from models.gate_report import GateReport, GateResult
    from models.gates import run_gates
    from models.history import History
    from models.registry import LoadedModel, Registry
    from models.scorer import FixedScorer, OnnxScorer, Scorer
    from models.workflow import TrainOptions, TrainResult, train

# Loaded on first use: importing `models.card` (as `monitoring` does) must not pull in
# scikit-learn, skl2onnx and onnxruntime, a second and a half of start-up and ~150 MiB.
_LAZY = {
    "load_csv": "models.csvio",
    "Dataset": "models.data",
    "synthetic": "models.data",
    "GateConfig": "models.gate_config",
    "GateReport": "models.gate_report",
    "GateResult": "models.gate_report",
    "run_gates": "models.gates",
    "History": "models.history",
    "LoadedModel": "models.registry",
    "Registry": "models.registry",
    "FixedScorer": "models.scorer",
    "OnnxScorer": "models.scorer",
    "Scorer": "models.scorer",
    "TrainOptions": "models.workflow",
    "TrainResult": "models.workflow",
    "train": "models.workflow",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ConfigError",
    "DataError",
    "Dataset",
    "ExportError",
    "FixedScorer",
    "GateConfig",
    "GateInputError",
    "GateReport",
    "GateResult",
    "History",
    "HistoryError",
    "IntegrityError",
    "InvalidInputError",
    "LoadedModel",
    "ModelCard",
    "ModelError",
    "ModelNotFoundError",
    "OnnxScorer",
    "ParityError",
    "Registry",
    "RegistryError",
    "Scorer",
    "TrainOptions",
    "TrainResult",
    "UnknownFeatureError",
    "load_csv",
    "run_gates",
    "synthetic",
    "train",
]
