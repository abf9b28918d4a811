"""Decode and validate events from bytes with a compiled validator, the pydantic model as judge.

A card's event model (:func:`streams.contracts.messages.event_model`) is the schema's source of
truth, and ``model_validate_json`` per event is exact but costs about 3.8 µs for 20 features,
a quarter of what the whole hot path may spend on an event. :class:`BatchDecoder` compiles the
same schema, generated from the event model's feature kinds, into a msgspec decoder that
reads a valid event in about 0.8 µs. It accepts only what the pydantic model accepts, and
gives the same values (JSON integers of numeric features become floats, ``ts`` a float; a
context attribute sent among the features moves to the context). Whatever it refuses (a wrong
type, a number out of float32 range, an unknown or missing field, invalid JSON, a ``ts`` sent
as text) goes to the pydantic model, which decides: the values and the dead letters' reasons
are exactly those of the model. A unit test checks the two agree on generated events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from streams.contracts.messages import F32_MAX, MAX_CONTEXT, Event

_MAX_ID = 256
_Number = Annotated[float, msgspec.Meta(ge=-F32_MAX, le=F32_MAX)]
# Context values are plain scalars; msgspec refuses a JSON number beyond a double's range.
_ContextValue = str | bool | int | float | None
_Context = Annotated[dict[str, _ContextValue], msgspec.Meta(max_length=MAX_CONTEXT)]
_UNSET = msgspec.UNSET


def _event_struct(event_type: type[Event]) -> type[msgspec.Struct]:
    """The msgspec form of ``event_type``: same fields, same types, unknown fields refused."""
    fields: list[Any] = [
        (name, _Number | None if kind == "numeric" else str | int | None)
        for name, kind in event_type.feature_kinds.items()
    ]
    fields += [
        (name, _ContextValue | msgspec.UnsetType, _UNSET) for name in event_type.context_features
    ]
    features = msgspec.defstruct("Features", fields, forbid_unknown_fields=True)
    return msgspec.defstruct(
        "Event",
        [
            ("event_id", Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_ID)]),
            ("features", features),
            ("schema_version", int, 1),
            ("entity", Annotated[str, msgspec.Meta(max_length=_MAX_ID)] | None, None),
            ("ts", float | None, None),
            ("context", _Context | None, None),
        ],
        forbid_unknown_fields=True,
    )


class Decoded(msgspec.Struct):
    """One event the compiled validator accepted: its fields as the pydantic model gives them."""

    event_id: str
    features: dict[str, Any]
    entity: str | None
    ts: float | None
    context: dict[str, Any] | None


class BatchDecoder:
    """The compiled reading of ``event_type``'s events; None for each it leaves to pydantic.

    Parameters
    ----------
    event_type : type of Event
        A card's event model (it names its features' kinds). For a plain :class:`Event`,
        which has none, every event is left to pydantic.

    Examples
    --------
    >>> from streams.contracts.messages import event_model
    >>> decoder = BatchDecoder(event_model("demo", {"age": "numeric", "city": "categorical"}))
    >>> good = b'{"event_id": "1", "features": {"age": 30, "city": "Oslo"}, "ts": 5}'
    >>> bad = b'{"event_id": "2", "features": {"age": "thirty", "city": "Oslo"}}'
    >>> first, second = decoder.decode([good, bad])
    >>> first.features, first.ts, second
    ({'age': 30.0, 'city': 'Oslo'}, 5.0, None)
    """

    def __init__(self, event_type: type[Event]) -> None:
        self.enabled = bool(event_type.feature_kinds)
        self.context_features = tuple(event_type.context_features)
        self._decoder = msgspec.json.Decoder(_event_struct(event_type)) if self.enabled else None

    def decode(self, raws: Sequence[bytes]) -> list[Decoded | None]:
        """Each raw event decoded, or None where the pydantic model must decide."""
        if self._decoder is None:
            return [None] * len(raws)
        return [self._one(raw) for raw in raws]

    def _one(self, raw: bytes) -> Decoded | None:
        assert self._decoder is not None
        try:
            ev: Any = self._decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        features = msgspec.structs.asdict(ev.features)
        context = ev.context
        for name in self.context_features:  # the model never reads these
            value = features.pop(name)
            if value is not _UNSET:
                context = {name: value, **(context or {})}
        return Decoded(ev.event_id, features, ev.entity, ev.ts, context)


__all__ = ["BatchDecoder", "Decoded"]
