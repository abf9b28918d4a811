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

from models.card import ModelCard
from models.csvio import load_csv
from models.data import Dataset, synthetic
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
from models.gates import GateConfig, GateReport, GateResult, run_gates
from models.history import History
from models.registry import LoadedModel, Registry
from models.scorer import FixedScorer, OnnxScorer, Scorer
from models.workflow import TrainOptions, TrainResult, train

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
