"""The owner's fence on a real Redis (one server and a Cluster): a stale owner writes nothing.

Two processes' views of one model's monitors: the first takes them over, then the second
does. Every write of the first (snapshot, health and history, window and shadow pairs, the
label join and its sweep) is refused and leaves the second's state as it was.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.adapters.redis_client import async_redis
from streams.adapters.redis_fence import OwnerFence
from streams.adapters.redis_join import RedisLabelJoin
from streams.adapters.redis_state import RedisMonitorRecords, RedisStateStore
from streams.contracts.names import health_key, model_prefix, pairs_key, state_key, window_key
from streams.errors import FencedError


def test_a_stale_owner_writes_nothing(any_redis: str, unique: str) -> None:
    model = f"fence-{unique}"

    async def run() -> None:
        client = async_redis(any_redis, None)

        def parts(fence: OwnerFence) -> tuple[RedisStateStore, RedisMonitorRecords, Any]:
            store = RedisStateStore(client, fence)
            records = RedisMonitorRecords(client, model, 100, 100, 10, fence)
            return store, records, RedisLabelJoin(client, model, 60.0, 100, fence)

        try:
            old, new = OwnerFence(client, model), OwnerFence(client, model)
            first, second = await old.take(), await new.take()
            assert second > first
            store, records, join = parts(new)
            await store.save(state_key(model), b'{"input_next": 9}')
            await records.keep([b'{"f": {}, "y": 1}'], {"2": ["11"]})
            await records.publish(b'{"status": "ok"}', b'{"t": 1}')
            await join.add_predictions([("e1", {"label": 1})], 100.0)

            stale_store, stale_records, stale_join = parts(old)
            writes = [
                stale_store.save(state_key(model), b'{"input_next": 3}'),
                stale_records.keep([b'{"f": {}, "y": 0}'], {"2": ["00"]}),
                stale_records.publish(b'{"status": "stale"}', b'{"t": 0}'),
                stale_join.add_labels([("e1", 0)], 101.0),
                stale_join.sweep(10_000.0),
            ]
            for write in writes:
                with pytest.raises(FencedError, match="another process took them over"):
                    await write

            assert await store.load(state_key(model)) == b'{"input_next": 9}'
            assert await client.xlen(window_key(model)) == 1
            assert await client.xlen(pairs_key(model, "2")) == 1
            assert await client.hget(health_key(model), "monitor") == b'{"status": "ok"}'
            stats = await join.stats()
            assert (stats["pending_predictions"], stats["joined"]) == (1, 0)
            # Redis lost the epoch (a restart without persistence): the stale owner's write
            # records its epoch, the newer owner's then wins the key back, and the stale one
            # is refused again
            await client.delete(new.key)
            await stale_store.save(state_key(model), b'{"input_next": 4}')
            await store.save(state_key(model), b'{"input_next": 10}')
            with pytest.raises(FencedError):
                await stale_store.save(state_key(model), b'{"input_next": 5}')
            assert await store.load(state_key(model)) == b'{"input_next": 10}'
            # ... and a takeover after the loss outranks every older owner
            await client.delete(new.key)
            latest = OwnerFence(client, model)
            assert await latest.take() > second
            # a process that never took the monitors over writes unchecked (tests, tools)
            await RedisStateStore(client).save(state_key(model), b"{}")
        finally:
            async for key in client.scan_iter(match=f"{model_prefix(model)}*"):
                await client.delete(key)
            await client.aclose()

    asyncio.run(run())
