"""A partition whose leader hangs holds back its own record batches only: the sender hands
each partition's batches to the producer in order, off the caller's path."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.scoring.sender import PartitionedSender
from tests.unit.streams.test_scoring_loop import _Batch


class _HungLeader:
    """aiokafka's rule: a partition's next batch is taken only once the one before it left;
    partition 0's batches never leave until ``release``."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.taken: dict[int, list[list[bytes]]] = {}
        self.out: dict[int, asyncio.Future[None]] = {}
        self.waiters: list[asyncio.Task[None]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> Any:
        previous = self.out.get(partition)
        if previous is not None and partition == 0:
            await self.release.wait()  # the batch before is still in flight to the hung leader
        self.taken.setdefault(partition, []).append(batch.values)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if partition != 0 or self.release.is_set():
            ack.set_result(None)
        else:
            self.release_later(ack)
        self.out[partition] = ack
        return ack

    def release_later(self, ack: asyncio.Future[None]) -> None:
        async def wait() -> None:
            await self.release.wait()
            ack.set_result(None)

        self.waiters.append(asyncio.ensure_future(wait()))


async def test_a_hung_partition_holds_back_its_own_batches_only() -> None:
    producer = _HungLeader()
    sender = PartitionedSender(producer)  # type: ignore[arg-type]
    acks = []
    for n in range(3):  # three scored batches, each with events of both partitions
        messages = [(b"k", f"{n}-p0".encode()), (b"k", f"{n}-p1".encode())]
        sends = sender.send_aligned("predictions", messages, [0, 1], source=2)
        acks.append(await asyncio.wait_for(sends, 1.0))  # the caller never waits on p0
    await asyncio.wait_for(asyncio.gather(*(a[1] for a in acks)), 1.0)  # p1: all delivered
    assert [v for b in producer.taken[1] for v in b] == [b"0-p1", b"1-p1", b"2-p1"]
    assert not any(a[0].done() for a in acks)  # p0: none delivered yet
    producer.release.set()
    await asyncio.wait_for(asyncio.gather(*(a[0] for a in acks)), 1.0)
    assert [v for b in producer.taken[0] for v in b] == [b"0-p0", b"1-p0", b"2-p0"]  # in order
