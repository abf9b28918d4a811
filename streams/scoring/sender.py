"""Produce a scored batch's records with one future per record batch, not one per record."""

from __future__ import annotations

import asyncio
import collections
import functools
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

    Each partition's record batches are handed to the producer in order by a lane of its
    own (:class:`_Lane`), off the caller's path: aiokafka takes a partition's next batch only
    once the one before it left for the broker, so a partition whose leader hangs would
    otherwise stop the caller, and with it every other partition, until its request timed
    out. Now it holds back its own batches only.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, int] = {}
        self._lanes: dict[tuple[str, int], _Lane] = {}

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
        producer = self.producer
        for partition, items in by_partition.items():
            lane = self._lanes.get((topic, partition))
            if lane is None:
                lane = self._lanes[topic, partition] = _Lane()
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=now_ms) is not None:
                    continue
                if batch.record_count():  # full: send it and start the next one
                    batch.close()
                    acks.append(lane.put(_batch_send(producer, batch, topic, partition)))
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=now_ms) is not None:
                        continue
                # Larger than a whole record batch: on its own, through the producer.
                one = functools.partial(producer.send, topic, value, key=key, partition=partition)
                acks.append(lane.put(one))
            if batch.record_count():
                batch.close()
                acks.append(lane.put(_batch_send(producer, batch, topic, partition)))
        return acks

    async def replace(self, make_producer: Callable[[], AIOKafkaProducer]) -> None:
        """Start a fresh producer in place of this one (after a batch it gave up, an
        idempotent producer's sequence has a gap the broker refuses; a transactional one's
        start aborts the open transaction) and retire the old one. The caller waited for
        every ack: the lanes are idle."""
        old, self.producer = self.producer, await _started(make_producer)
        # Not awaited here: stopping a producer whose batches expired can end in a
        # CancelledError from its sender task, which would end the loop.
        retired = asyncio.ensure_future(old.stop())
        retired.add_done_callback(_retired)

    async def send_keyed(self, topic: str, messages: Sequence[Encoded]) -> list[Awaitable[Any]]:
        """Send each message, placed by its key."""
        return [await self.producer.send(topic, value, key=key) for key, value in messages]


Send = Callable[[], Awaitable["asyncio.Future[Any]"]]


def _batch_send(producer: AIOKafkaProducer, batch: Any, topic: str, partition: int) -> Send:
    return functools.partial(producer.send_batch, batch, topic, partition=partition)


class _Lane:
    """One partition's sends, handed to the producer one after another by a task that runs
    while any wait; each :meth:`put` returns the future of its delivery."""

    def __init__(self) -> None:
        self.waiting: collections.deque[tuple[Send, asyncio.Future[Any]]] = collections.deque()
        self.runner: asyncio.Task[None] | None = None

    def put(self, send: Send) -> asyncio.Future[Any]:
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append((send, ack))
        if self.runner is None:
            self.runner = asyncio.ensure_future(self._run())
        return ack

    async def _run(self) -> None:
        try:
            while self.waiting:
                send, ack = self.waiting[0]
                try:
                    delivery = await send()
                except Exception as exc:  # not taken: this send fails, the next are tried
                    self.waiting.popleft()
                    if not ack.done():
                        ack.set_exception(exc)
                    continue
                self.waiting.popleft()
                delivery.add_done_callback(functools.partial(_settle, ack))
        finally:
            self.runner = None
            for _, ack in self.waiting:  # cancelled (a stop): nobody waits for these
                if not ack.done():
                    ack.cancel()
            self.waiting.clear()


def _settle(ack: asyncio.Future[Any], delivery: asyncio.Future[Any]) -> None:
    if ack.done():
        return
    if delivery.cancelled():
        ack.cancel()
    elif delivery.exception() is not None:
        ack.set_exception(delivery.exception())  # type: ignore[arg-type]
    else:
        ack.set_result(delivery.result())


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
