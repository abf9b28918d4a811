"""The monitoring agents of a worker: labels in, snapshots and health out on a timer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import faust
from faust.streams import Stream
from pydantic import ValidationError

from models.card import ModelCard
from streams.messages import Label
from streams.monitor_runtime import MonitorRuntime, Send
from streams.scoring import BatchResult, BatchScorer, Encoded, RawRecord
from streams.settings import Settings

log = logging.getLogger("driftline.monitor")

Deliver = Callable[[str, list[Encoded]], Awaitable[list[Awaitable[Any]]]]


def delivery(app: faust.App) -> Deliver:
    """Return ``deliver(topic, messages)``: send through the app's producer, return the acks."""

    async def deliver(topic: str, messages: list[Encoded]) -> list[Awaitable[Any]]:
        producer = app.producer
        return [await producer.send(topic, k, v, None, None, None) for k, v in messages]

    return deliver


def sender(deliver: Deliver, model: str) -> Send:
    """Return ``send(topic, payloads)``: produce keyed by the model and await the acks."""
    key = model.encode()

    async def send(topic: str, payloads: list[bytes]) -> None:
        await asyncio.gather(*await deliver(topic, [(key, p) for p in payloads]))

    return send


async def observe_safely(monitor: MonitorRuntime, result: BatchResult) -> None:
    """Feed a scored batch to the monitors; a monitoring bug never stops scoring."""
    try:
        await monitor.on_scored(result.scored)
        await monitor.tick()
    except Exception:
        log.exception("monitoring failed on a batch; scoring goes on")
        monitor.degraded = "monitor error (see log)"


def add_monitoring(
    app: faust.App,
    settings: Settings,
    monitor: MonitorRuntime,
    scorer: BatchScorer,
    deliver: Deliver,
    *,
    labels: bool = True,
) -> None:
    """Register the snapshot timer, and the labels agent unless ``labels`` is False."""

    async def snapshot() -> None:
        try:
            await monitor.tick(force=True)
        except Exception:
            log.exception("monitoring snapshot failed")

    app.timer(interval=settings.snapshot_interval_s)(snapshot)
    if labels:
        _add_labels_agent(app, settings, monitor, scorer, deliver)


def _add_labels_agent(
    app: faust.App,
    settings: Settings,
    monitor: MonitorRuntime,
    scorer: BatchScorer,
    deliver: Deliver,
) -> None:
    labels = app.topic(
        settings.topic_labels,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.topic_partitions,
    )

    @app.agent(labels, name=f"labels-{monitor.model}")
    async def on_labels(agent_stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        stream = cast(Stream[bytes], agent_stream)
        async for batch in stream.take_events(
            settings.batch_size, within=settings.batch_wait_ms / 1000
        ):
            good: list[tuple[str, Any]] = []
            dead: list[Encoded] = []
            for e in batch:
                try:
                    label = Label.model_validate_json(e.value or b"")
                except ValidationError as exc:
                    rec = RawRecord(
                        e.value, e.key, e.message.topic, e.message.partition, e.message.offset
                    )
                    first = exc.errors(include_url=False)[0]
                    where = ".".join(str(p) for p in first["loc"]) or "label"
                    dead.append(scorer.dead_letter(rec, f"{where}: {first['msg']}", "LabelError"))
                    continue
                good.append((label.event_id, label.label))
            if dead:
                for ack in await deliver(settings.topic_dlq, dead):
                    await ack
            try:
                await monitor.on_labels(good)
                await monitor.tick()
            except Exception:
                log.exception("monitoring failed on %d labels", len(good))
                monitor.degraded = "monitor error (see log)"
            yield None


def create_monitor_app(
    settings: Settings, bootstrap: str, model: str, cards: list[ModelCard], redis_url: str
) -> tuple[faust.App, MonitorRuntime]:
    """A process of its own for the label side of monitoring (``driftline monitor``).

    Workers then run with ``monitor_labels_in_worker=false``: they still feed the drift monitors
    with what they score and store predictions for the join; this process joins the labels.
    """
    app = faust.App(
        f"driftline-monitor-{model}",
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.topic_partitions,
        producer_linger_ms=settings.producer_linger_ms,
    )
    deliver = delivery(app)
    own = settings.model_copy(update={"worker_id": f"{settings.worker_id}:labels"})
    monitor = MonitorRuntime(own, model, cards[0], redis_url, sender(deliver, model))
    for card in cards[1:]:
        monitor.add_card(card)
    add_monitoring(app, own, monitor, BatchScorer(model), deliver)
    return app, monitor


__all__ = ["add_monitoring", "create_monitor_app", "delivery", "observe_safely", "sender"]
