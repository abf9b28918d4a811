"""The label join in Redis: predictions wait for their labels (or labels for predictions).

Keys, per model (``P = driftline:join:<model>``), for each side ``p`` (predictions) and ``l``
(labels):

- ``P:p:<event_id>`` → what was predicted (JSON); ``P:l:<event_id>`` → a label that came first;
- ``P:pb:<n>`` the ids stored by one call (a list), ``P:pbz`` those lists by time, so that
  expiry and eviction walk whole batches instead of one sorted-set entry per event;
- ``P:stats`` a hash of counters: ``joined``, ``expired_predictions``, ``expired_labels``,
  ``evicted``, and ``pending_p`` / ``pending_l``, the entries still waiting on each side.

Each batch is one script call, so a join is atomic whichever side arrives first and whichever
worker sees it. A call looks the other side up only when something waits there (labels come
after their predictions in the common case, so storing a batch of predictions costs one SET
per event). ``sweep`` drops entries older than the TTL (counted as expired) and the oldest
beyond ``max_items`` (counted as evicted): memory stays bounded. Keys also carry a Redis TTL of
twice the join TTL as a safety net.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

# KEYS: prefix. ARGV: mine, theirs, now, key_ttl_s, the event ids (a JSON array) and their
# values (JSON documents, one per line: JSON never holds a raw newline). Two arguments for the
# whole batch rather than two per event: building and parsing thousands of arguments cost
# more than the script itself.
# "mine" is the side written by this call (p or l); "theirs" the side it joins with.
_ADD = """
local prefix, mine, theirs = KEYS[1], ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local stats = prefix .. ':stats'
local waiting = tonumber(redis.call('HGET', stats, 'pending_' .. theirs) or '0')
local out, ids = {}, {}
local blob, pos = ARGV[6], 1
for _, id in ipairs(cjson.decode(ARGV[5])) do
  local stop = string.find(blob, '\\n', pos, true)
  local value = string.sub(blob, pos, (stop or 0) - 1)
  pos = (stop or #blob) + 1
  local found = false
  if waiting > 0 then
    local other = prefix .. ':' .. theirs .. ':' .. id
    found = redis.call('GET', other)
    if found then
      redis.call('DEL', other)
      out[#out + 1] = id
      out[#out + 1] = found
      waiting = waiting - 1
    end
  end
  if not found then
    redis.call('SET', prefix .. ':' .. mine .. ':' .. id, value, 'EX', ttl)
    ids[#ids + 1] = id
  end
end
local joined = #out / 2
if joined > 0 then
  redis.call('HINCRBY', stats, 'joined', joined)
  redis.call('HINCRBY', stats, 'pending_' .. theirs, -joined)
end
if #ids > 0 then
  local n = redis.call('HINCRBY', stats, 'batches', 1)
  local batch = prefix .. ':' .. mine .. 'b:' .. n
  for i = 1, #ids, 4000 do
    redis.call('RPUSH', batch, unpack(ids, i, math.min(i + 3999, #ids)))
  end
  redis.call('EXPIRE', batch, ttl)
  redis.call('ZADD', prefix .. ':' .. mine .. 'bz', now, batch)
  redis.call('HINCRBY', stats, 'pending_' .. mine, #ids)
end
return out
"""

# KEYS: prefix. ARGV: cutoff time, max items per side, id limit per side.
_SWEEP = """
local prefix = KEYS[1]
local cutoff, cap, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local stats = prefix .. ':stats'
local counts = {}
local function drop(side, ids)
  local gone = 0
  for _, id in ipairs(ids) do
    gone = gone + redis.call('DEL', prefix .. ':' .. side .. ':' .. id)
  end
  if gone > 0 then redis.call('HINCRBY', stats, 'pending_' .. side, -gone) end
  return gone
end
for _, side in ipairs({'p', 'l'}) do
  local z = prefix .. ':' .. side .. 'bz'
  local expired, evicted, budget = 0, 0, limit
  -- expiry: whole batches older than the cutoff
  for _, batch in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)) do
    if budget <= 0 then break end
    local ids = redis.call('LPOP', batch, budget) or {}
    budget = budget - #ids
    expired = expired + drop(side, ids)
    if redis.call('LLEN', batch) == 0 then redis.call('ZREM', z, batch) end
  end
  -- bound: the oldest entries beyond the cap, id by id
  local over = tonumber(redis.call('HGET', stats, 'pending_' .. side) or '0') - cap
  while over > 0 and budget > 0 do
    local oldest = redis.call('ZRANGE', z, 0, 0)[1]
    if not oldest then break end
    local ids = redis.call('LPOP', oldest, math.min(over, budget)) or {}
    budget = budget - #ids
    local gone = drop(side, ids)
    evicted = evicted + gone
    over = over - gone
    if redis.call('LLEN', oldest) == 0 then redis.call('ZREM', z, oldest) end
  end
  if redis.call('ZCARD', z) == 0 then redis.call('HSET', stats, 'pending_' .. side, 0) end
  local name = side == 'p' and 'expired_predictions' or 'expired_labels'
  if expired > 0 then redis.call('HINCRBY', stats, name, expired) end
  if evicted > 0 then redis.call('HINCRBY', stats, 'evicted', evicted) end
  counts[#counts + 1] = expired
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
        ids = orjson.dumps([event_id for event_id, _ in items])
        values = b"\n".join([orjson.dumps(value) for _, value in items])
        args: list[str | bytes | float] = [mine, theirs, now, int(self.ttl_s * 2) + 1, ids, values]
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
        raw = await self.client.hgetall(f"{self.prefix}:stats")
        counters = {_s(k): int(v) for k, v in raw.items()}
        out = {
            name: counters.get(name, 0)
            for name in ("joined", "expired_predictions", "expired_labels", "evicted")
        }
        out.update(
            pending_predictions=counters.get("pending_p", 0),
            pending_labels=counters.get("pending_l", 0),
        )
        return out


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = ["RedisLabelJoin"]
