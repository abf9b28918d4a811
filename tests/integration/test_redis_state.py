"""The Redis StateStore and AlertSink of the monitors on the session's real redis-server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from monitoring.state import AlertSink, StateStore, load_state, save_state
from streams.adapters.redis_alerts import RedisAlertSink
from streams.adapters.redis_client import async_redis
from streams.adapters.redis_state import RedisStateStore
from streams.contracts.names import ALERT_DEDUPE_PREFIX, ALERTS_KEY, state_key


def test_state_store_saves_and_loads_a_snapshot(any_redis: str, unique: str) -> None:
    async def run() -> None:
        client = async_redis(any_redis, None)
        key = state_key(f"store-{unique}")
        try:
            store: StateStore = RedisStateStore(client)
            assert await store.load(key) is None
            assert await load_state(store, key) is None
            await save_state(store, key, {"monitor": {"n": 1}, "input_next": 7})
            assert await load_state(store, key) == {"monitor": {"n": 1}, "input_next": 7}
            await store.save(key, b'{"n": 2}')  # a save replaces the whole value
            assert await store.load(key) == b'{"n": 2}'
            assert await client.type(key) == b"string"
        finally:
            await client.delete(key)
            await client.aclose()

    asyncio.run(run())


def test_alert_sink_delivers_once_per_cooldown_on_stream_and_channel(
    any_redis: str, unique: str
) -> None:
    model = f"sink-{unique}"

    def alert(kind: str, feature: str | None, n: int) -> dict[str, object]:
        return {
            "alert_id": f"{unique}-{n}",
            "kind": kind,
            "model": model,
            "version": "v1",
            "feature": feature,
            "at": float(n),
        }

    async def run() -> None:
        client = async_redis(any_redis, None)
        await client.exists(ALERTS_KEY)  # a cluster client learns its slots on first use
        sub: Any = client.pubsub()  # a cluster's or a server's: both subscribe alike
        await sub.subscribe(ALERTS_KEY)
        try:
            sink: AlertSink = RedisAlertSink(client, cooldown_s=60.0, maxlen=10_000)
            first = [alert("data_drift", "x0", 1), alert("data_drift", "x1", 2)]
            assert await sink.emit(first) == first
            # the same (model, version, kind, feature) within the cooldown, from any process
            again = [alert("data_drift", "x0", 3), alert("performance", None, 4)]
            other = RedisAlertSink(client, cooldown_s=60.0, maxlen=10_000)
            assert await other.emit(again) == [again[1]]
            assert await sink.emit([]) == []

            entries: Any = await client.xrange(ALERTS_KEY)
            mine = [
                orjson.loads(fields[b"alert"])
                for _, fields in entries
                if orjson.loads(fields[b"alert"])["model"] == model
            ]
            assert [a["alert_id"] for a in mine] == [f"{unique}-{n}" for n in (1, 2, 4)]
            published: list[str] = []
            deadline = time.monotonic() + 10.0
            while len(published) < 3 and time.monotonic() < deadline:
                msg = await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:  # the subscription's confirmation, or nothing yet
                    continue
                body = orjson.loads(msg["data"])
                if body["model"] == model:
                    published.append(body["alert_id"])
            assert published == [f"{unique}-{n}" for n in (1, 2, 4)]
            ttl = await client.ttl(f"{ALERT_DEDUPE_PREFIX}{model}:v1:data_drift:x0")
            assert 0 < ttl <= 60
        finally:
            await sub.unsubscribe(ALERTS_KEY)
            await sub.aclose()
            keys = [k async for k in client.scan_iter(match=f"{ALERT_DEDUPE_PREFIX}{model}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(run())
