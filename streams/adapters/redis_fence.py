"""Fencing of a model's monitors in Redis: every write of the owner checks its epoch.

A process that takes a model's monitors over raises the model's ownership epoch
(``INCR driftline:{<name>}:owner``) and keeps the value it got. Each of its writes (snapshot,
health and history, training window and shadow pairs, the label join) is a Lua script that
first compares the key with that value, in the same script: an owner that stalled past its
session (a long pause, a frozen VM) and wakes up after another process took over finds a
newer epoch and writes nothing; the script answers :data:`REFUSED` and the caller raises
:class:`~streams.errors.FencedError`. The epoch key shares the model's hash tag, so it lies
in the slot of the keys it guards on a Redis Cluster.

A process that never took the monitors over (a test driving them directly, a one-off
command) has no epoch and writes unchecked.
"""

from __future__ import annotations

from typing import Any

from streams.adapters.redis_client import AsyncClient
from streams.contracts.names import owner_key
from streams.errors import FencedError

REFUSED = -1
# The first lines of every fenced script: the epoch key is the last of its KEYS, the epoch
# the last of its ARGV ("" for a writer without one).
FENCE_LUA = """
local fence_epoch = ARGV[#ARGV]
if fence_epoch ~= '' and redis.call('GET', KEYS[#KEYS]) ~= fence_epoch then
  return {-1}
end
"""


class OwnerFence:
    """The ownership epoch of one model's monitors in this process."""

    def __init__(self, redis: AsyncClient, model: str) -> None:
        self.redis = redis
        self.model = model
        self.key = owner_key(model)
        self.epoch: int | None = None

    async def take(self) -> int:
        """Take the monitors over: a new epoch, newer than any other process's."""
        self.epoch = int(await self.redis.incr(self.key))
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
