"""The wire contracts: every message that crosses a process boundary, as pydantic models.

Each message carries ``schema_version``; ``driftline schema`` prints their JSON Schema so that
producers in other languages can validate too. JSON on the wire is encoded with orjson.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, NotRequired

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    create_model,
    with_config,
)
from typing_extensions import TypedDict

from models.card import ModelCard
from monitoring.findings import FindingKind

SCHEMA_VERSION = 1

FeatureValue = float | int | str | bool | None
# What an event's context holds: plain scalars, never nested, never NaN or infinite.
ContextValue = StrictStr | StrictBool | StrictInt | Annotated[float, AllowInfNan(False)] | None
MAX_CONTEXT = 64


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION


class Event(_Message):
    """An event to score, produced by users to the ``events`` topic."""

    event_id: str = Field(min_length=1, max_length=256)
    features: dict[str, FeatureValue]
    entity: str | None = Field(default=None, max_length=256, description="Key for sticky A/B.")
    ts: float | None = Field(default=None, description="Event time, Unix seconds.")
    context: dict[str, ContextValue] | None = Field(
        default=None,
        max_length=MAX_CONTEXT,
        description="Attributes that travel with the event but are never given to the model: "
        "the sensitive attribute that fairness is watched by, a segment or region to slice "
        "metrics by. Name to string, number, boolean or null.",
    )

    # Names that a producer may also send inside ``features`` although the model does not
    # read them (the card's sensitive column): the worker moves them to ``context``.
    context_features: ClassVar[tuple[str, ...]] = ()
    # The card's feature schema (name -> "numeric" or "categorical"); empty for a plain Event.
    feature_kinds: ClassVar[Mapping[str, str]] = {}


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
    context: dict[str, ContextValue] | None = Field(
        default=None, description="The event's context, when it had one."
    )


class Label(_Message):
    """Ground truth for an earlier (or later) event, on the ``labels`` topic."""

    event_id: str = Field(min_length=1, max_length=256)
    label: int | str = Field(description="0/1, or the class name as in the model card.")
    ts: float | None = None
    model: str | list[str] | None = Field(
        default=None,
        description="The model (or models) the label is for; a label that names none is for "
        "every model that reads its topic.",
    )

    def is_for(self, model: str) -> bool:
        """Whether ``model``'s monitors are to join this label.

        Examples
        --------
        >>> Label(event_id="e1", label=1).is_for("credit")
        True
        >>> for_fraud = Label(event_id="e1", label=1, model="fraud")
        >>> for_both = Label(event_id="e1", label=1, model=["fraud", "credit"])
        >>> for_fraud.is_for("credit"), for_both.is_for("credit")
        (False, True)
        """
        if self.model is None:
            return True
        return model == self.model if isinstance(self.model, str) else model in self.model


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


AlertKind = FindingKind  # an alert is a finding the alert policy let through


class Alert(_Message):
    """A monitoring finding (docs/architecture.md, "Contracts users depend on").

    ``details`` always has the ``version`` and ``variant`` that raised it, and per test what
    it measured. Two keys say why:

    - ``explained_by`` (prediction drift, performance, concept drift): ``[[feature, share],
      ...]``, at most five, largest share first, the shares of the features whose drift,
      weighted by the model's importance of each, explains the finding; ``[]`` when no
      feature drifted beyond noise (a concept drift, probably); absent when the model's card
      records no importances;
    - ``columns`` (data drift whose ``test`` is ``multivariate``, no ``feature``: the
      reconstruction error of the card's PCA): ``[[feature, share], ...]``, the columns whose
      residual grew, with their share of the excess: where a correlation broke.
    """

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


# Numbers must survive the model's float32 input: larger ones are refused, not saturated.
# One strict float (which takes JSON integers, never booleans or strings) rather than an
# int | float union: a union tries each branch and costs twice as much on every event.
F32_MAX = 3.4028234663852886e38
_Number = Annotated[float, Strict(), AllowInfNan(False), Field(ge=-F32_MAX, le=F32_MAX)]
_Category = StrictStr | StrictInt


def _feature(kind: str) -> Any:
    base = _Number if kind == "numeric" else _Category
    return Annotated[base | None, Field(description=kind)]


def event_model(
    model: str, features: Mapping[str, str], context_features: tuple[str, ...] = ()
) -> type[Event]:
    """Return the pydantic model of an event for a feature schema (name → kind).

    Every feature is required; ``null`` is a missing value. Numeric features take finite
    numbers within float32 range, categorical ones strings (or integers); unknown features
    are refused. ``context_features`` are context attributes also accepted, optionally, among
    the features (the worker moves them to the context; the model never reads them).

    Examples
    --------
    >>> Ev = event_model("demo", {"age": "numeric", "city": "categorical"})
    >>> Ev.model_validate_json(b'{"event_id": "1", "features": {"age": 3, "city": null}}').event_id
    '1'
    >>> doc = b'{"event_id": "2", "features": {"age": 3, "city": "Oslo"}, "context": {"seg": "b"}}'
    >>> Ev.model_validate_json(doc).context
    {'seg': 'b'}
    >>> Sv = event_model("demo", {"age": "numeric"}, context_features=("seg",))
    >>> Sv.model_validate_json(b'{"event_id": "3", "features": {"age": 3, "seg": "b"}}').features
    {'age': 3.0, 'seg': 'b'}
    """
    fields: dict[str, Any] = {name: _feature(kind) for name, kind in features.items()}
    fields.update({name: NotRequired[ContextValue] for name in context_features})
    # A TypedDict validates straight into the dict the scorer reads: building a model
    # instance per event cost as much as validating it.
    feature_type = with_config(ConfigDict(extra="forbid"))(
        TypedDict(f"{model}_features", fields)  # type: ignore[operator]
    )
    event = create_model(f"{model}_event", __base__=Event, features=(feature_type, ...))
    event.context_features = tuple(context_features)
    event.feature_kinds = dict(features)
    return event


def context_columns(card: ModelCard) -> tuple[str, ...]:
    """The card's attributes that events carry for monitoring only: its sensitive column,
    unless the model reads it (or derives the group from a feature, as age bands do)."""
    spec = card.sensitive
    if spec is None or spec.column in {f.name for f in card.features}:
        return ()
    return (spec.column,)


def card_event_model(card: ModelCard) -> type[Event]:
    """Return :func:`event_model` for the feature schema of a model card."""
    features = {f.name: f.kind for f in card.features}
    return event_model(card.name, features, context_columns(card))


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
    "F32_MAX",
    "MAX_CONTEXT",
    "SCHEMA_VERSION",
    "Alert",
    "ContextValue",
    "DeadLetter",
    "Event",
    "Label",
    "ModelUpdate",
    "Prediction",
    "RetrainRequest",
    "card_event_model",
    "context_columns",
    "event_model",
    "json_schemas",
]
