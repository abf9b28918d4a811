"""One sink's delivery: the alerts stream read through the sink's consumer group, each alert
sent once, retried with backoff, recorded in Redis.

A :class:`SinkRunner` reads ``driftline:alerts`` as consumer ``<worker_id>`` of the group
``driftline-sink-<name>`` (created at the stream's end the first time: a new sink gets the
alerts raised from then on). It first takes back the entries it read and never acknowledged
(a crash or a stop in the middle of a retry), then new ones; every ``claim_after_s`` it also
takes over the entries another consumer of the group read and left that long (one that died
under another ``worker_id``), while an entry in retry is claimed again at each attempt so that
its idle time never reaches that. For each entry the sink takes
(:func:`~streams.sinks.routing.routed`) and has not delivered yet (the key
``{driftline:alerts}:sent:<name>:<alert_id>``), it tries until the receiver accepts it,
waiting ``first_backoff_s`` doubled after each failure up to ``max_backoff_s``; then one
script sets that key and acknowledges the entry together. An alert the receiver refuses for
good (:class:`~streams.sinks.transports.DeliveryError` ``permanent``) is logged, counted as
dropped and acknowledged: it would block every later one. A stop waits for the attempt in hand
and leaves the entry pending, so that the next start delivers it: each alert reaches each
sink once, across restarts and crashes alike, but for a crash between the receiver's answer
and the script, when the receiver gets the alert again with the same ``Idempotency-Key``.

A PagerDuty sink with ``resolve`` also remembers each condition it triggered (the hash
``{driftline:alerts}:open:<name>``, in the same script) and, between reads, resolves those
that cleared (:mod:`~streams.sinks.resolve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import orjson
from redis.exceptions import RedisError, ResponseError

from streams.adapters.redis_client import AsyncClient, as_text
from streams.config.sinks import PagerDutySink, SinkConfig
from streams.contracts.names import (
    ALERTS_KEY,
    sink_delivery_mark,
    sink_group,
    sink_open_hash,
)
from streams.sinks.resolve import Resolver
from streams.sinks.routing import condition_key, routed
from streams.sinks.status import SinkStatus
from streams.sinks.transports import DeliveryError, Transport

log = logging.getLogger("driftline.sinks")

SENT_TTL_S = 7 * 86_400  # longer than any alert waits in the capped stream
READ_COUNT = 50
BLOCK_MS = 1000

# KEYS: alerts stream, sent key, open hash. ARGV: group, entry id, delivered (1/0), ttl,
# open field ('' for none), open value. Recording and acknowledging are one step: no restart
# can see an alert delivered yet unacknowledged, or acknowledged yet unrecorded.
_DONE = """
if ARGV[3] == '1' then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], ARGV[5], ARGV[6]) end
end
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
"""


def entries_of(reply: Any) -> list[tuple[str, Mapping[Any, Any] | None]]:
    """The entries of an ``XREADGROUP`` reply on one stream, in either protocol's shape."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, Mapping) else [s[1] for s in reply]
    out: list[tuple[str, Mapping[Any, Any] | None]] = []
    for entries in streams:
        # RESP3 may nest [entries] once more: then the first item's first item is no id
        if entries and entries[0] and not isinstance(entries[0][0], bytes | str):
            entries = entries[0]
        out += [(as_text(e[0]), e[1] or None) for e in entries]
    return out


def decode_alert(fields: Mapping[Any, Any] | None) -> dict[str, Any] | None:
    """The alert of a stream entry (field ``alert``), None when it is gone or malformed."""
    if not fields:
        return None
    raw = fields.get(b"alert", fields.get("alert"))
    try:
        alert = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return None
    needed = ("alert_id", "model", "kind", "detector", "statistic", "threshold", "at")
    if not isinstance(alert, dict) or any(k not in alert for k in needed):
        return None
    return alert


