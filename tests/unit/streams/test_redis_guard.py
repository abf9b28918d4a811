"""RedisGuard: a failed call degrades the monitors; a join step is sent again through a failover."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from streams.errors import FencedError
from streams.monitors.guard import RedisGuard


class _Flaky:
    """A Redis call that fails ``failures`` times, then answers ``"ok"``."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or RedisConnectionError("Error 111 connecting")
        self.sent = 0

    async def __call__(self) -> Any:
        self.sent += 1
        if self.sent <= self.failures:
            raise self.error
        return "ok"


def test_a_failed_call_degrades_and_the_next_good_one_recovers() -> None:
    guard = RedisGuard()
    call = _Flaky(1)
    assert asyncio.run(guard("join", call())) is None
    assert guard.degraded is not None and "join" in guard.degraded
    assert asyncio.run(guard("join", call())) == "ok"
    assert guard.degraded is None


def test_persist_sends_the_step_again_until_redis_answers() -> None:
    guard = RedisGuard()
    call = _Flaky(3)
    assert asyncio.run(guard.persist("join", call, patience_s=5.0)) == "ok"
    assert call.sent == 4
    assert guard.degraded is None


def test_persist_gives_up_after_its_patience_degraded() -> None:
    guard = RedisGuard()
    call = _Flaky(1_000)
    assert asyncio.run(guard.persist("join", call, patience_s=0.3)) is None
    assert 2 <= call.sent < 1_000
    assert guard.degraded is not None


def test_persist_never_resends_a_fenced_write() -> None:
    fenced: list[bool] = []
    guard = RedisGuard(on_fenced=lambda: fenced.append(True))
    call = _Flaky(1_000, FencedError("another owner holds the monitors"))
    assert asyncio.run(guard.persist("join", call, patience_s=5.0)) is None
    assert call.sent == 1 and guard.refused == 1 and fenced == [True]
