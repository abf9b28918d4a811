"""Redis round trip on the session's real redis-server."""

from __future__ import annotations

import redis

from tests.conftest import Endpoints


def test_redis_write_read_stream_and_pubsub(services: Endpoints, unique: str) -> None:
    client = redis.Redis.from_url(services.redis, decode_responses=True)
    key = f"test:{unique}"
    pipe = client.pipeline()
    pipe.hset(f"{key}:hash", mapping={"a": "1", "b": "2"})
    pipe.xadd(f"{key}:stream", {"kind": "data_drift"}, maxlen=10, approximate=False)
    pipe.execute()
    assert client.hgetall(f"{key}:hash") == {"a": "1", "b": "2"}
    entries = client.xrange(f"{key}:stream")
    assert [fields for _, fields in entries] == [{"kind": "data_drift"}]

    sub = client.pubsub()
    sub.subscribe(f"{key}:chan")
    assert sub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    assert client.publish(f"{key}:chan", "hello") == 1
    msg = sub.get_message(timeout=2)
    assert msg is not None and msg["data"] == "hello"
    sub.close()
    client.delete(f"{key}:hash", f"{key}:stream")
    client.close()
