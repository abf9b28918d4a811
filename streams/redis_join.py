"""The label join in Redis: predictions wait for their labels (or labels for predictions).

Keys, per model (``P = driftline:join:<model>``):

- ``P:p:<event_id>`` → what was predicted (JSON), ``P:pz`` a sorted set of pending predictions by
  time; ``P:l:<event_id>`` → a label that came first, ``P:lz`` likewise;
- ``P:stats`` a hash of counters: ``joined``, ``expired_predictions``, ``expired_labels``,
  ``evicted``.

Each batch is one script call, so a join is atomic whichever side arrives first and whichever
worker sees it. ``sweep`` drops entries older than the TTL (counted as expired) and the oldest
beyond ``max_items`` (counted as evicted): memory stays bounded. Keys also carry a Redis TTL of
twice the join TTL as a safety net.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

# KEYS: prefix. ARGV: now, key_ttl_s, then pairs (event_id, value).
# "mine" is the side written by this call (p or l); "theirs" the side it joins with.
_ADD = """
local prefix, mine, theirs = KEYS[1], ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local joined = 0
for i = 5, #ARGV, 2 do
  local id, value = ARGV[i], ARGV[i + 1]
  local other = prefix .. ':' .. theirs .. ':' .. id
  local found = redis.call('GET', other)
  if found then
    redis.call('DEL', other)
    redis.call('ZREM', prefix .. ':' .. theirs .. 'z', id)
    out[#out + 1] = id
    out[#out + 1] = found
    joined = joined + 1
  else
    redis.call('SET', prefix .. ':' .. mine .. ':' .. id, value, 'EX', ttl)
    redis.call('ZADD', prefix .. ':' .. mine .. 'z', now, id)
  end
end
if joined > 0 then redis.call('HINCRBY', prefix .. ':stats', 'joined', joined) end
return out
"""

# KEYS: prefix. ARGV: cutoff time, max items per side, batch limit.
_SWEEP = """
local prefix = KEYS[1]
local cutoff, cap, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local counts = {}
for _, side in ipairs({'p', 'l'}) do
  local z = prefix .. ':' .. side .. 'z'
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, limit)
  for _, id in ipairs(old) do redis.call('DEL', prefix .. ':' .. side .. ':' .. id) end
  if #old > 0 then redis.call('ZREM', z, unpack(old)) end
  local over = redis.call('ZCARD', z) - cap
  local evicted = 0
  if over > 0 then
    local gone = redis.call('ZPOPMIN', z, math.min(over, limit))
    for i = 1, #gone, 2 do
      redis.call('DEL', prefix .. ':' .. side .. ':' .. gone[i])
      evicted = evicted + 1
    end
  end
  local name = side == 'p' and 'expired_predictions' or 'expired_labels'
  if #old > 0 then redis.call('HINCRBY', prefix .. ':stats', name, #old) end
  if evicted > 0 then redis.call('HINCRBY', prefix .. ':stats', 'evicted', evicted) end
  counts[#counts + 1] = #old
  counts[#counts + 1] = evicted
end
return counts
"""

Joined = list[tuple[str, Any, Any]]


class RedisLabelJoin:
    """Join predictions and labels by ``event_id`` in Redis, in either order.

    Parameters
    ----------
    client
        An asyncio Redis client.
    model
        The model whose predictions are joined.
    ttl_s
        How long one side waits for the other.
    max_items
        At most this many pending entries per side.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        model: str,
        ttl_s: float = 86_400.0,
        max_items: int = 1_000_000,
    ) -> None:
        self.client = client
        self.prefix = f"driftline:join:{model}"
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._add = client.register_script(_ADD)
        self._sweep = client.register_script(_SWEEP)

    async def _call(
        self, mine: str, theirs: str, items: Sequence[tuple[str, Any]], now: float
    ) -> list[Any]:
        if not items:
            return []
        args: list[Any] = [mine, theirs, now, int(self.ttl_s * 2) + 1]
        for event_id, value in items:
            args += [event_id, orjson.dumps(value)]
        return list(await self._add(keys=[self.prefix], args=args))

    async def add_predictions(self, items: Sequence[tuple[str, Any]], now: float) -> Joined:
        """Store what was predicted for each event; return ``(event_id, prediction, label)``
        for those whose label had already arrived."""
        flat = await self._call("p", "l", items, now)
        mine = dict(items)
        return [
            (_s(flat[i]), mine[_s(flat[i])], orjson.loads(flat[i + 1]))
            for i in range(0, len(flat), 2)
        ]

    async def add_labels(self, items: Sequence[tuple[str, Any]], now: float) -> Joined:
        """Store each label; return ``(event_id, prediction, label)`` for predictions found."""
        flat = await self._call("l", "p", items, now)
        mine = dict(items)
        return [
            (_s(flat[i]), orjson.loads(flat[i + 1]), mine[_s(flat[i])])
            for i in range(0, len(flat), 2)
        ]

    async def sweep(self, now: float, limit: int = 10_000) -> dict[str, int]:
        """Expire entries older than the TTL and evict beyond the bound; return the counts."""
        pe, pv, le, lv = await self._sweep(
            keys=[self.prefix], args=[now - self.ttl_s, self.max_items, limit]
        )
        return {
            "expired_predictions": int(pe),
            "expired_labels": int(le),
            "evicted": int(pv) + int(lv),
        }

    async def stats(self) -> dict[str, int]:
        """Counters and the number of entries still waiting on each side."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(f"{self.prefix}:stats")
        pipe.zcard(f"{self.prefix}:pz")
        pipe.zcard(f"{self.prefix}:lz")
        raw, pending_p, pending_l = await pipe.execute()
        out = {_s(k): int(v) for k, v in raw.items()}
        for name in ("joined", "expired_predictions", "expired_labels", "evicted"):
            out.setdefault(name, 0)
        out.update(pending_predictions=int(pending_p), pending_labels=int(pending_l))
        return out


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = ["RedisLabelJoin"]
