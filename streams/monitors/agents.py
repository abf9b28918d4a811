"""Monitoring agents: one owner per model sees the whole stream, however many workers score it.

Every worker reduces what it scored to a mergeable summary per variant, with the label join's
columns (:mod:`streams.monitors.summaries`: one record per batch, no raw features beyond the
retraining sample) and sends it, with the labels it consumed, to the ``monitor-input`` topic,
**keyed by model**: all of
a model's monitoring input lands on one partition, so exactly one process at a time — the one
Kafka assigns that partition to (:mod:`streams.monitors.input`) — runs the model's monitors.
When ownership moves (a rebalance, a restart), the new owner resumes from the model's snapshot
in Redis and reads on from the offset recorded in it. The owner is a worker
(``monitor_in_worker``, the default) or ``driftline monitor``, a process of its own.

The owner's own scored batches skip the topic (:class:`MonitorFeed`), reduced by the same
code: a broker round trip per batch would only add latency.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast

import faust
import numpy as np
import orjson
from faust.streams import Stream
from pydantic import ValidationError

from models.card import ModelCard
from streams.adapters.faust_app import faust_app, faust_worker
from streams.config.settings import Settings
from streams.contracts.messages import Label
from streams.contracts.names import monitor_app_id
from streams.monitors.input import MonitorInput, Observe
from streams.monitors.runtime import MonitorRuntime, Send
from streams.monitors.summaries import (
    Reduced,
    Reducer,
    decode_record,
    encode_record,
    merge_reduced,
    split_scored,
)
from streams.scoring.batch import BatchResult, BatchScorer, Encoded, RawRecord, Scored

log = logging.getLogger("driftline.monitor")

Deliver = Callable[[str, Sequence[Encoded]], Awaitable[list[Awaitable[Any]]]]


def delivery(app: faust.App) -> Deliver:
    """Return ``deliver(topic, messages)``: send through the app's producer, return the acks."""

    async def deliver(topic: str, messages: Sequence[Encoded]) -> list[Awaitable[Any]]:
        producer = app.producer
        return [await producer.send(topic, k, v, None, None, None) for k, v in messages]

    return deliver


def sender(deliver: Deliver, model: str) -> Send:
    """Return ``send(topic, payloads)``: produce keyed by the model and await the acks."""
    key = model.encode()

    async def send(topic: str, payloads: list[bytes]) -> None:
        await asyncio.gather(*await deliver(topic, [(key, p) for p in payloads]))

    return send


def scored_records(reduced: Sequence[Reduced]) -> list[bytes]:
    """The monitoring input of one reduced batch (:meth:`Reducer.reduce`): one record."""
    return [encode_record(reduced)] if reduced else []


def _events(parts: Sequence[Reduced]) -> int:
    return max((r.summary.rows for r in parts), default=0)


def scored_parts(record: dict[str, Any], reducer: Reducer | None = None) -> list[Reduced]:
    """The parts of one ``monitor-input`` record of scored events, decoded (the owner's side).

    A record of the format before summaries (``kind`` ``scored``: each event's features) is
    reduced here by ``reducer``, as its worker would now have done.
    """
    if record["kind"] == "summary":
        return decode_record(record)
    if reducer is None:
        raise ValueError("a record with features needs a reducer")
    parts = [
        Scored(
            p["variant"],
            p["version"],
            p["ids"],
            p["features"],
            np.asarray(p["labels"], dtype=np.int64),
            np.asarray(p["scores"], dtype=np.float32),
            context=p.get("context"),
        )
        for p in record["parts"]
    ]
    return reducer.reduce(parts)


