"""The owner's side of ``monitor-input``: one consumer whose offsets live in the snapshot.

All of a model's monitoring input lands on one partition (its key's), so the member of the
``driftline-monitors-<model>`` group that Kafka assigns that partition to runs the monitors.
Where it stopped reading is part of the monitors' state: the snapshot in Redis records the
next offset to read (``input_next``) with the counts it goes with, and a new owner seeks there
after it loads the snapshot. So a handover (a rebalance, a stop, a crash) neither repeats nor
skips a record, whatever the group's committed offsets say; they are committed too, at each
handover, for the tools that watch the group's lag.

Faust's agents kept offsets of their own that a handover could leave behind the snapshot (the
next owner counted records twice) or ahead of it (records were never counted): a plain
consumer whose position is set from the state is what makes the counts exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from streams.adapters.kafka_admin import consumer_options
from streams.config.settings import Settings
from streams.contracts.names import monitors_group
from streams.monitors.runtime import MonitorRuntime

log = logging.getLogger("driftline.monitor")

POLL_MS = 200

# observe(value, next_offset): one record through the monitors, the offset with it
Observe = Callable[[bytes | None, int], Awaitable[None]]


class MonitorInput:
    """Consume ``monitor-input`` for ``monitor``: its key's partition, from the snapshot's
    offset on, only while this process owns it.

    ``feed`` (a :class:`streams.monitors.agents.MonitorFeed`) is drained before every handover:
    the worker's own batches that the monitors took in-process are in the last snapshot too.
    """

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        monitor: MonitorRuntime,
        observe: Observe,
        feed: Any = None,
    ) -> None:
        self.settings = settings
        self.observe = observe
        self.bootstrap = bootstrap
        self.monitor = monitor
        self.feed = feed
        self.key = monitor.model.encode()
        self.consumer: AIOKafkaConsumer | None = None
        self.key_tp: TopicPartition | None = None
        self._stopping = False
        self._stopped = asyncio.Event()

    # -- ownership ------------------------------------------------------------------------
    def _key_partition(self) -> TopicPartition:
        if self.key_tp is None:
            assert self.consumer is not None
            topic = self.settings.topic_monitor
            count = len(self.consumer.partitions_for_topic(topic) or ()) or (
                self.settings.topic_partitions
            )
            self.key_tp = TopicPartition(topic, (murmur2(self.key) & 0x7FFFFFFF) % count)
        return self.key_tp

    async def take_over(self) -> None:
        """This process got the key's partition: resume the monitors, read on from their
        snapshot's offset."""
        monitor = self.monitor
        await monitor.start()
        await monitor.take_ownership()
        tp = self._key_partition()
        if monitor.input_next is not None and self.consumer is not None:
            await self._check_retention(tp, monitor.input_next)
            self.consumer.seek(tp, monitor.input_next)
        monitor.owned = True
        log.info("monitoring %s: owner, reading %s from %s", monitor.model, tp, monitor.input_next)

    async def hand_over(self) -> None:
        """Leave a snapshot with everything observed and the offset that follows it."""
        monitor = self.monitor
        monitor.owned = False  # from now on this worker's scored batches take the topic
        if self.feed is not None:
            await self.feed.drain()
        async with monitor.lock:
            try:
                await monitor.tick(force=True)
            except Exception:
                log.exception("monitoring snapshot failed")
            offset = monitor.input_next
            monitor.release()
        if offset is not None and self.consumer is not None and self.key_tp is not None:
            try:
                await self.consumer.commit({self.key_tp: offset})
            except KafkaError as exc:  # the snapshot holds it anyway
                log.info("monitor-input offset not committed (%s)", exc)
        log.info("monitoring %s: handed over at offset %s", monitor.model, offset)

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Consume until :meth:`stop` (an app task)."""
        self.consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=monitors_group(self.monitor.model),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            **consumer_options(self.settings),
        )
        consumer.subscribe([self.settings.topic_monitor], listener=_Handover(self))
        await consumer.start()
        try:
            while not self._stopping:
                batch = await consumer.getmany(timeout_ms=POLL_MS)
                for tp, messages in batch.items():
                    if tp != self.key_tp:
                        continue
                    for message in messages:
                        if not self.monitor.owned or self._stopping:
                            # Not (or no longer) the owner: a fetch can return records while
                            # take_over is still loading the snapshot. Read them again later,
                            # here or in the next owner.
                            if tp in consumer.assignment():
                                consumer.seek(tp, message.offset)
                            break
                        self._check_position(message.offset)
                        if message.key == self.key:
                            await self.observe(message.value, message.offset + 1)
                        else:
                            self.monitor.input_next = message.offset + 1
        finally:
            try:
                if self.monitor.owned:
                    await self.hand_over()
            finally:
                await consumer.stop()
                self._stopped.set()

    async def _check_retention(self, tp: TopicPartition, next_offset: int) -> None:
        """Say so when records after the snapshot were deleted before any owner read them.

        Checked where the owner resumes, against the partition's first offset: while it
        reads, a gap in the offsets is normal (a transaction's commit marker takes one, an
        aborted transaction's records are skipped when reading committed)."""
        assert self.consumer is not None
        try:
            first = (await self.consumer.beginning_offsets([tp]))[tp]
        except KafkaError as exc:
            log.info("monitor-input's first offset unknown (%s)", exc)
            return
        if first > next_offset:
            log.warning(
                "monitor-input offsets %d-%d were deleted before the monitors read them "
                "(retention): their events are not in the monitors' counts",
                next_offset,
                first - 1,
            )

    def _check_position(self, offset: int) -> None:
        expected = self.monitor.input_next
        if expected is not None and offset < expected:
            log.warning(
                "monitor-input restarts at offset %d below the snapshot's %d: the topic was "
                "recreated; reading on from there",
                offset,
                expected,
            )

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Hand over (when owner) and leave the group."""
        self._stopping = True
        if self.consumer is None:
            return
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout_s)
        except TimeoutError:
            log.warning("monitor-input consumer did not stop within %.0f s", timeout_s)


class _Handover(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: MonitorInput) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if self.owner.monitor.owned and self.owner.key_tp in set(revoked):
            await self.owner.hand_over()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self.owner._key_partition() in set(assigned) and not self.owner._stopping:
            await self.owner.take_over()


__all__ = ["MonitorInput"]
