"""A minimal Faust app for the broker round-trip test: one agent relays SOURCE to SINK.

Run as ``python relay_app.py worker``; configured by the environment so that every test run
uses its own topics and consumer group.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import faust
import orjson

app = faust.App(
    os.environ["RELAY_APP_ID"],
    broker=f"kafka://{os.environ['RELAY_BOOTSTRAP']}",
    value_serializer="raw",
    key_serializer="raw",
    web_enabled=False,
    store="memory://",
    consumer_auto_offset_reset="earliest",
    topic_partitions=4,
)
source = app.topic(os.environ["RELAY_SOURCE"], key_type=bytes, value_type=bytes, partitions=4)
sink = app.topic(os.environ["RELAY_SINK"], key_type=bytes, value_type=bytes, partitions=4)


@app.agent(source)
async def relay(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
    async for event in stream.events():
        value = orjson.loads(event.value)
        value["src_partition"] = event.message.partition
        value["src_offset"] = event.message.offset
        await sink.send(key=event.key, value=orjson.dumps(value))
        yield None


if __name__ == "__main__":
    app.main()
