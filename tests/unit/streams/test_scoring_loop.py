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
from aiokafka.errors import KafkaTimeoutError
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
    def __init__(self, fetches: list[dict[TopicPartition, list[_Message]]]) -> None:
        self.fetches = fetches
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
        if self.fetches:
            return self.fetches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})


class _Batch:
    def __init__(self) -> None:
        self.records = 0

    def append(self, key: bytes, value: bytes, timestamp: int) -> object:
        self.records += 1
        return object()

    def record_count(self) -> int:
        return self.records

    def close(self) -> None:
        pass


class _Producer:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent = 0

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
        if self.fail:
            ack.set_exception(KafkaTimeoutError("no ack"))
        else:
            self.sent += batch.records
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


def _fetches(n: int, size: int = 10) -> list[dict[TopicPartition, list[_Message]]]:
    tp = TopicPartition(TOPIC, 0)
    return [
        {tp: [_Message(TOPIC, 0, o, b"k", b"v") for o in range(i * size, (i + 1) * size)]}
        for i in range(n)
    ]


def _loop(
    consumer: _Consumer, producer: _Producer, commit_every_s: float, commit_idle_s: float = 3600
) -> ScoringLoop:
    settings = load_settings(batch_wait_ms=5)
    loop = ScoringLoop(settings, lambda: (consumer, producer), _Scorer(), lambda: None)  # type: ignore[arg-type]
    loop.commit_every_s = commit_every_s
    loop.commit_idle_s = commit_idle_s
    return loop


async def test_batches_acknowledged_within_the_interval_share_one_commit_and_stop_commits_it() -> (
    None
):
    consumer, producer = _Consumer(_fetches(3)), _Producer()
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
    consumer, producer = _Consumer(_fetches(2)), _Producer()
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


async def test_a_batch_whose_sends_fail_is_never_committed() -> None:
    consumer, producer = _Consumer(_fetches(1)), _Producer(fail=True)
    loop = _loop(consumer, producer, commit_every_s=0.0)
    with pytest.raises(KafkaTimeoutError):
        await asyncio.wait_for(loop.run(), 10)
    assert consumer.commits == []
