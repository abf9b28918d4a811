"""The wire contracts: every message that crosses a process boundary, as pydantic models.

Each message carries ``schema_version``; ``driftline schema`` prints their JSON Schema so that
producers in other languages can validate too. JSON on the wire is encoded with orjson.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

FeatureValue = float | int | str | bool | None


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION


class Event(_Message):
    """An event to score, produced by users to the ``events`` topic."""

    event_id: str = Field(min_length=1, max_length=256)
    features: dict[str, FeatureValue]
    entity: str | None = Field(default=None, max_length=256, description="Key for sticky A/B.")
    ts: float | None = Field(default=None, description="Event time, Unix seconds.")


class Prediction(_Message):
    """One model variant's answer for one event, on the ``predictions`` topic."""

    event_id: str
    model: str
    version: str
    variant: Literal["champion", "challenger", "shadow", "canary"]
    label: int
    probabilities: list[float]
    ts: float | None = None
    scored_at: float = Field(default_factory=time.time)
    latency_ms: float


class Label(_Message):
    """Ground truth for an earlier (or later) event, on the ``labels`` topic."""

    event_id: str = Field(min_length=1, max_length=256)
    label: int
    ts: float | None = None


class DeadLetter(_Message):
    """An input that could not be processed, with why and where it came from."""

    raw: str = Field(description="The raw value, UTF-8 with replacement, truncated.")
    raw_size: int
    error: str
    error_type: str
    topic: str
    partition: int
    offset: int
    at: float = Field(default_factory=time.time)


AlertKind = Literal[
    "data_drift", "prediction_drift", "concept_drift", "performance", "fairness", "data_quality"
]


class Alert(_Message):
    """A monitoring finding (ARCHITECTURE §4)."""

    alert_id: str
    kind: AlertKind
    model: str
    version: str
    feature: str | None = None
    detector: str
    statistic: float
    threshold: float
    at: float = Field(default_factory=time.time)
    details: dict[str, Any] = Field(default_factory=dict)


class RetrainRequest(_Message):
    """A monitor's request for a new model version."""

    request_id: str
    model: str
    version: str
    reason: str
    alert_ids: list[str] = Field(default_factory=list)
    at: float = Field(default_factory=time.time)


class ModelUpdate(_Message):
    """A promotion, rollback or routing change that every worker applies between batches."""

    model: str
    action: Literal["promote", "rollback", "route", "register", "stage", "reject"]
    version: str | None = None
    alias: str | None = None
    routing: dict[str, Any] | None = None
    reason: str | None = None
    at: float = Field(default_factory=time.time)


CONTRACTS: dict[str, type[BaseModel]] = {
    "event": Event,
    "prediction": Prediction,
    "label": Label,
    "dead_letter": DeadLetter,
    "alert": Alert,
    "retrain_request": RetrainRequest,
    "model_update": ModelUpdate,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of every contract, by name."""
    return {name: model.model_json_schema() for name, model in CONTRACTS.items()}


__all__ = [
    "CONTRACTS",
    "SCHEMA_VERSION",
    "Alert",
    "DeadLetter",
    "Event",
    "Label",
    "ModelUpdate",
    "Prediction",
    "RetrainRequest",
    "json_schemas",
]
