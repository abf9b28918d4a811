"""Where the scoring consumer stands: its lag, and seeking back to read again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

log = logging.getLogger("driftline.worker")


async def lag(consumer: AIOKafkaConsumer) -> dict[int, int | None]:
    """Per assigned partition: events not consumed yet (highwater - position; None until
    the first fetch response tells the highwater). For metrics and the watchdog."""
    out: dict[int, int | None] = {}
    for tp in list(consumer.assignment()):
        if tp not in consumer.assignment():
            continue  # a rebalance took it while we awaited the previous position
        high = consumer.highwater(tp)
        try:
            position = await asyncio.wait_for(consumer.position(tp), 0.5)
        except (KafkaError, TimeoutError):
            position = None
        out[tp.partition] = None if high is None or position is None else max(high - position, 0)
    return out


def seek(consumer: AIOKafkaConsumer, offsets: Mapping[TopicPartition, int]) -> None:
    """Read each partition still assigned again from its offset in ``offsets``."""
    assigned = consumer.assignment()
    for tp, offset in offsets.items():
        if tp in assigned:
            consumer.seek(tp, offset)
    log.warning(
        "scoring again from %s",
        {f"{tp.topic}/{tp.partition}": offset for tp, offset in sorted(offsets.items())},
    )


__all__ = ["lag", "seek"]
