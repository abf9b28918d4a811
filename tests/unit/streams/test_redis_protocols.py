"""The Redis store and sink are the monitoring library's StateStore and AlertSink."""

from __future__ import annotations

import asyncio
import inspect

import redis.asyncio as aioredis

from monitoring.state import AlertSink, StateStore
from streams.adapters.redis_alerts import RedisAlertSink, dedupe_suffix
from streams.adapters.redis_state import RedisStateStore


def test_redis_store_and_sink_implement_the_protocols() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")  # never connects
    try:
        store: StateStore = RedisStateStore(client)
        sink: AlertSink = RedisAlertSink(client, cooldown_s=60.0, maxlen=100)
        assert isinstance(store, StateStore)
        assert isinstance(sink, AlertSink)
        # runtime_checkable looks at names only: the methods are coroutines, as the protocols
        for method in (store.load, store.save, sink.emit):
            assert inspect.iscoroutinefunction(method)
    finally:
        asyncio.run(client.aclose())


def test_an_alert_is_the_same_one_by_model_version_kind_and_feature() -> None:
    alert = {"model": "m", "version": "v1", "kind": "data_drift", "feature": "x0", "at": 1.0}
    assert dedupe_suffix(alert) == "m:v1:data_drift:x0"
    assert dedupe_suffix({**alert, "feature": None}) == "m:v1:data_drift:"
