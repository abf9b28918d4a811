"""The extension points of monitoring state and alerts, with in-memory implementations.

Both are async: their real implementations talk to a server on an event loop.
``streams`` implements :class:`StateStore` and :class:`AlertSink` on Redis
(``streams.adapters.redis_state.RedisStateStore`` and
``streams.adapters.redis_alerts.RedisAlertSink``); :class:`InMemoryStateStore` and
:class:`InMemoryAlertSink` ship here as test helpers.
:class:`DriftMonitor` is the contract of a single detector (see
:class:`monitoring.detectors.ChangeDetector`). :func:`save_state` and :func:`load_state` move
a snapshot through a store as orjson bytes — never pickle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import orjson

from monitoring.errors import SnapshotError


@runtime_checkable
class StateStore(Protocol):
    """Keeps opaque snapshot bytes under a key; a save replaces the value atomically."""

    async def load(self, key: str) -> bytes | None:
        """The bytes saved under ``key``, or None."""
        ...

    async def save(self, key: str, value: bytes) -> None:
        """Replace the bytes under ``key``."""
        ...


@runtime_checkable
class AlertSink(Protocol):
    """Receives alerts (JSON-able mappings) to deliver."""

    async def emit(self, alerts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Deliver ``alerts``, in order; return those delivered, in order.

        A sink shared by several processes may leave out an alert that another one delivered
        already (the Redis sink drops one raised again within its cooldown).
        """
        ...


@runtime_checkable
class DriftMonitor(Protocol):
    """One detector: fed value by value, with a JSON snapshot."""

    def update(self, x: float) -> bool:
        """Feed one value; True when a change is detected."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state."""
        ...

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`snapshot`."""
        ...


class InMemoryStateStore:
    """A :class:`StateStore` in a dict (tests, single-process demos).

    Examples
    --------
    >>> import asyncio
    >>> store = InMemoryStateStore()
    >>> asyncio.run(save_state(store, "k", {"schema_version": 1, "n": 3}))
    >>> asyncio.run(load_state(store, "k"))
    {'schema_version': 1, 'n': 3}
    """

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def load(self, key: str) -> bytes | None:
        """The bytes saved under ``key``, or None."""
        return self.data.get(key)

    async def save(self, key: str, value: bytes) -> None:
        """Replace the bytes under ``key``."""
        self.data[key] = bytes(value)


class InMemoryAlertSink:
    """An :class:`AlertSink` that keeps every alert in a list (tests)."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []

    async def emit(self, alerts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Append ``alerts`` (every one is delivered)."""
        self.alerts.extend(dict(a) for a in alerts)
        return list(alerts)


async def save_state(store: StateStore, key: str, state: Mapping[str, Any]) -> None:
    """Serialise a snapshot with orjson and save it."""
    await store.save(key, orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY))


async def load_state(store: StateStore, key: str) -> dict[str, Any] | None:
    """Load and parse a snapshot saved by :func:`save_state`; None when there is none.

    Raises
    ------
    SnapshotError
        The bytes are not a JSON object.
    """
    raw = await store.load(key)
    if raw is None:
        return None
    try:
        state = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"state under {key!r} is not valid JSON: {exc}") from exc
    if not isinstance(state, dict):
        raise SnapshotError(f"state under {key!r} is not a JSON object", found=type(state).__name__)
    return state


__all__ = [
    "AlertSink",
    "DriftMonitor",
    "InMemoryAlertSink",
    "InMemoryStateStore",
    "StateStore",
    "load_state",
    "save_state",
]
