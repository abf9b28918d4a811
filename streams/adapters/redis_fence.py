"""Fencing of a model's monitors in Redis: every write of the owner checks its epoch.

A process that takes a model's monitors over raises the model's ownership epoch
(``driftline:{<name>}:owner``: one above its value, and at least the time in milliseconds, so
that it still outranks older owners if Redis lost the key) and keeps the value it got. Each
of its writes (snapshot, health and history, training window and shadow pairs, the label
join) is a Lua script that first compares the key with that value, in the same script: an
owner that stalled past its session (a long pause, a frozen VM) and wakes up after another
process took over finds a newer epoch and writes nothing; the script answers
:data:`REFUSED` and the caller raises :class:`~streams.errors.FencedError`. A write with a
newer epoch than the key's records it (the key was lost with Redis's data), so the newest
owner wins the key back and never stays refused. The epoch key shares the model's hash tag,
so it lies in the slot of the keys it guards on a Redis Cluster.

A process that never took the monitors over (a test driving them directly, a one-off
command) has no epoch and writes unchecked.
"""

from __future__ import annotations

import time
from typing import Any

from streams.adapters.redis_client import AsyncClient
from streams.contracts.names import owner_key
from streams.errors import FencedError

REFUSED = -1
# The first lines of every fenced script: the epoch key is the last of its KEYS, the epoch
# the last of its ARGV ("" for a writer without one). A newer epoch than the key's is
# recorded (the key was lost with Redis's data: the newest writer wins it back), an older
# one refused.
FENCE_LUA = """
local fence_epoch = ARGV[#ARGV]
if fence_epoch ~= '' then
  local fence_now = tonumber(redis.call('GET', KEYS[#KEYS]) or '0')
  local fence_mine = tonumber(fence_epoch)
  if fence_now > fence_mine then return {-1} end
  if fence_now < fence_mine then redis.call('SET', KEYS[#KEYS], fence_epoch) end
end
"""

# KEYS: the epoch key. ARGV: the time in ms. The next epoch is above the key's and at least
# the time, so that after Redis lost the key a new owner still outranks every older one.
_TAKE = """
local e = math.max(tonumber(redis.call('GET', KEYS[1]) or '0') + 1, tonumber(ARGV[1]))
local text = string.format('%d', e)
redis.call('SET', KEYS[1], text)
return text
"""


class OwnerFence:
    """The ownership epoch of one model's monitors in this process."""

    def __init__(self, redis: AsyncClient, model: str) -> None:
        self.redis = redis
        self.model = model
        self.key = owner_key(model)
        self.epoch: int | None = None
        self._take = redis.register_script(_TAKE)

    async def take(self) -> int:
        """Take the monitors over: a new epoch, newer than any other process's."""
        answer = await self._take(keys=[self.key], args=[int(time.time() * 1000)])
        self.epoch = int(answer)
        return self.epoch

    @property
    def arg(self) -> str:
        """The epoch as a fenced script's last argument."""
        return "" if self.epoch is None else str(self.epoch)

    def check(self, answer: Any, what: str) -> Any:
        """``answer`` of a fenced script, or :class:`FencedError` when it refused."""
        if isinstance(answer, list) and len(answer) == 1 and answer[0] == REFUSED:
            raise FencedError(
                f"{what} of {self.model}'s monitors refused: another process took them over "
                f"after epoch {self.epoch}"
            )
        return answer


__all__ = ["FENCE_LUA", "REFUSED", "OwnerFence"]
