"""Produce a scored batch's records with one future per record batch, not one per record."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, OutOfOrderSequenceNumber

from streams.scoring.batch import Encoded

log = logging.getLogger("driftline.worker")


class PartitionedSender:
    """Produce many records with one future per record batch, not one per record.

    A prediction goes to the partition number its event came from when both topics have
    the same partition count (same key, same partition: per-key order is kept without
    hashing every key in Python); otherwise the producer's partitioner places it by key.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, int] = {}

    async def partitions(self, topic: str) -> int:
        if topic not in self._partitions:
            self._partitions[topic] = len(await self.producer.partitions_for(topic))
        return self._partitions[topic]

    async def send_aligned(
        self, topic: str, messages: Sequence[Encoded], partitions: Sequence[int], source: int
    ) -> list[Awaitable[Any]]:
        """Send ``messages[i]`` to ``partitions[i]`` (when ``topic`` has ``source`` partitions)."""
        if await self.partitions(topic) != source:
            return await self.send_keyed(topic, messages)
        by_partition: dict[int, list[Encoded]] = {}
        for message, partition in zip(messages, partitions, strict=True):
            by_partition.setdefault(partition, []).append(message)
        acks: list[Awaitable[Any]] = []
        now_ms = int(time.time() * 1000)
        for partition, items in by_partition.items():
            batch = self.producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=now_ms) is not None:
                    continue
                if batch.record_count():  # full: send it and start the next one
                    batch.close()
                    acks.append(await self.producer.send_batch(batch, topic, partition=partition))
                    batch = self.producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=now_ms) is not None:
                        continue
                # Larger than a whole record batch: on its own, through the producer.
                acks.append(await self.producer.send(topic, value, key=key, partition=partition))
            if batch.record_count():
                batch.close()
                acks.append(await self.producer.send_batch(batch, topic, partition=partition))
        return acks

    async def replace(self, make_producer: Callable[[], AIOKafkaProducer]) -> None:
        """Start a fresh producer in place of this one (after a batch it gave up, an
        idempotent producer's sequence has a gap the broker refuses; a transactional one's
        start aborts the open transaction) and retire the old one."""
        old, self.producer = self.producer, await _started(make_producer)
        # Not awaited here: stopping a producer whose batches expired can end in a
        # CancelledError from its sender task, which would end the loop.
        retired = asyncio.ensure_future(old.stop())
        retired.add_done_callback(_retired)

    async def send_keyed(self, topic: str, messages: Sequence[Encoded]) -> list[Awaitable[Any]]:
        """Send each message, placed by its key."""
        return [await self.producer.send(topic, value, key=key) for key, value in messages]


async def _started(make_producer: Callable[[], AIOKafkaProducer]) -> AIOKafkaProducer:
    """A started producer, once the cluster answers (a broker may still be down)."""
    while True:
        producer = make_producer()
        try:
            await producer.start()
            return producer
        except KafkaError as exc:
            log.warning("kafka: no producer yet (%s); trying again in 1 s", exc)
            await producer.stop()
            await asyncio.sleep(1.0)


def _retired(stopped: asyncio.Future[None]) -> None:
    if not stopped.cancelled() and stopped.exception() is not None:
        log.info("kafka: the replaced producer stopped with %r", stopped.exception())


def retriable(exc: BaseException) -> bool:
    """Whether a failed delivery may succeed when tried again: a leader lost, moving or not
    elected yet; a request or a batch timed out; the producer's sequence broken by a batch it
    gave up (a fresh producer mends it). Not: a record too large, a topic missing, no
    authorisation."""
    return isinstance(exc, KafkaTimeoutError | OutOfOrderSequenceNumber) or bool(
        getattr(exc, "retriable", False)
    )


__all__ = ["PartitionedSender", "retriable"]
