"""Kafka I/O of the benchmark: preload a backlog, offer a paced load, collect predictions.

The harness measures from the outside, as a user would: it produces events to the events
topic and reads the predictions topic. Throughput comes from when the predictions arrived
at the collector, not from the records' timestamps: a processor may carry each input's
timestamp over to its output (Quix Streams does), and then the predictions' timestamps tell
when the backlog was produced, not when it was scored. The broker timestamps are kept beside,
to show that the collector keeps up (both rates agree for the contenders that stamp their
sends); latency is the time from when an event was due (when an application producing at that rate
would have handed it to its producer) to its prediction's arrival at the collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from streams.scoring.loop import PartitionedSender

EventBytes = tuple[bytes, bytes, int]  # (key, value, the partition its key hashes to)
# The paced sender sends what is due at most this often. Each request costs the broker and
# the harness more than the events in it on these machines (bench/README.md): 2 ms ticks send
# half the requests of 1 ms ones, and the hold they add (1 ms on average) is counted.
TICK_S = 0.002
COLLECT_MAX_RECORDS = 1_000


def event_payloads(
    rows: Sequence[dict[str, float]], *, prefix: str, n: int, partitions: int
) -> list[EventBytes]:
    """``n`` JSON events cycling through ``rows``; ids are ``<prefix>-<i>``, and each is
    placed on one of ``partitions`` by its key, as aiokafka's default partitioner does (done
    here, before any clock starts: it is pure Python, ~3 µs per key)."""
    out: list[EventBytes] = []
    for i in range(n):
        event_id = f"{prefix}-{i}"
        doc = {"event_id": event_id, "features": rows[i % len(rows)], "ts": time.time()}
        key = event_id.encode()
        out.append((key, orjson.dumps(doc), (murmur2(key) & 0x7FFFFFFF) % partitions))
    return out


async def preload(bootstrap: str, topic: str, events: Sequence[EventBytes]) -> float:
    """Produce ``events`` as fast as the broker takes them; return the seconds it took."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=262_144)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value, _ in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


@dataclass
class Collected:
    """What the collector saw on the predictions topic."""

    ids: dict[str, int] = field(default_factory=dict)  # event id -> predictions seen
    broker_ms: list[int] = field(default_factory=list)  # broker timestamps, arrival order
    arrived: dict[str, float] = field(default_factory=dict)  # first arrival, perf_counter
    versions: list[tuple[float, str]] = field(default_factory=list)  # (arrival, version)

    @property
    def unique(self) -> int:
        return len(self.ids)

    @property
    def duplicates(self) -> int:
        return sum(self.ids.values()) - len(self.ids)


class Collector:
    """Reads a predictions topic from its start, in the background, until stopped."""

    def __init__(
        self, bootstrap: str, topic: str, partitions: int, *, keep_versions: bool = False
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.keep_versions = keep_versions
        self.seen = Collected()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), timeout=60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=5,
            max_partition_fetch_bytes=4_194_304,
            # exactly once, an output counts when it is committed, as a reader would see it
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(self.topic, p) for p in range(self.partitions)])
            await consumer.seek_to_beginning()
            self._ready.set()
            seen = self.seen
            keep_versions = self.keep_versions
            while True:
                # At most a thousand records per call: the paced sender shares this loop, and
                # a call over a backlog of 10,000 held it for ~30 ms, delaying the sends whose
                # latency the run then measured.
                batch = await consumer.getmany(timeout_ms=100, max_records=COLLECT_MAX_RECORDS)
                now = time.perf_counter()
                for messages in batch.values():
                    for m in messages:
                        # The harness keys every event by its id, and a prediction keeps its
                        # event's key: the id without parsing the prediction.
                        if keep_versions:
                            doc = orjson.loads(m.value)
                            event_id = doc["event_id"]
                            seen.versions.append((now, doc["version"]))
                        else:
                            event_id = m.key.decode()
                        count = seen.ids.get(event_id, 0)
                        seen.ids[event_id] = count + 1
                        if not count:
                            seen.arrived[event_id] = now
                        seen.broker_ms.append(m.timestamp)
        finally:
            await consumer.stop()

    async def wait_for(self, n: int, timeout_s: float) -> bool:
        """Wait until ``n`` distinct events were predicted (False on timeout)."""
        deadline = time.monotonic() + timeout_s
        while self.seen.unique < n:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True


async def paced(
    bootstrap: str, topic: str, events: Sequence[EventBytes], rate: float
) -> dict[str, float]:
    """Offer ``events`` at ``rate`` per second; return when each event id was due.

    Event ``i`` is due ``i / rate`` seconds after the start; its latency counts from then, so
    the time it waits for the next tick (and any lateness of the sender) is part of it.

    Every tick (at most one per ``TICK_S``) sends what is due, then yields to the event
    loop until the next event is due: the collector shares this loop, and a sender that never
    yielded while behind would hold back both the arrivals it reads and the producer's own
    transmissions, adding the harness's stall to every latency it measures.

    What is due goes out as one record batch per partition (the worker's own
    :class:`PartitionedSender`), to the partition the producer's partitioner would choose
    for its key: one ``send`` per event had made the sender the busiest part of the harness
    (39 % of its time at 22,000 events/s), CPU the worker and the broker share with it.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)
    await producer.start()
    sender = PartitionedSender(producer)
    partitions = await sender.partitions(topic)
    messages = [(key, value) for key, value, _ in events]
    placed = [partition for _, _, partition in events]
    if any(p >= partitions for p in placed):
        raise ValueError(f"events placed on more partitions than {topic}'s {partitions}")
    sent: dict[str, float] = {}
    started = time.perf_counter()
    i, n = 0, len(events)
    try:
        while i < n:
            due = min(n, int((time.perf_counter() - started) * rate) + 1)
            if due > i:
                for j in range(i, due):
                    sent[messages[j][0].decode()] = started + j / rate
                await sender.send_aligned(topic, messages[i:due], placed[i:due], partitions)
            i = max(i, due)
            await asyncio.sleep(max(TICK_S, started + i / rate - time.perf_counter()))
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def rate_from_timestamps(seconds: Sequence[float], trim: float = 0.05) -> float:
    """Events per second between the ``trim`` and ``1 - trim`` quantiles of ``seconds`` (one
    time per event: its first arrival, or its prediction's broker timestamp / 1000).

    Trimming drops the warm-up (group join, first fetches) and the tail of the run.
    """
    if len(seconds) < 20:
        return 0.0
    ts = sorted(seconds)
    lo, hi = int(len(ts) * trim), int(len(ts) * (1 - trim)) - 1
    span = ts[hi] - ts[lo]
    return (hi - lo) / span if span > 0 else float("inf")


__all__ = [
    "Collected",
    "Collector",
    "EventBytes",
    "event_payloads",
    "paced",
    "preload",
    "rate_from_timestamps",
]
