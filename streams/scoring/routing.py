"""Champion/challenger routing: off, shadow, or a sticky canary by a stable hash.

The hash of ``entity`` (or, without one, ``event_id``) puts each key in one of 10,000 buckets;
a canary of P % answers with the challenger for the buckets below ``P * 100``. The hash is
blake2b, not Python's ``hash()``, so every worker and every restart agree.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.registry import ModelState, Registry
from streams.errors import ConfigError

BUCKETS = 10_000


class Routing(BaseModel):
    """How a model's traffic is split between its champion and its challenger."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["off", "shadow", "canary"] = "off"
    percent: float = Field(default=0.0, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _percent_only_for_canary(self) -> Routing:
        if self.mode != "canary" and self.percent:
            raise ValueError("percent applies to canary routing only")
        return self


def bucket(key: str) -> int:
    """Return the stable bucket in ``[0, BUCKETS)`` of a routing key.

    Examples
    --------
    >>> bucket("customer-42") == bucket("customer-42")
    True
    >>> 0 <= bucket("x") < BUCKETS
    True
    """
    digest = blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_canary(key: str, percent: float) -> bool:
    """Whether ``key`` belongs to a canary of ``percent`` % (sticky for a given key)."""
    return bucket(key) < round(percent * BUCKETS / 100)


def routing_of(state: ModelState, model: str) -> Routing:
    """The routing in a model's registry state (``off`` when there is none)."""
    if state.routing is None:
        return Routing()
    try:
        return Routing.model_validate(state.routing)
    except ValidationError as exc:
        raise ConfigError(f"unreadable routing of {model!r} in the registry: {exc}") from exc


def load_routing(registry: Registry, model: str) -> Routing:
    """Return the routing stored with ``model``'s aliases in the registry."""
    return routing_of(registry.state(model), model)


def save_routing(registry: Registry, model: str, routing: Routing) -> None:
    """Store ``routing`` for ``model`` with its aliases, where every worker will read it."""
    registry.set_routing(model, routing.model_dump(mode="json"))


__all__ = [
    "BUCKETS",
    "Routing",
    "bucket",
    "in_canary",
    "load_routing",
    "routing_of",
    "save_routing",
]
