"""The worker's hot path: consume a batch of events, score it, produce, then commit.

It runs as a task of the worker's Faust app (which also runs the label and monitor agents,
the model-update follower and the timers) but reads ``events`` with a consumer of its own,
batch by batch. Faust's stream delivers each record as an event object through queues and
per-event callbacks; at micro-batch sizes that bookkeeping cost more than scoring itself
(see bench/README.md), so the hot path takes whole fetches and produces whole record batches.

Delivery is at least once, and pipelined: the loop scores a batch, hands its sends to the
broker and goes on with the next batch while a committer task waits, in batch order, for the
broker's acknowledgements and marks the batch's offsets ready. Ready offsets are committed
on a timer, once every ``COMMIT_EVERY_S`` while batches keep coming, and as soon as no batch
has followed them for ``COMMIT_IDLE_S`` (a caught-up or drained stream shows no lag), not
once per batch: on this path every request costs the broker and the client more than the
events in it (bench/README.md), and a commit per batch was a third of the worker's
requests. At most ``max_inflight_batches`` batches wait for acks: a slow broker slows the
loop rather than filling memory. A rebalance or a stop waits until every batch in flight is
acknowledged and committed, so a handover repeats nothing in the normal case; a crash
repeats what followed the last commit (at most ``COMMIT_EVERY_S`` of events and the batches
in flight). A batch that is not delivered is never committed. When the cause may pass (a
leader lost or moving, a broker restarting: the producer gives a batch up after
``kafka_request_timeout_ms``), the loop waits for the batches in flight, commits what was
acknowledged before, rewinds each partition to its first event not delivered and scores on
from there: the same events again, with no restart. Any other failure stops the loop, and the
worker exits for its supervisor to restart it.

With ``exactly_once`` (a :class:`~streams.scoring.transactions.Transaction` given), the
batches between two commits share one Kafka transaction, which a task commits between two
batches, with the offsets, once every batch of it is acknowledged, while the loop scores the
next batch; a batch not delivered aborts the whole transaction, and the loop reads again from
the committed offsets. A batch scored while the commit before it failed is read again too,
never sent: it would commit in the next transaction, and be scored again after the rewind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import (
    CommitFailedError,
    KafkaError,
)
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.config.settings import Settings
from streams.errors import TransactionFencedError
from streams.scoring import positions
from streams.scoring.batch import BatchResult, BatchScorer, Encoded, ModelSet, RawRecord
from streams.scoring.inflight import BatchStats, InFlight, ScoredBatch
from streams.scoring.sender import PartitionedSender, retriable
from streams.scoring.transactions import Transaction

log = logging.getLogger("driftline.worker")

# Record batches we build stay well under the broker's default 1 MiB message limit.
MAX_BATCH_BYTES = 524_288
COMMIT_EVERY_S = 0.1  # acknowledged offsets wait at most this long for their commit
COMMIT_IDLE_S = 0.02  # ... or this long when no batch follows them
# A scoring consumer that stops heartbeating (a dead worker) leaves its group after this long;
# then one rebalance hands its partitions to the others (aiokafka's default is 10 s).
SESSION_TIMEOUT_MS = 6_000


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hold a revocation until the batch in hand is produced and committed."""

    def __init__(self, settle: Callable[[], Awaitable[None]]) -> None:
        self.settle = settle

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.settle()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("scoring partitions: %s", sorted(tp.partition for tp in assigned))


