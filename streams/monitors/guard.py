"""Redis calls that degrade the monitors rather than fail them: :class:`RedisGuard`.

When Redis is unreachable, scoring goes on: monitoring keeps its state in memory, logs one
warning, marks itself degraded in health, and writes again once Redis answers. A call that
applies once however often it is sent (a label-join step, which names itself) is sent again
through a failover, for up to ``patience_s`` (:meth:`RedisGuard.persist`): a replica takes
over within seconds, and a join step given up would lose its labels for good. A write that
the owner's fence refused (another process owns the monitors now) is counted in
:attr:`RedisGuard.refused` and reported to ``on_fenced``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from streams.errors import FencedError

log = logging.getLogger("driftline.monitor")


class RedisGuard:
    """Awaits Redis calls; a failure yields None and marks :attr:`degraded`, once logged."""

    def __init__(self, on_fenced: Callable[[], None] | None = None) -> None:
        self.degraded: str | None = None
        self.refused = 0
        self.on_fenced = on_fenced
        self._failed_at = 0.0

    async def __call__(self, what: str, call: Awaitable[Any]) -> Any:
        """The result of ``call``, or None when Redis failed (``what`` names it in the log)."""
        return (await self._once(what, call))[1]

    async def persist(
        self, what: str, call: Callable[[], Awaitable[Any]], patience_s: float
    ) -> Any:
        """The result of ``call()``, sent again while Redis fails for up to ``patience_s``
        (then None, degraded). Only for a call that applies once however often it is sent."""
        deadline = time.monotonic() + patience_s
        pause = 0.05
        while True:
            failed, result = await self._once(what, call())
            if not failed or time.monotonic() + pause > deadline:
                return result
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def _once(self, what: str, call: Awaitable[Any]) -> tuple[bool, Any]:
        """(whether Redis failed, the result or None)."""
        started = time.monotonic()
        try:
            result = await call
        except FencedError as exc:
            self.refused += 1
            log.warning("%s (%d refused)", exc, self.refused)
            if self.on_fenced is not None:
                self.on_fenced()
            return False, None
        except (RedisError, OSError) as exc:
            if self.degraded is None:
                log.warning("monitoring degraded: Redis %s failed (%s); scoring goes on", what, exc)
            self.degraded = f"redis {what}: {exc}"
            self._failed_at = time.monotonic()
            return True, None
        # Only a call that began after the last failure proves that Redis is back: one that
        # was already under way (the timer and the agent share this flag) proves nothing.
        if self.degraded is not None and started > self._failed_at:
            log.warning("monitoring recovered: Redis answers again")
            self.degraded = None
        return False, result


__all__ = ["RedisGuard"]
