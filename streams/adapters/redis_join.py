"""The label join in Redis: predictions wait for their labels (or labels for predictions).

Entries live in **generations**, per model (``P = driftline:{<model>}:join``) and per side
``p`` (predictions) or ``l`` (labels), in a ring of :data:`RING` hashes per side:

- ``P:<side>:<i>`` a hash, event id → what was predicted (JSON) or the label that came first;
  generation ``n`` lives in ring slot ``i = n mod RING``;
- ``P:<side>g`` the live generations: member the slot, score the generation number (oldest
  first); ``P:gen`` the current generation of each side, when it opened, and when each slot
  was written last (``<side>:w:<i>``); ``P:stats`` a hash of counters: ``joined``,
  ``expired_predictions``, ``expired_labels``, ``evicted``, and ``pending_p`` / ``pending_l``,
  the entries still waiting on each side.

Every key either script touches is one of these ``4 + 2 * RING`` names, all passed in
``KEYS`` and all under the model's hash tag: on a Redis Cluster they share one slot. So are
the two more a store passes:

- ``P:step:<id>``: what a store answered, kept ``replay_s`` for a step named by the caller
  (the monitor-input record it came from, by offset) and a minute for an unnamed one. A step
  stored again (a client retry after a timeout, or a new owner replaying the records after
  the last snapshot) answers the same and changes nothing: each join step applies once;
- the owner's fence (:mod:`streams.adapters.redis_fence`), checked first.

A generation takes writes for at most an eighth of the TTL or an eighth of ``max_items``
entries; then the next one opens, unless the ring is full of generations still holding
entries, in which case the current one keeps growing (an eighth of the TTL still rolls it,
dropping the oldest generation whole, counted as evicted). Storing a batch is one script call
that writes one key (``HSET`` of the whole batch), whatever its size: no key and no expiry
per event, which is what made a per-event layout cost ~9 µs of Redis CPU per event. A call
looks the other side up (one ``HMGET`` per live generation, newest first) only when
something waits there: labels come after their predictions in the common case.

``sweep`` drops whole generations last written before the TTL (their remaining entries
counted as expired: an entry waits at least the TTL, at most 9/8 of it) and, while more than
``max_items`` entries wait on a side, drops its oldest generation whole (counted as evicted),
as Kafka drops whole log segments: after a sweep at most ``max_items`` wait, and at least
``max_items`` less one generation when the bound was reached. Whole generations are what
keeps this cheap: an id list per generation for exact oldest-first eviction, and the
``LPOP`` and ``HDEL`` of every evicted entry, had cost Redis 5.5 µs of CPU per stored event
(append-only-file rewrites included) against 4.1 for whole generations, and evicting at most
10,000 entries per sweep had let the join outgrow its bound at ~30,000 events/s. ``UNLINK``
frees a dropped generation off Redis's main thread. Every key also carries a Redis TTL of
twice the join TTL as a safety net.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from streams.adapters.redis_client import AsyncClient, as_text
from streams.adapters.redis_fence import FENCE_LUA, OwnerFence
from streams.contracts.names import join_prefix

# Generations per side. Time alone opens at most ~10 within a TTL; the rest is room for
# busy streams, whose generations fill (max_items / 8) faster than the TTL rolls them.
RING = 32

# Lua's unpack() takes at most ~8,000 values: long argument lists go in slices of this many
# entries (HSET takes two values per entry; 4,000 failed once batches of 4,096 merged).
_SLICE = 2000
RETRY_KEEP_S = 60  # the answer of an unnamed call: for a retry of the same call only
RETRY_STEP = "once:"


def retry_step() -> str:
    """A step name for a call that no record names, so that retrying it applies it once;
    its answer is kept :data:`RETRY_KEEP_S` only."""
    return f"{RETRY_STEP}{uuid.uuid4().hex}"


# The keys of both scripts: stats, gen, pg, lg, then the p ring and the l ring, then the
# owner's fence (its epoch is the last argument: redis_fence).
_KEYS = (
    FENCE_LUA
    + """
local R = RING
local stats, gens = KEYS[1], KEYS[2]
local zset = {p = KEYS[3], l = KEYS[4]}
local base = {p = 4, l = 4 + R}
local function slot(side, i) return KEYS[base[side] + tonumber(i) + 1] end
local function drop(side, i)  -- a whole generation; returns how many entries it held
  local gone = redis.call('HLEN', slot(side, i))
  redis.call('UNLINK', slot(side, i))
  redis.call('ZREM', zset[side], i)
  if gone > 0 then redis.call('HINCRBY', stats, 'pending_' .. side, -gone) end
  return gone