def add_label_forwarder(
    app: faust.App, settings: Settings, model: str, scorer: BatchScorer, deliver: Deliver
) -> None:
    """Every worker: validate labels (bad ones to the DLQ), forward them to the model's owner."""
    labels = app.topic(
        settings.topic_labels,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.topic_partitions,
    )
    key = model.encode()

    @app.agent(labels, name=f"labels-{model}")
    async def forward(agent_stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        stream = cast(Stream[bytes], agent_stream)
        wait = settings.batch_wait_ms / 1000
        async for batch in stream.take_events(settings.batch_size, within=wait):
            good: list[tuple[str, Any]] = []
            dead: list[Encoded] = []
            for e in batch:
                try:
                    label = Label.model_validate_json(e.value or b"")
                except ValidationError as exc:
                    msg = e.message
                    rec = RawRecord(e.value, e.key, msg.topic, msg.partition, msg.offset)
                    first = exc.errors(include_url=False)[0]
                    where = ".".join(str(p) for p in first["loc"]) or "label"
                    dead.append(scorer.dead_letter(rec, f"{where}: {first['msg']}", "LabelError"))
                    continue
                if label.is_for(model):  # another model's label never waits in this join
                    good.append((label.event_id, label.label))
            out = [(key, orjson.dumps({"kind": "labels", "items": good}))] if good else []
            acks = await deliver(settings.topic_monitor, out)
            acks += await deliver(settings.topic_dlq, dead)
            await asyncio.gather(*acks)  # forwarded before these labels may be committed
            yield None


async def _observe(
    monitor: MonitorRuntime,
    work: Callable[[], Awaitable[None]],
    next_offset: int | None = None,
) -> None:
    """Run one piece of monitoring input through the monitors, then the periodic work.

    ``next_offset`` (after a record of the topic's) is recorded with its effect, under the
    lock that keeps a snapshot from falling between the two, and before the periodic work,
    whose snapshot holds that effect: a successor reads on after the record, never applies
    it twice. A record that waited for the lock while the monitors were handed over is left
    to the next owner, who reads it again.
    """
    async with monitor.lock:
        if next_offset is not None and not monitor.owned:
            return
        try:
            try:
                await work()
            finally:
                if next_offset is not None:
                    monitor.input_next = next_offset
            await monitor.tick()
        except Exception:
            # A monitoring bug never stops the agent (nor scoring): log, flag, go on.
            log.exception("monitoring failed on a record")
            monitor.degraded = "monitor error (see log)"


async def _record_call(monitor: MonitorRuntime, value: bytes | None, step: str) -> None:
    record = orjson.loads(value or b"")
    if record["kind"] in ("summary", "scored"):
        await monitor.on_scored(scored_parts(record, monitor.reducer), step)
    else:
        await monitor.on_labels([tuple(item) for item in record["items"]], step)


def record_observer(monitor: MonitorRuntime) -> Observe:
    """``observe(value, next_offset)``: one ``monitor-input`` record through ``monitor``, the
    offset that follows it recorded with its effect (:class:`MonitorInput`'s callback)."""

    async def observe(value: bytes | None, next_offset: int) -> None:
        # the record's offset names its join step: replayed after a crash, it applies once
        step = f"input:{next_offset - 1}"
        await _observe(monitor, lambda: _record_call(monitor, value, step), next_offset)

    return observe


class MonitorFeed:
    """Where a worker's scored batches go for monitoring, reduced by ``reducer``.

    To the ``monitor-input`` topic, encoded (:func:`scored_records`), unless this process owns
    the model's monitors: then straight to them through a queue of at most ``max_events``
    events. When the monitors fall that far behind, batches take the topic again, so that
    scoring never waits on monitoring. A crash loses to the monitors what they had observed of
    the queue since the last snapshot (the topic's records are replayed, these are not); with
    ``monitor_local_feed`` false every batch takes the topic. The predictions themselves are
    sent and committed by the scoring loop either way.

    The monitors see the queue ``merge_events`` at a time, or what gathered within
    ``linger_s`` of the first batch, merged (:func:`merge_reduced`): each call costs a Redis
    round trip whatever its size, so that observing a scoring batch at a time (256 events)
    cost 6.2 µs per event where 4,096 at a time cost 3.4.
    """

    def __init__(
        self,
        model: str,
        monitor: MonitorRuntime | None,
        reducer: Reducer,
        max_events: int = 16_384,
        merge_events: int = 4_096,
        linger_s: float = 0.05,
        record_events: int = 4_096,
    ) -> None:
        self.model = model
        self.key = model.encode()
        self.monitor = monitor
        self.reducer = reducer
        self.queue: asyncio.Queue[list[Reduced]] = asyncio.Queue()
        self.queued_events = 0  # in the queue or being observed
        self.local_batches = 0
        self.max_events = max_events
        self.merge_events = merge_events
        self.linger_s = linger_s
        # events per monitor-input record: ~40 bytes each, far below the broker's limit
        self.record_events = record_events

    def route(self, result: BatchResult) -> list[Encoded]:
        """Take ``result`` in-process when possible; return the records still to send."""
        monitor = self.monitor
        local = monitor is not None and monitor.owned and monitor.settings.monitor_local_feed
        if local and self.queued_events < self.max_events:
            reduced = self.reducer.reduce(result.scored)
            self.queue.put_nowait(reduced)
            self.queued_events += _events(reduced)
            self.local_batches += 1
            return []
        return [
            (self.key, value)
            for chunk in split_scored(result.scored, self.record_events)
            for value in scored_records(self.reducer.reduce(chunk))
        ]

    async def run(self) -> None:
        """Feed the monitors from the queue (an app task of the owner)."""
        monitor = self.monitor
        if monitor is None:
            return
        while True:
            batches = [await self.queue.get()]
            if self.queued_events < self.merge_events:
                await asyncio.sleep(self.linger_s)  # let more gather: one call for them all
            events = _events(batches[0])
            while not self.queue.empty() and events < self.merge_events:
                batches.append(self.queue.get_nowait())
                events += _events(batches[-1])
            try:
                merged = merge_reduced(batches)
                await _observe(monitor, functools.partial(monitor.on_scored, merged))
            finally:
                self.queued_events -= events
                for _ in batches:
                    self.queue.task_done()

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until the monitors have seen every queued batch (before a snapshot)."""
        try:
            await asyncio.wait_for(self.queue.join(), timeout_s)
        except TimeoutError:
            left = self.queue.qsize()
            log.warning("monitoring: %d batches not observed before the snapshot", left)


def add_monitor_agent(
    app: faust.App,
    settings: Settings,
    bootstrap: str,
    monitor: MonitorRuntime,
    feed: MonitorFeed | None = None,
    before_stop: Callable[[], Awaitable[None]] | None = None,
) -> MonitorInput:
    """The owner side: feed the monitors from ``monitor-input`` (:class:`MonitorInput`) and
    from ``feed``, the worker's own batches, while this process owns them; snapshot on a
    timer; hand over on a stop, after ``before_stop`` (the worker's scoring loop finishing
    its batches: Faust's shutdown handlers run in no set order)."""

    reader = MonitorInput(settings, bootstrap, monitor, record_observer(monitor), feed)
    app.task(reader.run)
    if feed is not None:
        app.task(feed.run)

    async def snapshot() -> None:
        # Only the owner writes: another worker's runtime holds a stale copy (or none).
        async with monitor.lock:
            if not monitor.owned:
                return
            try:
                await monitor.tick(force=True)
            except Exception:
                log.exception("monitoring snapshot failed")

    app.timer(interval=settings.snapshot_interval_s)(snapshot)

    async def on_shutdown(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        if before_stop is not None:
            await before_stop()
        await reader.stop()  # Faust sends no revocation on a stop: the reader hands over

    app.on_before_shutdown.connect(on_shutdown)
    return reader


def create_monitor_app(
    settings: Settings,
    bootstrap: str,
    model: str,
    card: ModelCard,
    redis_url: str,
    card_loader: Callable[[str], ModelCard | None],
) -> tuple[faust.App, MonitorRuntime]:
    """``driftline monitor``: a process of its own that owns the model's monitors.

    Workers then run with ``monitor_in_worker=false``: they score, forward labels and send
    their monitoring input; this process consumes it.
    """
    app = faust_app(settings, bootstrap, monitor_app_id(model))
    monitor = MonitorRuntime(
        settings, model, card, redis_url, sender(delivery(app), model), card_loader=card_loader
    )
    add_monitor_agent(app, settings, bootstrap, monitor)
    return app, monitor


__all__ = [
    "MonitorFeed",
    "add_label_forwarder",
    "add_monitor_agent",
    "create_monitor_app",
    "delivery",
    # re-exported from streams.adapters.faust_app: the command line and bench import them here
    "faust_app",
    "faust_worker",
    "record_observer",
    "scored_parts",
    "scored_records",
    "sender",
]