class SinkRunner:
    """Delivers the alerts stream to one sink until stopped (see the module docstring)."""

    def __init__(
        self,
        name: str,
        sink: SinkConfig,
        redis: AsyncClient,
        transport: Transport,
        consumer: str,
        resolve_interval_s: float = 10.0,
        claim_after_s: float = 60.0,
    ) -> None:
        self.name = name
        self.sink = sink
        self.redis = redis
        self.transport = transport
        self.consumer = consumer
        self.group = sink_group(name)
        self.resolve_interval_s = resolve_interval_s
        self.claim_after_s = claim_after_s
        self.status = SinkStatus(name, sink.type, sink.failing_after)
        self.ready = asyncio.Event()  # set once the group exists
        self._done = redis.register_script(_DONE)
        self._resolves = isinstance(sink, PagerDutySink) and sink.resolve
        self.resolver = (
            Resolver(name, redis, transport, self.status, resolve_interval_s)
            if self._resolves
            else None
        )
        self._last_claim = 0.0
        self._claim_from = "0-0"

    async def ensure_group(self) -> None:
        """Create the sink's group at the end of the stream, unless it exists."""
        try:
            await self.redis.xgroup_create(ALERTS_KEY, self.group, id="$", mkstream=True)
            log.info("sink %s: consumer group %s created", self.name, self.group)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self.ready.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; Redis errors are retried after a pause."""
        while not stop.is_set():
            try:
                await self._run(stop)
            except RedisError as exc:
                log.warning("sink %s: Redis error (%s); again in a second", self.name, exc)
                await pause(stop, 1.0)
            except Exception:  # a sink that stops silently is an alert that reaches no one
                log.exception("sink %s: unexpected error; again in a second", self.name)
                await pause(stop, 1.0)

    async def _run(self, stop: asyncio.Event) -> None:
        await self.ensure_group()
        start = "0"  # first what this consumer read and never acknowledged
        while not stop.is_set():
            block = None if start == "0" else BLOCK_MS
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {ALERTS_KEY: start}, count=READ_COUNT, block=block
            )
            entries = entries_of(reply)
            if start == "0" and not entries:
                start = ">"
                continue
            for entry_id, fields in entries:
                if not await self.handle(entry_id, fields, stop):
                    return  # stopped with this entry pending
            if self.resolver is not None:
                await self.resolver.resolve_cleared()
            if await self.claim_abandoned():
                start = "0"  # they are this consumer's pending entries now

    async def handle(
        self, entry_id: str, fields: Mapping[Any, Any] | None, stop: asyncio.Event
    ) -> bool:
        """Deliver one entry if due and acknowledge it; False when stopped before that."""
        alert = decode_alert(fields)
        if alert is None or not routed(self.sink, alert):
            await self._finish(entry_id, None, delivered=False)
            return True
        sent = sink_delivery_mark(self.name, str(alert["alert_id"]))
        if await self.redis.exists(sent):
            await self._finish(entry_id, sent, delivered=False)
            return True
        outcome = await self.deliver(alert, stop, entry_id)
        if outcome is None:
            return False
        while True:  # delivered: it must be recorded, or the next start sends it again
            try:
                await self._finish(entry_id, sent, delivered=outcome, alert=alert)
                return True
            except RedisError as exc:
                if stop.is_set():
                    raise
                log.warning("sink %s: cannot record a delivery (%s); again", self.name, exc)
                await pause(stop, 1.0)

    async def claim_abandoned(self) -> bool:
        """Take over the entries another consumer of the group read and left for
        ``claim_after_s`` (a process that died under another ``worker_id``); True if any."""
        now = time.time()
        if now - self._last_claim < self.claim_after_s / 2:
            return False
        self._last_claim = now
        reply = await self.redis.xautoclaim(
            ALERTS_KEY,
            self.group,
            self.consumer,
            int(self.claim_after_s * 1000),
            start_id=self._claim_from,
            count=READ_COUNT,
        )  # not JUSTID: redis-py then drops the cursor from the reply
        self._claim_from = as_text(reply[0])
        if reply[1]:
            log.warning("sink %s: took over %d abandoned alerts", self.name, len(reply[1]))
        return bool(reply[1])

    async def _touch(self, entry_id: str) -> None:
        # an entry in retry stays this consumer's: claiming it resets its idle time
        try:
            await self.redis.xclaim(
                ALERTS_KEY, self.group, self.consumer, 0, [entry_id], justid=True
            )
        except RedisError as exc:
            log.debug("sink %s: cannot touch %s (%s)", self.name, entry_id, exc)

    async def deliver(
        self, alert: Mapping[str, Any], stop: asyncio.Event, entry_id: str | None = None
    ) -> bool | None:
        """Try until delivered (True), refused for good (False) or stopped (None)."""
        delay = self.sink.first_backoff_s
        while not stop.is_set():
            try:
                await self.transport.send(alert)
            except DeliveryError as exc:
                self.status.failure(exc, time.time())
                if exc.permanent:
                    self.status.dropped += 1
                    log.error(
                        "sink %s: alert %s refused, dropped: %s",
                        self.name,
                        alert["alert_id"],
                        exc.reason,
                    )
                    return False
                log.warning(
                    "sink %s: alert %s not delivered (%s); again in %.1f s",
                    self.name,
                    alert["alert_id"],
                    exc.reason,
                    delay,
                )
                # jitter: many sinks failing together do not retry in step
                await pause(stop, delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.sink.max_backoff_s)
                if entry_id is not None:
                    await self._touch(entry_id)
                continue
            self.status.success(time.time())
            self.status.delivered += 1
            return True
        return None

    async def _finish(
        self,
        entry_id: str,
        sent: str | None,
        *,
        delivered: bool,
        alert: Mapping[str, Any] | None = None,
    ) -> None:
        field, value = "", ""
        if delivered and alert is not None and self._resolves:
            field = condition_key(alert)
            doc = {k: alert.get(k) for k in ("model", "kind", "feature", "alert_id", "at")}
            value = orjson.dumps(doc).decode()
        keys = [ALERTS_KEY, sent or sink_delivery_mark(self.name, "-"), sink_open_hash(self.name)]
        args = [self.group, entry_id, "1" if delivered else "0", SENT_TTL_S, field, value]
        await self._done(keys=keys, args=args)

    async def measure_backlog(self) -> None:
        """Read how many entries the sink's group has yet to deliver (pending and unread)."""
        for group in await self.redis.xinfo_groups(ALERTS_KEY):
            g = {as_text(k): v for k, v in group.items()}
            if as_text(g.get("name")) == self.group:
                lag = g.get("lag")
                pending = int(g.get("pending") or 0)
                self.status.backlog = pending + (int(lag) if lag is not None else 0)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


__all__ = ["SENT_TTL_S", "SinkRunner", "decode_alert", "entries_of", "pause"]
