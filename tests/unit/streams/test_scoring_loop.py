"""The scoring loop's commits: on a timer, coalesced, never past an undelivered batch.

The Kafka clients are fakes that record what the loop asks of them; the loop itself (fetch,
score, send, await acks, commit) is the real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
)
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.config.settings import load_settings
from streams.scoring.batch import BatchResult, RawRecord
from streams.scoring.loop import ScoringLoop
from tests.waiting import wait_until_async

TOPIC = "events"


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    timestamp: int = 0


class _Consumer:
    """One partition of ``events`` records, fetched ``size`` at a time from the position."""

    def __init__(self, events: int, size: int = 10) -> None:
        self.log = [_Message(TOPIC, 0, o, b"k", str(o).encode()) for o in range(events)]
        self.size = size
        self.position = 0
        self.seeks: list[int] = []
        self.commits: list[dict[TopicPartition, int]] = []

    def subscribe(self, topics: list[str], listener: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, 0)}

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        fetched = self.log[self.position : self.position + self.size]
        if fetched:
            self.position += len(fetched)
            return {TopicPartition(TOPIC, 0): fetched}
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append(offset)
        self.position = offset

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})


class _Batch:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def append(self, key: bytes, value: bytes, timestamp: int) -> object:
        self.values.append(value)
        return object()

    def record_count(self) -> int:
        return len(self.values)

    def close(self) -> None:
        pass


class _Producer:
    """Acknowledges every batch but the ``fail``-th ones (counted from 1): they fail with
    ``error``."""

    def __init__(self, fail: frozenset[int] = frozenset(), error: Exception | None = None) -> None:
        self.fail = fail
        self.calls = 0
        self.error = error or KafkaTimeoutError("no ack")
        self.delivered: list[int] = []  # the offsets of the events delivered, in order

    @property
    def sent(self) -> int:
        return len(self.delivered)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.calls += 1
        if self.calls in self.fail:
            ack.set_exception(self.error)
        else:
            self.delivered += [int(v) for v in batch.values]
            ack.set_result(None)
        return ack


class _Scorer:
    """Predicts every record as itself."""

    def process(self, records: Sequence[RawRecord], models: Any) -> BatchResult:
        out = BatchResult()
        for r in records:
            out.predictions.append((r.key, r.value or b""))
            out.prediction_partitions.append(r.partition)
        return out

    def reject(self, out: BatchResult, rec: RawRecord, error: str, kind: str) -> None:
        raise AssertionError(f"nothing should be rejected: {error}")


def _loop(
    consumer: _Consumer, producer: _Producer, commit_every_s: float, commit_idle_s: float = 3600
) -> ScoringLoop:
    settings = load_settings(batch_wait_ms=5)
    loop = ScoringLoop(
        settings,
        lambda: consumer,
        lambda: producer,
        _Scorer(),  # type: ignore[arg-type]
        lambda: None,  # type: ignore[arg-type,return-value]
    )
    loop.commit_every_s = commit_every_s
    loop.commit_idle_s = commit_idle_s
    return loop


async def test_batches_acknowledged_within_the_interval_share_one_commit_and_stop_commits_it() -> (
    None
):
    consumer, producer = _Consumer(30), _Producer()
    loop = _loop(consumer, producer, commit_every_s=3600)
    running = asyncio.create_task(loop.run())
    await wait_until_async("three batches acknowledged", lambda: loop.batches == 3, 10, 0.01)
    assert consumer.commits == []  # the timer has not come round: nothing committed yet
    await loop.stop()
    await running
    assert consumer.commits == [{TopicPartition(TOPIC, 0): 30}]
    assert producer.sent == 30


@pytest.mark.parametrize(
    ("every_s", "idle_s"), [(0.05, 3600), (3600, 0.05)], ids=["interval", "idle"]
)
async def test_acknowledged_offsets_are_committed_without_a_stop(
    every_s: float, idle_s: float
) -> None:
    consumer, producer = _Consumer(20), _Producer()
    loop = _loop(consumer, producer, commit_every_s=every_s, commit_idle_s=idle_s)
    running = asyncio.create_task(loop.run())
    try:
        # no stop, no further batch: the interval, or the idle timer, commits the acks
        await wait_until_async(
            "the commit of both batches",
            lambda: consumer.commits[-1:] == [{TopicPartition(TOPIC, 0): 20}],
            10,
            0.01,
        )
    finally:
        await loop.stop()
        await running


async def test_a_batch_whose_sends_fail_for_good_is_never_committed_and_stops_the_loop() -> None:
    consumer, producer = _Consumer(10), _Producer(frozenset({1}), MessageSizeTooLargeError())
    loop = _loop(consumer, producer, commit_every_s=0.0)
    with pytest.raises(MessageSizeTooLargeError):
        await asyncio.wait_for(loop.run(), 10)
    assert consumer.commits == []
    assert loop.failure is not None


@pytest.mark.parametrize(
    "error", [KafkaTimeoutError(), LeaderNotAvailableError(), NotLeaderForPartitionError()]
)
async def test_a_batch_not_delivered_for_a_passing_reason_is_scored_again(
    error: Exception,
) -> None:
    """The second batch's ack fails: the first stays committed, the loop seeks back to the
    second's first offset and every event is delivered, without a restart."""
    consumer, producer = _Consumer(40), _Producer(frozenset({2}), error)
    loop = _loop(consumer, producer, commit_every_s=0.0)
    running = asyncio.create_task(loop.run())
    try:
        await wait_until_async(
            "every event delivered", lambda: set(producer.delivered) == set(range(40)), 10, 0.01
        )
    finally:
        await loop.stop()
        await running
    assert loop.failure is None
    assert 10 in consumer.seeks  # back to the first event of the batch that failed
    assert consumer.commits[-1] == {TopicPartition(TOPIC, 0): 40}
    committed = [c[TopicPartition(TOPIC, 0)] for c in consumer.commits]
    assert committed == sorted(committed)  # never back, never past an undelivered event
    assert producer.delivered[:10] == list(range(10))
