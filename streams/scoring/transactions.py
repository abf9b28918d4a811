"""Exactly once (``DRIFTLINE_PROCESSING_GUARANTEE=exactly_once``): a commit interval's batches
in one Kafka transaction.

The scoring loop opens a transaction at the first batch after a commit; every batch scored
until the next commit sends its predictions, dead letters and monitor input inside it; the
commit adds the consumed offsets (``send_offsets_to_transaction``) and commits: all of it
becomes visible to readers that read committed at once, or none of it does. A reader then
sees each prediction once, whatever crashed, at a price in latency: a prediction is visible
only once its transaction commits, up to one commit interval (100 ms) and the commit's round
trips after it was produced.

**Fencing zombies.** aiokafka's ``send_offsets_to_transaction`` takes a group id only: the
broker does not check that the producer's worker still belongs to the consumer group's
current generation (KIP-447), so a worker that lost its partitions could commit offsets and
outputs for events that their new owner scores too. Driftline fences with three things:

1. A transactional id per worker identity, ``driftline-scorer-<model>-<worker_id>``
   (:func:`~streams.contracts.names.scorer_transactional_id`), stable across restarts: a
   restarted worker's producer starts (``InitProducerId``) before its consumer, which aborts
   whatever transaction its predecessor left open and fences the predecessor for good. The
   open transaction of a SIGKILLed worker therefore never commits, and the successor reads
   the offsets committed before it.
2. No commit after losing the group: when the consumer has learnt that the group dropped it
   (its generation reset: a session that expired while the worker stalled), the transaction
   is aborted and the partitions are read again from the committed offsets.
3. A bound on a transaction's age: one older than ``max_age_s`` (half the scoring consumer's
   session timeout) when it should commit is aborted, not committed, since a stall that long
   may have cost the partitions before the consumer heard of it. The broker aborts a
   transaction left open for :data:`TRANSACTION_TIMEOUT_MS` by itself (a hung worker), which
   also unblocks read-committed readers of the partitions it wrote to.

The alternative, one transactional id per input partition (Kafka Streams before KIP-447),
fences exactly across rebalances but needs a producer and a transaction per partition a
worker holds: a commit interval's outputs split into as many transactions, each with its
commit markers, on every partition. A stable id per worker keeps one transaction per interval.
What it leaves open: a commit request that left before its worker stalled and reached the
broker after the group gave the partitions away (a request delayed more than a heartbeat
interval in flight), and a successor that reads the committed offsets in the milliseconds
between a handover's commit and its markers (aiokafka's offset fetch cannot ask for stable
offsets). Each worker of a model needs its own ``DRIFTLINE_WORKER_ID``: two with the same one
fence each other, and the loop stops after :data:`MAX_FENCED` fences in a row, saying so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import IllegalOperation, KafkaError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.config.settings import Settings, env_name
from streams.contracts.names import scorer_group, scorer_transactional_id
from streams.errors import TransactionFencedError
from streams.scoring.sender import PartitionedSender

log = logging.getLogger("driftline.worker")

# Long enough for a commit interval and its commit on a slow broker; short so that a hung
# worker's open transaction does not hold read-committed readers back for long.
TRANSACTION_TIMEOUT_MS = 10_000
MAX_FENCED = 3  # fences in a row before the loop gives up: another worker has this id


def transactional_options(settings: Settings, model: str) -> dict[str, Any]:
    """The scoring producer's extra options: none at least once, a transactional id and
    :data:`TRANSACTION_TIMEOUT_MS` exactly once."""
    if settings.processing_guarantee != "exactly_once":
        return {}
    return {
        "transactional_id": scorer_transactional_id(model, settings.worker_id),
        "transaction_timeout_ms": TRANSACTION_TIMEOUT_MS,
    }


class Transaction:
    """The scoring loop's open transaction, if any: when it began, where it began to read.

    Parameters
    ----------
    group_id
        The scoring consumer's group, whose offsets commit with the transaction.
    transactional_id
        The producer's (for messages only).
    max_age_s
        A transaction older than this when it should commit is aborted instead.
    ended
        Told how each transaction ended: True committed, False aborted (what waits for
        the commit, such as the owner's monitors in process, goes on or is dropped).
    """

    def __init__(
        self,
        group_id: str,
        transactional_id: str,
        max_age_s: float,
        ended: Callable[[bool], None] | None = None,
    ) -> None:
        self.group_id = group_id
        self.ended = ended
        self.transactional_id = transactional_id
        self.max_age_s = max_age_s
        self.begun_at: float | None = None
        # per partition, the first offset read in this transaction: where an abort rewinds to
        # when the group has no committed offset yet
        self.starts: dict[TopicPartition, int] = {}
        # per partition, the next offset after the last batch sent in it: what it commits
        self.offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        self._adding: asyncio.Future[None] | None = None  # the offsets on their way
        self.fenced = 0

    @classmethod
    def of_worker(
        cls,
        settings: Settings,
        model: str,
        session_timeout_ms: int,
        ended: Callable[[bool], None] | None = None,
    ) -> Transaction:
        """The transaction of this worker's scoring loop for ``model``, whose consumer has
        that session timeout."""
        return cls(
            scorer_group(model),
            scorer_transactional_id(model, settings.worker_id),
            max_age_s=session_timeout_ms / 2000,
            ended=ended,
        )

    @property
    def open(self) -> bool:
        return self.begun_at is not None

    def due(self, every_s: float, idle: bool) -> bool:
        """Whether to commit now: open, and ``every_s`` old or no batch is coming."""
        return self.begun_at is not None and (idle or time.monotonic() - self.begun_at >= every_s)

    async def include(
        self,
        producer: AIOKafkaProducer,
        starts: dict[TopicPartition, int],
        offsets: dict[TopicPartition, OffsetAndMetadata],
    ) -> None:
        """Begin a transaction unless one is open; note where the batch about to be sent
        began to read and where it ends."""
        if self.begun_at is None:
            await producer.begin_transaction()
            self.begun_at = time.monotonic()
        for tp, offset in starts.items():
            self.starts.setdefault(tp, offset)
        self.offsets.update(offsets)

    def add_offsets(self, producer: AIOKafkaProducer) -> None:
        """Start adding the offsets of every batch sent in the transaction to it, while the
        last batches' acks are awaited: all of it commits or none, so the offsets need not
        wait for the acks (and their two round trips then cost the commit nothing)."""
        if self.offsets and self._adding is None:
            sending = producer.send_offsets_to_transaction(dict(self.offsets), self.group_id)
            self._adding = asyncio.ensure_future(sending)

    async def commit(self, producer: AIOKafkaProducer, member: bool) -> bool:
        """Commit the open transaction with its offsets; False if it must be aborted (the
        caller replaces the producer, which aborts it, and reads again from the committed
        offsets). ``member``: whether the consumer still belongs to its group's generation."""
        if self.begun_at is None:
            return True
        age = time.monotonic() - self.begun_at
        if not member or age > self.max_age_s:
            log.warning(
                "aborting a transaction %.1f s old (%s): its partitions may have moved",
                age,
                "the group dropped this worker" if not member else "a stall",
            )
            return False
        try:
            self.add_offsets(producer)
            if self._adding is not None:
                await self._adding
            await producer.commit_transaction()
        except ProducerFenced as exc:
            # The broker timed the transaction out, or another worker took the id.
            self.fenced += 1
            if self.fenced >= MAX_FENCED:
                raise TransactionFencedError(
                    self.transactional_id,
                    f"the transactional id {self.transactional_id!r} was fenced {MAX_FENCED} "
                    f"times in a row: another worker of this model runs with the same "
                    f"{env_name('worker_id')} (each worker needs its own)",
                ) from exc
            log.warning("transaction fenced (%r); scoring its events again", exc)
            return False
        except (KafkaError, IllegalOperation) as exc:
            log.warning("transaction commit failed (%r); scoring its events again", exc)
            return False
        self.fenced = 0
        self.reset(committed=True)
        return True

    async def end(
        self,
        sender: PartitionedSender,
        make_producer: Callable[[], AIOKafkaProducer],
        consumer: AIOKafkaConsumer,
        abort: bool,
    ) -> dict[TopicPartition, int] | None:
        """Commit the open transaction (unless ``abort``: a batch of it was not delivered),
        or abort it: a fresh producer with the same transactional id aborts it as it starts.
        Returns None once committed, else where to read each of its partitions again."""
        if not abort and await self.commit(sender.producer, still_member(consumer)):
            return None
        starts = self.reset(committed=False)
        await sender.replace(make_producer)
        return await committed_or(consumer, starts)

    def reset(self, committed: bool) -> dict[TopicPartition, int]:
        """Forget the transaction (committed, or aborted by a fresh producer); return where
        each of its partitions began."""
        starts, self.starts, self.begun_at = self.starts, {}, None
        self.offsets = {}
        if self._adding is not None:
            # an aborted transaction's: whatever became of it, nobody waits for it any more
            self._adding.add_done_callback(_forget)
            self._adding = None
        if self.ended is not None:
            self.ended(committed)
        return starts


def _forget(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


def still_member(consumer: AIOKafkaConsumer) -> bool:
    """Whether ``consumer`` still belongs to its group's generation, as far as it knows:
    aiokafka resets the generation to -1 once the coordinator dropped the member (a session
    that expired, an unknown member id)."""
    coordinator = getattr(consumer, "_coordinator", None)
    return getattr(coordinator, "generation", 0) != -1


async def committed_or(
    consumer: AIOKafkaConsumer, starts: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Where to read again after an abort: each partition's committed offset, or where the
    aborted transaction began when the group has none. Read once the fresh producer started:
    it resolved the old transaction first (a commit whose answer was lost may have gone
    through, and then its offsets are the ones to read on from)."""
    out = {}
    for tp, start in starts.items():
        committed = await consumer.committed(tp)
        out[tp] = start if committed is None else committed
    return out


__all__ = [
    "MAX_FENCED",
    "TRANSACTION_TIMEOUT_MS",
    "Transaction",
    "committed_or",
    "still_member",
    "transactional_options",
]