class ScoringLoop:
    """Score ``settings.topic_events`` batch by batch with ``current()``'s models.

    Parameters
    ----------
    settings
        Topics, batch size and wait, client options.
    make_consumer, make_producer
        Build an unstarted client inside the running loop (aiokafka clients bind to the loop
        they are created in). A rewind replaces the producer: after a batch it gave up, an
        idempotent producer's sequence has a gap the broker refuses.
    scorer
        Turns raw records into predictions and dead letters.
    current
        Returns the model set to use for the next batch (swapped between batches).
    monitor_records
        Encodes a scored batch for the monitoring owner (None: monitoring off).
    monitor_leftovers
        Exactly once: the monitor records of committed batches still to send (their
        monitors were handed over before the commit); every settle sends them in a
        transaction of their own, so that a stop or a lost assignment leaves none behind.
    on_batch
        Called after each acknowledged batch (metrics, watchdog); its ``seconds`` run from
        the fetch to the last ack.
    transaction
        Exactly once: the batches of a commit interval in one transaction (``make_producer``
        then builds a transactional producer). None: at least once.
    """

    def __init__(
        self,
        settings: Settings,
        make_consumer: Callable[[], AIOKafkaConsumer],
        make_producer: Callable[[], AIOKafkaProducer],
        scorer: BatchScorer,
        current: Callable[[], ModelSet],
        *,
        monitor_records: Callable[[BatchResult], list[Encoded]] | None = None,
        monitor_leftovers: Callable[[], list[Encoded]] | None = None,
        on_batch: Callable[[BatchStats], None] | None = None,
        transaction: Transaction | None = None,
    ) -> None:
        self.settings = settings
        self.make_consumer = make_consumer
        self.make_producer = make_producer
        self.scorer = scorer
        self.current = current
        self.monitor_records = monitor_records
        self.monitor_leftovers = monitor_leftovers
        self.on_batch = on_batch
        self.txn = transaction
        self.lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.batches = 0
        self.epoch = 0  # raised by every settle (a rebalance, a stop)
        # Raised by every abort that moved the positions back, with where it moved them: a
        # batch fetched before it is read again, never sent (its events would commit twice).
        self.rereads = 0
        self._reread_from: dict[TopicPartition, int] = {}
        self._committing_txn: asyncio.Future[None] | None = None
        self.failure: BaseException | None = None
        self.commit_every_s = COMMIT_EVERY_S
        self.commit_idle_s = COMMIT_IDLE_S
        self._ready: dict[TopicPartition, OffsetAndMetadata] = {}  # acknowledged, uncommitted
        # Set once a batch was not delivered: per partition, the first offset to score again.
        self._rewind: dict[TopicPartition, int] = {}
        self._committing = asyncio.Lock()
        self._inflight: asyncio.Queue[InFlight] = asyncio.Queue(
            maxsize=settings.max_inflight_batches
        )

    async def run(self) -> None:
        """Consume until :meth:`stop`; the clients are started and stopped here."""
        settings = self.settings
        self.consumer = self.make_consumer()
        self.sender = PartitionedSender(self.make_producer())
        self.consumer.subscribe([settings.topic_events], listener=_WaitForBatch(self.settle))
        # The producer first: a transactional one aborts what its predecessor left open
        # before this worker reads the offsets committed.
        await self.sender.producer.start()
        await self.consumer.start()
        committer = asyncio.create_task(self._committer())
        source = 0
        try:
            while not self.stopping.is_set() and self.failure is None:
                if self._rewind:
                    async with self.lock:
                        await self._rewind_now()
                    continue
                self._start_commit(idle=False)
                rereads = self.rereads
                fetched = await self.consumer.getmany(
                    timeout_ms=settings.batch_wait_ms, max_records=settings.batch_size
                )
                if not fetched:
                    pending = self._start_commit(idle=True)
                    if pending is not None:
                        await pending
                    continue
                source = source or await self.sender.partitions(settings.topic_events)
                epoch = self.epoch
                scored = self._score(fetched)  # while a commit, if any, waits for its acks
                async with self.lock:
                    if epoch != self.epoch:
                        pass  # released by a rebalance meanwhile
                    elif rereads != self.rereads:
                        self._read_again(fetched)
                    else:
                        await self._one_batch(fetched, source, scored)
        finally:
            if self._committing_txn is not None and self.failure is not None:
                self._committing_txn.cancel()
            if self.failure is None:
                await self.settle()
            committer.cancel()
            await self.consumer.stop()
            await self.sender.producer.stop()
        if self.failure is not None:
            raise self.failure

    async def settle(self) -> None:
        """Wait until every batch in flight is acknowledged and its offsets committed."""
        self.epoch += 1  # a batch scored meanwhile is dropped: its partitions may go
        async with self.lock:
            if self.failure is None:
                await self._inflight.join()
                await self._commit_ready()
                await self._send_leftovers()
                # Whatever was not delivered is past the committed offsets, where a new
                # assignment (or the next start) begins anyway.
                self._rewind.clear()

    async def stop(self) -> None:
        """Finish the batches in hand, commit them and stop."""
        self.stopping.set()
        await self.settle()

    async def lag(self) -> dict[int, int | None]:
        """Per assigned partition: events not consumed yet (:func:`positions.lag`)."""
        consumer = getattr(self, "consumer", None)  # set by run()
        return {} if consumer is None else await positions.lag(consumer)

    def _score(self, fetched: dict[TopicPartition, list[Any]]) -> ScoredBatch:
        started = time.perf_counter()
        records = [
            RawRecord(m.value, m.key, m.topic, m.partition, m.offset, m.timestamp)
            for messages in fetched.values()
            for m in messages
        ]
        try:
            result = self.scorer.process(records, self.current())
        except Exception as exc:
            # The policy for the unexpected: nothing is dropped; the batch goes to the DLQ.
            log.exception("batch of %d failed; sent to %s", len(records), self.settings.topic_dlq)
            kind = type(exc).__name__
            result = BatchResult()
            for r in records:
                self.scorer.reject(result, r, f"internal error: {exc}", kind)
        return ScoredBatch(started, len(records), result)

    async def _one_batch(
        self, fetched: dict[TopicPartition, list[Any]], source: int, scored: ScoredBatch
    ) -> None:
        result = scored.result
        dlq = self.settings.topic_dlq
        starts = {tp: messages[0].offset for tp, messages in fetched.items()}
        offsets = {
            tp: OffsetAndMetadata(messages[-1].offset + 1, "") for tp, messages in fetched.items()
        }
        if self.txn is not None:
            await self.txn.include(self.sender.producer, starts, offsets)
        acks = await self.sender.send_aligned(
            self.settings.topic_predictions,
            result.predictions,
            result.prediction_partitions,
            source,
        )
        acks += await self.sender.send_aligned(
            dlq, result.dead_letters, result.dead_letter_partitions, source
        )
        if self.monitor_records is not None and result.scored:
            monitor_input = self.monitor_records(result)
            acks += await self.sender.send_keyed(self.settings.topic_monitor, monitor_input)
        # Committed by the committer once the broker acknowledged every send above.
        stats = BatchStats(
            scored.events,
            len(result.predictions),
            len(result.dead_letters),
            scored.started,
            result.latencies_ms,
        )
        await self._inflight.put(InFlight(acks, offsets, starts, stats))

    async def _committer(self) -> None:
        """Await each batch's acks in order; commit what is acknowledged, on a timer."""
        committed_at = time.monotonic()
        getter: asyncio.Future[InFlight] | None = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(self._inflight.get())
                if self._ready and self.txn is None:  # when it is time, or no batch comes
                    due = committed_at + self.commit_every_s - time.monotonic()
                    wait = min(due, self.commit_idle_s)
                    done, _ = await asyncio.wait({getter}, timeout=max(wait, 0.0))
                    if not done:
                        await self._commit_ready()
                        committed_at = time.monotonic()
                        continue
                batch = await getter
                getter = None
                results = await asyncio.gather(*batch.acks, return_exceptions=True)
                exc = next((r for r in results if isinstance(r, BaseException)), None)
                if exc is not None:
                    if not retriable(exc):
                        # Never commit past a batch that was not delivered: stop; the next
                        # start scores it again from the last committed offset.
                        log.error("delivery of a batch of %d failed: %r", batch.stats.events, exc)
                        self.failure = exc
                        self.stopping.set()
                        self._drain()
                        return
                    if not self._rewind:
                        log.warning(
                            "delivery of a batch of %d failed (%r); scoring it again",
                            batch.stats.events,
                            exc,
                        )
                    self._mark_for_rewind(batch)
                else:
                    if self._rewind:  # a batch before it failed: both are scored again
                        self._mark_for_rewind(batch)
                    else:
                        self._acknowledged(batch)
                if self.txn is None and time.monotonic() - committed_at >= self.commit_every_s:
                    await self._commit_ready()
                    committed_at = time.monotonic()
                self._inflight.task_done()
        finally:
            if getter is not None:
                getter.cancel()

    def _acknowledged(self, batch: InFlight) -> None:
        self._ready.update(batch.offsets)
        self.batches += 1
        if self.on_batch is not None:
            batch.stats.seconds = time.perf_counter() - batch.stats.seconds
            self.on_batch(batch.stats)

    def _mark_for_rewind(self, batch: InFlight) -> None:
        for tp, offset in batch.starts.items():
            self._rewind[tp] = min(offset, self._rewind.get(tp, offset))

    async def _rewind_now(self) -> None:
        """After a batch was not delivered: wait for the batches in flight (each marks its
        partitions too), commit what was acknowledged before it, start a fresh producer and
        seek back. Exactly once: abort the transaction the batch belonged to."""
        await self._inflight.join()
        if self.txn is not None:
            await self._commit_ready()  # aborts, as a batch of it was not delivered
            return
        await self._commit_ready()
        rewind, self._rewind = self._rewind, {}
        await self.sender.replace(self.make_producer)
        positions.seek(self.consumer, rewind)

    def _start_commit(self, idle: bool) -> asyncio.Future[None] | None:
        """Exactly once: start committing the open transaction when it is due, unless a
        commit is under way; the loop scores the next batch meanwhile. Returns the commit
        under way, if any; an error it ended in is raised here."""
        task = self._committing_txn
        if task is not None and task.done():
            self._committing_txn = None
            task.result()
            task = None
        if task is None and self.txn is not None and self.txn.due(self.commit_every_s, idle):
            self._committing_txn = task = asyncio.ensure_future(self._commit_transaction())
        return task

    async def _commit_transaction(self) -> None:
        """Commit the open transaction between two batches, once all of it is acknowledged."""
        async with self.lock:
            if self.txn is not None:
                self.txn.add_offsets(self.sender.producer)
            await self._inflight.join()
            await self._commit_ready()

    async def _send_leftovers(self) -> None:
        """Exactly once: send :attr:`monitor_leftovers` and commit them."""
        if self.txn is None or self.monitor_leftovers is None or self.failure is not None:
            return
        records = self.monitor_leftovers()
        if not records:
            return
        await self.txn.include(self.sender.producer, {}, {})
        acks = await self.sender.send_keyed(self.settings.topic_monitor, records)
        results = await asyncio.gather(*acks, return_exceptions=True)
        failed = any(isinstance(r, BaseException) for r in results)
        async with self._committing:  # aborted, they are carried to the next transaction
            await self._end_transaction(failed)

    async def _end_transaction(self, failed: bool = False) -> None:
        """Commit the open transaction, or abort it (:meth:`Transaction.end`) and read again
        from the offsets committed. ``failed``: a send of it was not acknowledged."""
        assert self.txn is not None
        self._ready.clear()  # acknowledged; the transaction knows the offsets of its batches
        abort, self._rewind = failed or bool(self._rewind), {}
        try:
            again = await self.txn.end(self.sender, self.make_producer, self.consumer, abort)
        except (TransactionFencedError, KafkaError) as exc:  # a restart mends it, or says why
            log.error("%s", exc)
            self.failure = exc
            self.stopping.set()
            return
        if again is not None:
            positions.seek(self.consumer, again)
            self.rereads += 1
            self._reread_from = again

    def _read_again(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        """A batch fetched (and scored) while the transaction before it was aborted: sent
        now, it would commit in the next transaction, and the abort's rewind would score its
        events again. Each of its partitions is read again from its first record, or from
        where the abort moved it when that is earlier."""
        positions.seek(
            self.consumer,
            {
                tp: min(messages[0].offset, self._reread_from.get(tp, messages[0].offset))
                for tp, messages in fetched.items()
                if messages
            },
        )

    def _drain(self) -> None:
        while not self._inflight.empty():
            self._inflight.get_nowait()
            self._inflight.task_done()
        self._inflight.task_done()

    async def _commit_ready(self) -> None:
        """Commit the acknowledged offsets not committed yet (the newest per partition);
        exactly once, with the open transaction (the caller waited for its batches)."""
        async with self._committing:  # a settle waits for the commit the timer started
            if self.txn is not None:
                await self._end_transaction()
                return
            if not self._ready:
                return
            offsets, self._ready = self._ready, {}
            try:
                await self.consumer.commit(offsets)
            except (CommitFailedError, KafkaError) as exc:
                # The partitions moved on: their new owner scores these events again.
                log.warning("commit of %s failed (%s); they will be rescored", offsets, exc)


__all__ = ["PartitionedSender", "ScoringLoop"]