end
""".replace("RING", str(RING))
)

# ARGV: mine, theirs, now, key_ttl_s, roll_after_s, roll_at_items, the event ids (a JSON
# array) and their values (JSON documents, one per line: JSON never holds a raw newline),
# how long the step's answer is kept, the epoch.
# Two arguments for the whole batch rather than two per event: building and parsing
# thousands of arguments cost more than the script itself.
# "mine" is the side written by this call (p or l); "theirs" the side it joins with.
# KEYS: the join's, then the step's key, then the fence. A step already applied (a retry
# of the call, or the replay of the same monitor-input record after a crash) answers what
# it answered then and changes nothing.
_ADD = (
    _KEYS
    + """
local step = KEYS[#KEYS - 1]
local prior = redis.call('GET', step)
if prior then return cjson.decode(prior) end
local mine, theirs = ARGV[1], ARGV[2]
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local roll_after, roll_at = tonumber(ARGV[5]), tonumber(ARGV[6])
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
  for _, at in ipairs(redis.call('ZREVRANGE', zset[theirs], 0, -1)) do
    if #rest == 0 then break end
    local gen = slot(theirs, at)
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
  local n = tonumber(redis.call('HGET', gens, mine) or '0')
  local opened = tonumber(redis.call('HGET', gens, mine .. ':at') or '0')
  local roll = n == 0 or now - opened >= roll_after
  if not roll and redis.call('HLEN', slot(mine, n % R)) >= roll_at then
    -- full: the next generation opens only where nothing waits any more
    roll = redis.call('EXISTS', slot(mine, (n + 1) % R)) == 0
  end
  if roll then
    n = redis.call('HINCRBY', gens, mine, 1)
    redis.call('HSET', gens, mine .. ':at', now)
    local at = tostring(n % R)
    if redis.call('ZSCORE', zset[mine], at) then
      local gone = drop(mine, at)  -- the ring came round: the oldest goes, whole
      if gone > 0 then redis.call('HINCRBY', stats, 'evicted', gone) end
    end
  end
  local at = tostring(n % R)
  local gen = slot(mine, at)
  local added = 0
  for a = 1, #pairs_, 2 * S do
    added = added + redis.call('HSET', gen, unpack(pairs_, a, math.min(a + 2 * S - 1, #pairs_)))
  end
  redis.call('EXPIRE', gen, ttl)
  redis.call('ZADD', zset[mine], n, at)
  redis.call('HSET', gens, mine .. ':w:' .. at, now)
  redis.call('HINCRBY', stats, 'pending_' .. mine, added)
end
redis.call('SET', step, cjson.encode(out), 'EX', ARGV[9])
return out
""".replace("SLICE", str(_SLICE))
)

# ARGV: cutoff time, max items per side.
_SWEEP = (
    _KEYS
    + """
local cutoff, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local counts = {}
for _, side in ipairs({'p', 'l'}) do
  local expired, evicted = 0, 0
  -- expiry: whole generations not written since the cutoff (the oldest ones, in order)
  for _, at in ipairs(redis.call('ZRANGE', zset[side], 0, -1)) do
    local written = tonumber(redis.call('HGET', gens, side .. ':w:' .. at) or '0')
    if written > cutoff then break end
    expired = expired + drop(side, at)
  end
  -- bound: the oldest generations, whole, while more than the cap wait
  local waiting = tonumber(redis.call('HGET', stats, 'pending_' .. side) or '0')
  while waiting > cap do
    local at = redis.call('ZRANGE', zset[side], 0, 0)[1]
    if not at then break end
    local gone = drop(side, at)
    evicted = evicted + gone
    waiting = waiting - gone
  end
  if redis.call('ZCARD', zset[side]) == 0 then redis.call('HSET', stats, 'pending_' .. side, 0) end
  local name = side == 'p' and 'expired_predictions' or 'expired_labels'
  if expired > 0 then redis.call('HINCRBY', stats, name, expired) end
  if evicted > 0 then redis.call('HINCRBY', stats, 'evicted', evicted) end
  counts[#counts + 1] = expired
  counts[#counts + 1] = evicted
end
return counts
"""
)


def join_keys(prefix: str) -> list[str]:
    """Every key of the join under ``prefix``, in the order the scripts expect them.

    >>> keys = join_keys("driftline:{sea}:join")
    >>> keys[:5], len(keys)
    (['driftline:{sea}:join:stats', 'driftline:{sea}:join:gen', 'driftline:{sea}:join:pg', \
'driftline:{sea}:join:lg', 'driftline:{sea}:join:p:0'], 68)
    """
    ring = [f"{prefix}:{side}:{i}" for side in ("p", "l") for i in range(RING)]
    return [f"{prefix}:stats", f"{prefix}:gen", f"{prefix}:pg", f"{prefix}:lg", *ring]


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
    fence
        The owner's fence of the model's monitors (none: writes unchecked).
    replay_s
        How long the answer of a named step (a monitor-input record) is kept, to be given
        again when that record is replayed: longer than a new owner takes to replay what
        followed the last snapshot.
    """

    def __init__(
        self,
        client: AsyncClient,
        model: str,
        ttl_s: float = 86_400.0,
        max_items: int = 1_000_000,
        fence: OwnerFence | None = None,
        replay_s: float = 600.0,
    ) -> None:
        self.client = client
        self.prefix = join_prefix(model)
        self.fence = fence or OwnerFence(client, model)
        self.keys = join_keys(self.prefix)
        self.replay_s = replay_s
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._add = client.register_script(_ADD)
        self._sweep = client.register_script(_SWEEP)

    async def _call(
        self,
        mine: str,
        theirs: str,
        ids: Sequence[str],
        lines: Sequence[bytes],
        now: float,
        step: str | None,
    ) -> list[Any]:
        if not ids:
            return []
        # A call of its own (no record to replay) is kept only for a retry of itself.
        step = step or retry_step()
        step_key = f"{self.prefix}:step:{step}"
        keep_s = RETRY_KEEP_S if step.startswith(RETRY_STEP) else self.replay_s
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
        keys = [*self.keys, step_key, self.fence.key]
        answer = await self._add(keys=keys, args=[*args, int(keep_s), self.fence.arg])
        return list(self.fence.check(answer, "the label join"))

    async def add_predictions(
        self, items: Sequence[tuple[str, Any]], now: float, step: str | None = None
    ) -> Joined:
        """Store what was predicted for each event; return ``(event_id, prediction, label)``
        for those whose label had already arrived. ``step`` names the call: one already
        applied answers as it did then (see the module docstring)."""
        return await self.add_prediction_lines(
            [event_id for event_id, _ in items], [orjson.dumps(v) for _, v in items], now, step
        )

    async def add_prediction_lines(
        self, ids: Sequence[str], lines: Sequence[bytes], now: float, step: str | None = None
    ) -> Joined:
        """:meth:`add_predictions` of values already encoded: ``lines[i]`` is the JSON of
        what was predicted for ``ids[i]``, without a raw newline (JSON never has one)."""
        return await self._store("p", "l", ids, lines, now, step)

    async def add_labels(
        self, items: Sequence[tuple[str, Any]], now: float, step: str | None = None
    ) -> Joined:
        """Store each label; return ``(event_id, prediction, label)`` for predictions found."""
        return await self.add_label_lines(
            [event_id for event_id, _ in items], [orjson.dumps(v) for _, v in items], now, step
        )

    async def add_label_lines(
        self, ids: Sequence[str], lines: Sequence[bytes], now: float, step: str | None = None
    ) -> Joined:
        """:meth:`add_labels` of values already encoded: ``lines[i]`` is the JSON of the
        label of ``ids[i]``, without a raw newline (JSON never has one)."""
        joined = await self._store("l", "p", ids, lines, now, step)
        return [(event_id, prediction, label) for event_id, label, prediction in joined]

    async def _store(
        self,
        mine: str,
        theirs: str,
        ids: Sequence[str],
        lines: Sequence[bytes],
        now: float,
        step: str | None,
    ) -> Joined:
        """Store ``lines`` on side ``mine``; ``(event_id, mine, theirs)`` of those joined."""
        flat = await self._call(mine, theirs, ids, lines, now, step)
        if not flat:
            return []
        where = {event_id: i for i, event_id in enumerate(ids)}  # the last one, as stored
        return [
            (
                as_text(flat[i]),
                orjson.loads(lines[where[as_text(flat[i])]]),
                orjson.loads(flat[i + 1]),
            )
            for i in range(0, len(flat), 2)
        ]

    async def sweep(self, now: float) -> dict[str, int]:
        """Expire entries older than the TTL and evict beyond the bound; return the counts."""
        answer = await self._sweep(
            keys=[*self.keys, self.fence.key],
            args=[now - self.ttl_s, self.max_items, self.fence.arg],
        )
        pe, pv, le, lv = self.fence.check(answer, "the label join's sweep")
        return {
            "expired_predictions": int(pe),
            "expired_labels": int(le),
            "evicted": int(pv) + int(lv),
        }

    async def stats(self) -> dict[str, int]:
        """Counters and the number of entries still waiting on each side."""
        raw = await self.client.hgetall(f"{self.prefix}:stats")
        counters = {as_text(k): int(v) for k, v in raw.items()}
        out = {
            name: counters.get(name, 0)
            for name in ("joined", "expired_predictions", "expired_labels", "evicted")
        }
        out.update(
            pending_predictions=counters.get("pending_p", 0),
            pending_labels=counters.get("pending_l", 0),
        )
        return out


__all__ = ["RING", "RedisLabelJoin", "join_keys", "retry_step"]
