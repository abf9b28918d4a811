"""The monitors' state in Redis: the snapshot store and the records written beside it.

- :class:`RedisStateStore` implements :class:`monitoring.state.StateStore`: a snapshot is one
  ``SET`` (atomic: a reader sees the old snapshot or the new one, never half of one) and is
  read back with one ``GET``;
- :class:`RedisMonitorRecords` writes what the monitors of one model append as they go, each
  call one pipelined round trip: labelled events to the training window and paired shadow
  outcomes (``driftline:{<name>}:window`` and ``...:pairs:<version>``), the health hash
  and a history point (``...:health``, ``...:history``).

Every key is named in :mod:`streams.contracts.names`. Failures (``RedisError``, ``OSError``)
propagate: the caller decides what an unreachable Redis means (the monitors degrade).
"""

from __future__ import annotations

from streams.adapters.redis_client import AsyncClient
from streams.contracts.names import HEALTH_FIELD, health_key, history_key, pairs_key, window_key


class RedisStateStore:
    """A :class:`monitoring.state.StateStore` on a Redis string per key."""

    def __init__(self, redis: AsyncClient) -> None:
        self.redis = redis

    async def load(self, key: str) -> bytes | None:
        """The bytes saved under ``key``, or None (one ``GET``)."""
        raw = await self.redis.get(key)
        return raw.encode() if isinstance(raw, str) else raw

    async def save(self, key: str, value: bytes) -> None:
        """Replace the bytes under ``key`` (one ``SET``: atomic)."""
        await self.redis.set(key, value)


class RedisMonitorRecords:
    """The training window, shadow pairs, health and history of one model's monitors."""

    def __init__(
        self,
        redis: AsyncClient,
        model: str,
        window_size: int,
        max_paired: int,
        history_max_points: int,
    ) -> None:
        self.redis = redis
        self.window_key = window_key(model)
        self.model = model
        self.health_key = health_key(model)
        self.history_key = history_key(model)
        self.window_size = window_size
        self.max_paired = max_paired
        self.history_max_points = history_max_points

    async def keep(self, window: list[bytes], paired: dict[str, list[str]]) -> None:
        """Append labelled events to the training window and shadow pairs, one round trip.

        ``window`` holds one JSON row per labelled event that kept its features; ``paired``
        maps a shadow version to its outcomes beside the champion's (``"11"``, ``"10"``...).
        Nothing to write sends nothing.
        """
        pipe = self.redis.pipeline(transaction=False)
        for row in window:
            pipe.xadd(self.window_key, {"row": row}, maxlen=self.window_size, approximate=True)
        for version, pairs in paired.items():
            key = pairs_key(self.model, version)
            for pair in pairs:  # one entry each: its id is where the retrainer resumes
                pipe.xadd(key, {"p": pair}, maxlen=self.max_paired, approximate=True)
        await pipe.execute()

    async def publish(self, health: bytes, point: bytes | None = None) -> None:
        """Write the health summary and, when given, one history point: one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.health_key, HEALTH_FIELD, health)
        if point is not None:
            pipe.xadd(  # exact cap: one entry trimmed per interval costs nothing
                self.history_key,
                {"point": point},
                maxlen=self.history_max_points,
                approximate=False,
            )
        await pipe.execute()


__all__ = ["RedisMonitorRecords", "RedisStateStore"]
