"""The scoring loop exactly once: a commit interval's batches in one transaction, aborted
whole and read again from the committed offsets when any part of it cannot commit.

The Kafka clients are fakes around one fake broker that keeps what each transaction wrote
apart until it commits (what a read-committed reader sees) and starts each producer the way
a transactional one starts: aborting the transaction its transactional id left open. The
loop (fetch, score, send, await acks, commit) is the real one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.config.settings import load_settings
from streams.errors import TransactionFencedError
from streams.scoring.loop import ScoringLoop
from streams.scoring.transactions import MAX_FENCED, Transaction, transactional_options
from tests.unit.streams.test_scoring_loop import _Batch, _Consumer, _Scorer
from tests.waiting import wait_until_async

TP = TopicPartition("events", 0)


class _Broker:
    """What readers that read committed see, and the group's committed offset."""

    def __init__(self) -> None:
        self.visible: list[int] = []
        self.committed: int | None = None
        self.keyed: list[bytes] = []  # records sent by key (monitor input), committed
        self.transactions = 0
        self.aborted = 0
        self.open: _TxnProducer | None = None  # the producer of the transactional id


class _TxnConsumer(_Consumer):
    def __init__(self, events: int, broker: _Broker) -> None:
        super().__init__(events)
        self.broker = broker
        self.generation = 1

    @property
    def _coordinator(self) -> Any:
        return self  # the loop reads the generation aiokafka's coordinator keeps

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.broker.committed


