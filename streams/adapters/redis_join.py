"""The label join in Redis: predictions wait for their labels (or labels for predictions).

Entries live in **generations**, per model (``P = driftline:join:<model>``) and per side ``p``
(predictions) or ``l`` (labels):

- ``P:<side>:<n>`` a hash, event id → what was predicted (JSON) or the label that came first
  (``n`` zero-padded to 12 digits, so that generations opened in one instant sort in order);
- ``P:<side>g`` the live generations, scored by their last write; ``P:gen`` the current
  generation of each side and when it opened; ``P:stats`` a hash of
  counters: ``joined``, ``expired_predictions``, ``expired_labels``, ``evicted``, and
  ``pending_p`` / ``pending_l``, the entries still waiting on each side.

A generation takes writes for at most an eighth of the TTL or an eighth of ``max_items``
entries; then the next one opens. Storing a batch is one script call that writes one key
(``HSET`` of the whole batch), whatever its size: no key and no expiry per event, which is
what made a per-event layout cost ~9 µs of Redis CPU per event. A call looks the
other side up (one ``HMGET`` per live generation, newest first) only when something waits
there: labels come after their predictions in the common case.

``sweep`` drops whole generations whose last write is older than the TTL (their remaining
entries counted as expired: an entry waits at least the TTL, at most 9/8 of it) and, while
more than ``max_items`` entries wait on a side, drops its oldest generation whole (counted as
evicted), as Kafka drops whole log segments: after a sweep at most ``max_items`` wait, and at
least ``max_items`` less one generation when the bound was reached. Whole generations are
what keeps this cheap: an id list per generation for exact oldest-first eviction, and the
``LPOP`` and ``HDEL`` of every evicted entry, had cost Redis 5.5 µs of CPU per stored event
(append-only-file rewrites included) against 4.1 for whole generations, and evicting at most
10,000 entries per sweep had let the join outgrow its bound at ~30,000 events/s. ``UNLINK``
frees a dropped generation off Redis's main thread. Every key also carries a Redis TTL of
twice the join TTL as a safety net.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from streams.contracts.names import join_prefix

# Lua's unpack() takes at most ~8,000 values: long argument lists go in slices of this many
# entries (HSET takes two values per entry; 4,000 failed once batches of 4,096 merged).
_SLICE = 2000

# KEYS: prefix. ARGV: mine, theirs, now, key_ttl_s, roll_after_s, roll_at_items, the event
# ids (a JSON array) and their values (JSON documents, one per line: JSON never holds a raw
# newline). Two arguments for the whole batch rather than two per event: building and parsing
# thousands of arguments cost more than the script itself.
# "mine" is the side written by this call (p or l); "theirs" the side it joins with.
_ADD = """
local prefix, mine, theirs = KEYS[1], ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local roll_after, roll_at = tonumber(ARGV[5]), tonumber(ARGV[6])
local stats = prefix .. ':stats'
local S = SLICE
local ids, values = cjson.decode(ARGV[7]), {}
local blob, pos = ARGV[8], 1
for i = 1, #ids do
  local stop = string.find(blob, '\\n', pos, true)
  values[i] = string.sub(blob, pos, (stop or 0) - 1)
  pos = (stop or #blob) + 1
end
local out, found, taken = {}, {}, {}
local waiting = tonumber(redis.call('HGET', stats, 'pending_' .. theirs) or '0')
if waiting > 0 then
  local rest = {}
  for i = 1, #ids do rest[i] = i end
  local live = redis.call('ZREVRANGE', prefix .. ':' .. theirs .. 'g', 0, -1)
  for _, gen in ipairs(live) do
    if #rest == 0 then break end
    local still, gone = {}, {}
    for a = 1, #rest, S do
      local b = math.min(a + S - 1, #rest)
      local keys = {}
      for k = a, b do keys[#keys + 1] = ids[rest[k]] end
      local got = redis.call('HMGET', gen, unpack(keys))
      for k = a, b do
        local v, i = got[k - a + 1], rest[k]
        if v then
          found[i] = true
          if not taken[ids[i]] then  -- an id twice in one batch joins once
            taken[ids[i]] = true
            out[#out + 1] = ids[i]
            out[#out + 1] = v
            gone[#gone + 1] = ids[i]
          end
        else
          still[#still + 1] = rest[k]
        end
      end
    end
    for a = 1, #gone, S do
      redis.call('HDEL', gen, unpack(gone, a, math.min(a + S - 1, #gone)))
    end
    rest = still
  end
end
local joined = #out / 2
if joined > 0 then
  redis.call('HINCRBY', stats, 'joined', joined)
  redis.call('HINCRBY', stats, 'pending_' .. theirs, -joined)
end
local pairs_ = {}
for i = 1, #ids do
  if not found[i] then
    pairs_[#pairs_ + 1] = ids[i]
    pairs_[#pairs_ + 1] = values[i]
  end
end
if #pairs_ > 0 then
  local gens = prefix .. ':gen'
  -- zero-padded: generations written in the same instant sort oldest first
  local function named(k) return string.format('%s:%s:%012d', prefix, mine, k) end
  local n = tonumber(redis.call('HGET', gens, mine) or '0')
  local gen = named(n)
  local opened = tonumber(redis.call('HGET', gens, mine .. ':at') or '0')
  if n == 0 or now - opened >= roll_after or redis.call('HLEN', gen) >= roll_at then
    n = redis.call('HINCRBY', gens, mine, 1)
    redis.call('HSET', gens, mine .. ':at', now)
    gen = named(n)
  end
  local added = 0
  for a = 1, #pairs_, 2 * S do
    added = added + redis.call('HSET', gen, unpack(pairs_, a, math.min(a + 2 * S - 1, #pairs_)))
  end
  redis.call('EXPIRE', gen, ttl)
  redis.call('ZADD', prefix .. ':' .. mine .. 'g', now, gen)
  redis.call('HINCRBY', stats, 'pending_' .. mine, added)
end
return out
""".replace("SLICE", str(_SLICE))

# KEYS: prefix. ARGV: cutoff time, max items per side.
_SWEEP = """
local prefix = KEYS[1]
local cutoff, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local stats = prefix .. ':stats'
local counts = {}
for _, side in ipairs({'p', 'l'}) do
  local z = prefix .. ':' .. side .. 'g'
  local expired, evicted = 0, 0
  -- expiry: whole generations not written since the cutoff
  for _, gen in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)) do
    expired = expired + redis.call('HLEN', gen)
    redis.call('UNLINK', gen)
    redis.call('ZREM', z, gen)
  end
  if expired > 0 then redis.call('HINCRBY', stats, 'pending_' .. side, -expired) end
  -- bound: the oldest generations, whole, while more than the cap wait
  local waiting = tonumber(redis.call('HGET', stats, 'pending_' .. side) or '0')
  while waiting > cap do
    local gen = redis.call('ZRANGE', z, 0, 0)[1]
    if not gen then break end
    local gone = redis.call('HLEN', gen)
    redis.call('UNLINK', gen)
    redis.call('ZREM', z, gen)
    evicted = evicted + gone
    waiting = waiting - gone
    redis.call('HINCRBY', stats, 'pending_' .. side, -gone)
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
        self.prefix = join_prefix(model)
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._add = client.register_script(_ADD)
        self._sweep = client.register_script(_SWEEP)

    async def _call(
        self, mine: str, theirs: str, ids: Sequence[str], lines: Sequence[bytes], now: float
    ) -> list[Any]:
        if not ids:
            return []
        args: list[str | bytes | float] = [
            mine,
            theirs,
            now,
            int(self.ttl_s * 2) + 1,
            self.ttl_s / 8,
            max(1, self.max_items // 8),
            orjson.dumps(ids),
            b"\n".join(lines),
        ]
        return list(await self._add(keys=[self.prefix], args=args))

    async def add_predictions(self, items: Sequence[tuple[str, Any]], now: float) -> Joined:
        """Store what was predicted for each event; return ``(event_id, prediction, label)``
        for those whose label had already arrived."""
        return await self.add_prediction_lines(
            [event_id for event_id, _ in items], [orjson.dumps(v) for _, v in items], now
        )

    async def add_prediction_lines(
        self, ids: Sequence[str], lines: Sequence[bytes], now: float
    ) -> Joined:
        """:meth:`add_predictions` of values already encoded: ``lines[i]`` is the JSON of
        what was predicted for ``ids[i]``, without a raw newline (JSON never has one)."""
        flat = await self._call("p", "l", ids, lines, now)
        if not flat:
            return []
        where = {event_id: i for i, event_id in enumerate(ids)}  # the last one, as stored
        return [
            (_s(flat[i]), orjson.loads(lines[where[_s(flat[i])]]), orjson.loads(flat[i + 1]))
            for i in range(0, len(flat), 2)
        ]

    async def add_labels(self, items: Sequence[tuple[str, Any]], now: float) -> Joined:
        """Store each label; return ``(event_id, prediction, label)`` for predictions found."""
        ids = [event_id for event_id, _ in items]
        flat = await self._call("l", "p", ids, [orjson.dumps(v) for _, v in items], now)
        mine = dict(items)
        return [
            (_s(flat[i]), orjson.loads(flat[i + 1]), mine[_s(flat[i])])
            for i in range(0, len(flat), 2)
        ]

    async def sweep(self, now: float) -> dict[str, int]:
        """Expire entries older than the TTL and evict beyond the bound; return the counts."""
        pe, pv, le, lv = await self._sweep(
            keys=[self.prefix], args=[now - self.ttl_s, self.max_items]
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
