"""The live alerts feed: ``driftline:alerts`` as server-sent events.

Each alert the sink appends to the stream is sent as one event whose ``id`` is its stream id,
so a browser that reconnects (``EventSource`` sends ``Last-Event-ID`` by itself) resumes
exactly after the last alert it showed: none is lost or shown twice. The feed reads the stream
with a blocking ``XREAD`` rather than the pub/sub channel: the stream keeps what was appended
while nobody listened, and the same read works on one server and on a Redis Cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from streams.adapters.redis_client import AsyncClient, as_text
from streams.contracts.names import ALERTS_KEY
from streams.ui.data import matches

BLOCK_MS = 1_000  # one read waits this long at most: a new alert is sent as soon as it lands
KEEPALIVE_S = 15.0  # a comment line this often keeps idle proxies from closing the stream
RETRY_MS = 1_000  # how soon a browser reconnects after the stream broke


def sse(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One server-sent event (``data`` is one line of JSON).

    >>> sse("alert", b'{"kind":"data_drift"}', "1-0")
    b'id: 1-0\\nevent: alert\\ndata: {"kind":"data_drift"}\\n\\n'
    """
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\n".encode() + b"data: " + data + b"\n\n"


async def start_after(redis: AsyncClient, last_event_id: str | None) -> str:
    """Where the feed starts: after the browser's last event, else after the newest alert."""
    if last_event_id:
        return last_event_id
    newest: Any = await redis.xrevrange(ALERTS_KEY, count=1)
    return as_text(newest[0][0]) if newest else "0-0"


async def alert_events(
    redis: AsyncClient, after: str, *, model: str | None, kind: str | None
) -> AsyncIterator[bytes]:
    """Server-sent events of every alert after stream id ``after``, until cancelled.

    The first event (``ready``) says the feed is open (and how soon to reconnect); then one
    ``alert`` event per alert of ``model`` and ``kind`` (either None: any), and a comment
    when idle.
    """
    yield f"retry: {RETRY_MS}\n".encode() + sse("ready", orjson.dumps({"after": after}))
    idle = 0.0
    while True:
        found: Any = await redis.xread({ALERTS_KEY: after}, block=BLOCK_MS, count=100)
        if not found:
            idle += BLOCK_MS / 1000
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield b": idle\n\n"
            continue
        idle = 0.0
        for _, entries in found:
            for entry_id, fields in entries:
                after = as_text(entry_id)
                raw = fields.get(b"alert")
                alert = orjson.loads(raw) if raw else None
                if isinstance(alert, dict) and matches(alert, model, kind):
                    yield sse("alert", orjson.dumps({**alert, "stream_id": after}), after)


__all__ = ["BLOCK_MS", "KEEPALIVE_S", "RETRY_MS", "alert_events", "sse", "start_after"]
