"""The monitoring agents of a worker: labels in, snapshots and health out on a timer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import faust
from faust.streams import Stream
from pydantic import ValidationError

from streams.messages import Label
from streams.monitor_runtime import MonitorRuntime
from streams.scoring import BatchResult, BatchScorer, Encoded, RawRecord
from streams.settings import Settings

log = logging.getLogger("driftline.monitor")

Deliver = Callable[[str, list[Encoded]], Awaitable[list[Awaitable[Any]]]]


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
) -> None:
    """Register the labels agent and the snapshot timer on ``app``."""
    labels = app.topic(settings.topic_labels, key_type=bytes, value_type=bytes,
                       partitions=settings.topic_partitions)  # fmt: skip

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

    async def snapshot() -> None:
        try:
            await monitor.tick(force=True)
        except Exception:
            log.exception("monitoring snapshot failed")

    app.timer(interval=settings.snapshot_interval_s)(snapshot)


__all__ = ["add_monitoring", "observe_safely"]