class _TxnProducer:
    """A transactional producer: sends wait in the transaction until it commits. Batches
    numbered in ``fail`` (counted from 1 over every producer) are not acknowledged;
    commits numbered in ``fence`` are refused as fenced."""

    def __init__(self, broker: _Broker, calls: list[int], fail: frozenset[int] = frozenset()):
        self.broker, self.calls, self.fail = broker, calls, fail
        self.fence: frozenset[int] = frozenset()
        self.pending: list[int] = []
        self.keyed: list[bytes] = []
        self.offsets: int | None = None
        self.in_txn = False

    async def start(self) -> None:
        previous = self.broker.open
        if previous is not None and previous.in_txn:  # InitProducerId aborts it
            previous.pending, previous.in_txn = [], False
            self.broker.aborted += 1
        self.broker.open = self

    async def stop(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def create_batch(self) -> _Batch:
        return _Batch()

    async def begin_transaction(self) -> None:
        assert not self.in_txn
        self.in_txn = True

    async def send_batch(self, batch: _Batch, topic: str, partition: int) -> asyncio.Future[None]:
        assert self.in_txn, "a send outside a transaction"
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.calls.append(1)
        if len(self.calls) in self.fail:
            ack.set_exception(KafkaTimeoutError("no ack"))
        else:
            self.pending += [int(v) for v in batch.values]
            ack.set_result(None)
        return ack

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        assert self.in_txn, "a send outside a transaction"
        self.keyed.append(value)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.set_result(None)
        return ack

    async def send_offsets_to_transaction(
        self, offsets: dict[TopicPartition, OffsetAndMetadata], group_id: str
    ) -> None:
        self.offsets = offsets[TP].offset

    async def commit_transaction(self) -> None:
        assert self.in_txn
        self.broker.transactions += 1
        if self.broker.transactions in self.fence:
            raise ProducerFenced()
        self.broker.visible += self.pending
        self.broker.keyed += self.keyed
        self.keyed = []
        if self.offsets is not None:
            self.broker.committed = self.offsets
        self.pending, self.offsets, self.in_txn = [], None, False


def _loop(
    consumer: _TxnConsumer,
    make: Any,
    commit_every_s: float = 3600,
    max_age_s: float = 3600,
) -> ScoringLoop:
    loop = ScoringLoop(
        load_settings(batch_wait_ms=5),
        lambda: consumer,
        make,
        _Scorer(),  # type: ignore[arg-type]
        lambda: None,  # type: ignore[arg-type,return-value]
        transaction=Transaction("group", "group-w1", max_age_s=max_age_s),
    )
    loop.commit_every_s = commit_every_s
    return loop


async def test_the_batches_of_an_interval_commit_in_one_transaction_with_their_offsets() -> None:
    broker = _Broker()
    consumer = _TxnConsumer(30, broker)
    loop = _loop(consumer, lambda: _TxnProducer(broker, []))
    # a fetch that finds nothing would commit at once (idle): hold the last one back
    consumer.log, held = consumer.log[:20], consumer.log[20:]
    running = asyncio.create_task(loop.run())
    await wait_until_async("two batches acknowledged", lambda: loop.batches == 2, 10, 0.01)
    await wait_until_async("the idle commit", lambda: broker.transactions == 1, 10, 0.01)
    assert broker.visible == list(range(20)) and broker.committed == 20
    consumer.log += held
    await wait_until_async("the third batch", lambda: loop.batches == 3, 10, 0.01)
    await loop.stop()
    await running
    assert broker.visible == list(range(30))  # each once
    assert broker.committed == 30
    assert consumer.commits == []  # no offset commit outside a transaction


async def test_a_stop_sends_the_monitor_records_left_over_in_a_transaction_of_their_own() -> None:
    """Records of committed batches whose monitors were handed over before the commit wait
    for the next batch; a stop sends them in one more transaction, so none is lost."""
    broker = _Broker()
    consumer = _TxnConsumer(10, broker)
    leftovers = [[(b"m", b"left")]]
    loop = _loop(consumer, lambda: _TxnProducer(broker, []))
    loop.monitor_leftovers = lambda: leftovers.pop() if leftovers else []
    running = asyncio.create_task(loop.run())
    await wait_until_async("the batch", lambda: loop.batches == 1, 10, 0.01)
    await loop.stop()
    await running
    assert broker.visible == list(range(10)) and broker.committed == 10
    assert broker.keyed == [b"left"] and broker.transactions == 2


async def test_a_batch_not_delivered_aborts_its_whole_transaction_and_reads_again() -> None:
    """The second batch of the first transaction is not acknowledged: the first batch, which
    was, is aborted with it; the loop reads again from the committed offset (none yet: where
    the transaction began) and every event becomes visible once."""
    broker, calls = _Broker(), []
    consumer = _TxnConsumer(40, broker)
    loop = _loop(consumer, lambda: _TxnProducer(broker, calls, frozenset({2})))
    running = asyncio.create_task(loop.run())
    try:
        await wait_until_async("every event visible", lambda: len(broker.visible) >= 40, 10, 0.01)
    finally:
        await loop.stop()
        await running
    assert loop.failure is None
    assert broker.aborted == 1 and 0 in consumer.seeks
    assert broker.visible == list(range(40))
    assert broker.committed == 40


async def test_a_transaction_of_a_worker_dropped_by_its_group_is_aborted_not_committed() -> None:
    broker = _Broker()
    consumer = _TxnConsumer(10, broker)
    broker.committed = 0
    consumer.log = consumer.log[:10]
    loop = _loop(consumer, lambda: _TxnProducer(broker, []))
    consumer.generation = -1  # what aiokafka sets once the coordinator dropped the member
    running = asyncio.create_task(loop.run())
    await wait_until_async("an abort", lambda: broker.aborted >= 1, 10, 0.01)
    assert broker.visible == [] and broker.committed == 0
    assert 0 in consumer.seeks
    consumer.generation = 2  # back in the group: the events are scored and commit once
    await wait_until_async("the events visible", lambda: broker.visible == list(range(10)), 10)
    await loop.stop()
    await running


async def test_a_transaction_older_than_its_bound_is_aborted() -> None:
    broker = _Broker()
    consumer = _TxnConsumer(10, broker)
    loop = _loop(consumer, lambda: _TxnProducer(broker, []), max_age_s=0.0)
    running = asyncio.create_task(loop.run())
    await wait_until_async("an abort", lambda: broker.aborted >= 2, 10, 0.01)
    loop.stopping.set()
    loop.txn = None  # stop without committing what a stall-aged transaction holds
    await running
    assert broker.visible == []


class _HeldProducer(_TxnProducer):
    """Its first commit waits for ``release`` and is then refused as fenced."""

    def __init__(self, broker: _Broker, release: asyncio.Event) -> None:
        super().__init__(broker, [])
        self.release = release
        self.fence = frozenset({1})

    async def commit_transaction(self) -> None:
        if self.broker.transactions == 0:
            await self.release.wait()
        await super().commit_transaction()


class _FetchingConsumer(_TxnConsumer):
    """A fetch gives the other tasks a turn first, as a real one waits for the network."""

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        await asyncio.sleep(0)
        return await super().getmany(timeout_ms, max_records)


async def test_a_batch_fetched_while_its_predecessor_aborts_is_read_again_not_sent() -> None:
    """The loop scores the next batch while a transaction commits. When that commit fails
    and the loop rewinds to the committed offsets, the batch in hand is not sent (it would
    commit in the next transaction, and the rewind would score it again): every event
    becomes visible once."""
    broker, release = _Broker(), asyncio.Event()
    consumer = _FetchingConsumer(30, broker)
    loop = _loop(consumer, lambda: _HeldProducer(broker, release), commit_every_s=0.0)
    running = asyncio.create_task(loop.run())
    try:
        await wait_until_async(
            "the next batch fetched while the first commits",
            lambda: consumer.position == 20 and broker.transactions == 0,
            10,
            0.01,
        )
    finally:
        release.set()  # the commit goes on (and fails) either way, so the loop can stop
    try:
        await wait_until_async("every event visible", lambda: len(broker.visible) >= 30, 10, 0.01)
    finally:
        await loop.stop()
        await running
    assert broker.aborted == 1 and loop.rereads == 1
    assert broker.visible == list(range(30))
    assert broker.committed == 30


async def test_fenced_again_and_again_the_loop_stops_and_names_the_setting() -> None:
    broker = _Broker()
    consumer = _TxnConsumer(10_000, broker)

    def make() -> _TxnProducer:
        producer = _TxnProducer(broker, [])
        producer.fence = frozenset(range(1, MAX_FENCED + 1))
        return producer

    loop = _loop(consumer, make, commit_every_s=0.0)
    with pytest.raises(TransactionFencedError, match="DRIFTLINE_WORKER_ID"):
        await asyncio.wait_for(loop.run(), 10)
    assert broker.visible == [] and broker.committed is None


def test_only_exactly_once_makes_the_producer_transactional() -> None:
    assert transactional_options(load_settings(), "m") == {}
    options = transactional_options(
        load_settings(processing_guarantee="exactly_once", worker_id="w1"), "m"
    )
    assert options["transactional_id"] == "driftline-scorer-m-w1"
