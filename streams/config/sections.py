"""The settings that are JSON objects, each validated at load into a typed, frozen value.

``DRIFTLINE_MONITOR``, ``DRIFTLINE_GATES``, ``DRIFTLINE_RETRAIN_POLICY`` and
``DRIFTLINE_SEQUENTIAL`` hold JSON objects whose keys are the keyword arguments of a class of
the pure libraries (:class:`~monitoring.config.MonitorConfig`,
:class:`~models.gate_config.GateConfig`, :class:`~monitoring.retrain_policy.RetrainPolicy`,
:class:`~monitoring.sequential.PairedMSPRT`). :func:`section` checks such an object once,
when the settings load: every key must be one of those arguments and every value of its type
(a pydantic model built from the signature, so the two never drift apart), and the class
itself must accept them (its own range and choice checks). A mistake stops the process at
start with the variable, the key and what was expected, rather than when a monitor first runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import cache
from types import MappingProxyType
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, create_model

from models.errors import ModelError
from monitoring.errors import MonitoringError

# What a library class raises for a value it refuses.
_REFUSED = (ValueError, TypeError, ModelError, MonitoringError)


@cache
def keyword_model(target: Callable[..., Any]) -> type[BaseModel]:
    """A frozen pydantic model of ``target``'s keyword arguments: their names, types, defaults.

    Examples
    --------
    >>> from monitoring.config import MonitorConfig
    >>> keyword_model(MonitorConfig).model_validate({"window": "500"}).window
    500
    """
    hints = get_type_hints(_init_of(target) if isinstance(target, type) else target)
    fields: dict[str, Any] = {}
    for p in inspect.signature(target).parameters.values():
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            fields[p.name] = (hints[p.name], ... if p.default is p.empty else p.default)
    config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    name = f"{getattr(target, '__name__', 'Target')}Arguments"
    model: type[BaseModel] = create_model(name, __config__=config, **fields)
    return model


def _init_of(cls: type) -> Any:
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            return vars(klass)["__init__"]
    raise TypeError(f"{cls.__name__} has no __init__")


def section(target: Callable[..., Any], *, build: bool) -> PlainValidator:
    """Validate a JSON object as the keyword arguments of ``target``.

    Parameters
    ----------
    target
        The class whose arguments the object holds.
    build
        Keep ``target(**object)`` (a frozen value such as a config) rather than the checked
        arguments themselves, read-only (for a class with state, built afresh where used).
    """

    def validate(value: Any) -> Any:
        if isinstance(target, type) and isinstance(value, target):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a JSON object of {target.__name__} arguments")
        try:
            given = keyword_model(target).model_validate(dict(value)).model_dump(exclude_unset=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{where}: {first['msg']}") from None
        try:
            built = target(**given)
        except _REFUSED as exc:
            raise ValueError(str(exc)) from None
        return built if build else MappingProxyType(given)

    return PlainValidator(validate, json_schema_input_type=dict[str, Any])


__all__ = ["keyword_model", "section"]
