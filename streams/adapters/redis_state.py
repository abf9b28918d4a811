"""The monitors' state in Redis: the snapshot store and the records written beside it.

- :class:`RedisStateStore` implements :class:`monitoring.state.StateStore`: a snapshot is one
  ``SET`` (atomic: a reader sees the old snapshot or the new one, never half of one) and is
  read back with one ``GET``;
- :class:`RedisMonitorRecords` writes what the monitors of one model append as they go, each
  call one script (one round trip): labelled events to the training window and paired shadow
  outcomes (``driftline:{<name>}:window`` and ``...:paired:<version>:stream``), the health
  hash and a history point (``...:health``, ``...:history``).

Every write is fenced by the owner's epoch (:mod:`streams.adapters.redis_fence`): a process
that lost the monitors to another writes nothing (:class:`~streams.errors.FencedError`).
Every key is named in :mod:`streams.contracts.names`. Failures (``RedisError``, ``OSError``)
propagate: the caller decides what an unreachable Redis means (the monitors degrade).
"""

from __future__ import annotations

from streams.adapters.redis_client import AsyncClient
from streams.adapters.redis_fence import FENCE_LUA, OwnerFence
from streams.contracts.names import HEALTH_FIELD, health_key, history_key, pairs_key, window_key

# KEYS: the key, the fence. ARGV: the value, the epoch.
_SAVE = FENCE_LUA + "redis.call('SET', KEYS[1], ARGV[1]) return 1"

# KEYS: the window, each pairs stream, the fence. ARGV: window cap, pairs cap, the number of
# rows, the rows, then per pairs stream its count and its outcomes, the epoch.
_KEEP = (
    FENCE_LUA
    + """
local a = 4
for _ = 1, tonumber(ARGV[3]) do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'row', ARGV[a])
  a = a + 1
end
for k = 2, #KEYS - 1 do
  local n = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, n do
    redis.call('XADD', KEYS[k], 'MAXLEN', '~', ARGV[2], '*', 'p', ARGV[a])
    a = a + 1
  end
end
return 1
"""
)

# KEYS: health, history, the fence. ARGV: field, health, point ("" for none), cap, the epoch.
_PUBLISH = (
    FENCE_LUA
    + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], '*', 'point', ARGV[3])
end
return 1
"""
)


class RedisStateStore:
    """A :class:`monitoring.state.StateStore` on a Redis string per key, fenced by ``fence``
    (none: unchecked)."""

    def __init__(self, redis: AsyncClient, fence: OwnerFence | None = None) -> None:
        self.redis = redis
        self.fence = fence
        self._save = redis.register_script(_SAVE)

    async def load(self, key: str) -> bytes | None:
        """The bytes saved under ``key``, or None (one ``GET``)."""
        raw = await self.redis.get(key)
        return raw.encode() if isinstance(raw, str) else raw

    async def save(self, key: str, value: bytes) -> None:
        """Replace the bytes under ``key`` (one ``SET``: atomic), if still the owner."""
        if self.fence is None:
            await self.redis.set(key, value)
            return
        answer = await self._save(keys=[key, self.fence.key], args=[value, self.fence.arg])
        self.fence.check(answer, "the snapshot")


class RedisMonitorRecords:
    """The training window, shadow pairs, health and history of one model's monitors."""

    def __init__(
        self,
        redis: AsyncClient,
        model: str,
        window_size: int,
        max_paired: int,
        history_max_points: int,
        fence: OwnerFence | None = None,
    ) -> None:
        self.redis = redis
        self.window_key = window_key(model)
        self.model = model
        self.health_key = health_key(model)
        self.history_key = history_key(model)
        self.window_size = window_size
        self.max_paired = max_paired
        self.history_max_points = history_max_points
        self.fence = fence or OwnerFence(redis, model)
        self._keep = redis.register_script(_KEEP)
        self._publish = redis.register_script(_PUBLISH)

    async def keep(self, window: list[bytes], paired: dict[str, list[str]]) -> None:
        """Append labelled events to the training window and shadow pairs, one round trip.

        ``window`` holds one JSON row per labelled event that kept its features; ``paired``
        maps a shadow version to its outcomes beside the champion's (``"11"``, ``"10"``...),
        one stream entry each: its id is where the retrainer resumes. Nothing to write
        sends nothing.
        """
        paired = {v: pairs for v, pairs in paired.items() if pairs}
        if not window and not paired:
            return
        keys = [self.window_key, *(pairs_key(self.model, v) for v in paired), self.fence.key]
        args: list[bytes | str | int] = [self.window_size, self.max_paired, len(window), *window]
        for pairs in paired.values():
            args += [len(pairs), *pairs]
        answer = await self._keep(keys=keys, args=[*args, self.fence.arg])
        self.fence.check(answer, "the training window")

    async def publish(self, health: bytes, point: bytes | None = None) -> None:
        """Write the health summary and, when given, one history point: one round trip."""
        keys = [self.health_key, self.history_key, self.fence.key]
        args: list[bytes | str | int] = [
            HEALTH_FIELD,
            health,
            point or b"",
            self.history_max_points,
            self.fence.arg,
        ]
        answer = await self._publish(keys=keys, args=args)
        self.fence.check(answer, "the health")


__all__ = ["RedisMonitorRecords", "RedisStateStore"]
