"""Champion/challenger routing: off, shadow, or a sticky canary by a stable hash.

The hash of ``entity`` (or, without one, ``event_id``) puts each key in one of 10,000 buckets;
a canary of P % answers with the challenger for the buckets below ``P * 100``. The hash is
blake2b, not Python's ``hash()``, so every worker and every restart agree.
"""

from __future__ import annotations

import os
import uuid
from hashlib import blake2b
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.registry import Registry
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


ROUTING_FILE = "routing.json"


def load_routing(registry: Registry, model: str) -> Routing:
    """Return the routing stored beside ``model`` in the registry (``off`` when there is none)."""
    path = registry.root / model / ROUTING_FILE
    if not path.exists():
        return Routing()
    try:
        return Routing.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise ConfigError(f"unreadable routing file {path}: {exc}") from exc


def save_routing(registry: Registry, model: str, routing: Routing) -> None:
    """Store ``routing`` for ``model`` atomically, where every worker will read it."""
    registry.resolve(model)  # an unknown model is an error, not a new directory
    path = registry.root / model / ROUTING_FILE
    tmp = path.with_name(f".{ROUTING_FILE}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(routing.model_dump_json())
    os.replace(tmp, path)


__all__ = ["BUCKETS", "Routing", "bucket", "in_canary", "load_routing", "save_routing"]
