"""What the fault-injection scenarios share: a producer and a collector that run in the
background while the test kills, restarts and measures things, worker processes, consumer
lag and resident memory.

The producer and the collector run on an asyncio loop of their own in a thread, so that the
test body stays plain, sequential code: start a worker, wait for progress, pull a plug.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from streams.adapters.kafka_admin import create_topics
from tests.conftest import Endpoints
from tests.integration.workerkit import Deployment, end_offsets
from tests.waiting import wait_for

T = TypeVar("T")
# a JSON document, raw bytes, a null value, or (key, value) as it is to be sent
Value = bytes | dict[str, Any] | tuple[bytes | None, bytes | None] | None


class Background:
    """An asyncio loop in a daemon thread: run coroutines there, from plain test code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def spawn(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T], timeout: float = 120.0) -> T:
        return self.spawn(coro).result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_all(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def deployment(kafka: str, redis_url: str, unique: str, root: Path) -> Deployment:
    """A test's deployment on these services: its topics (4 partitions) and a champion."""
    dep = Deployment(Endpoints(kafka=kafka, redis=redis_url), unique, root)
    asyncio.run(create_topics(kafka, dep.topics.values(), partitions=4))
    dep.registry.promote(dep.model, dep.add_version())
    return dep


# -- producing --------------------------------------------------------------------------
@dataclass
class Sent:
    """What the background producer got acknowledged, in order: (partition, offset) each."""

    positions: list[tuple[int, int]] = field(default_factory=list)
    done: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def count(self) -> int:
        return len(self.positions)


def _encode(value: Value) -> tuple[bytes | None, bytes | None]:
    """(key, value) as the worker's users send them: keyed by entity, else by event id."""
    if isinstance(value, tuple):
        return value
    if not isinstance(value, dict):
        return None, value
    key = value.get("entity") or value.get("event_id")
    return (key.encode() if isinstance(key, str) else None), orjson.dumps(value)


async def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[Value],
    *,
    rate: float = 0.0,
    sent: Sent | None = None,
    chunk: int = 500,
) -> Sent:
    """Produce ``values`` at ``rate`` per second (0: as fast as possible), acked by chunks.

    Idempotent, with a long delivery timeout: a broker restart delays records, it neither
    loses nor duplicates them, so what the topic holds is exactly what was sent.
    """
    out = sent or Sent()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        enable_idempotence=True,
        request_timeout_ms=180_000,
        max_request_size=4_194_304,
    )
    await producer.start()
    out.started_at = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    n = 0

    async def settle() -> None:
        for meta in await asyncio.gather(*pending):
            out.positions.append((meta.partition, meta.offset))
        pending.clear()

    try:
        for value in values:
            key, raw = _encode(value)
            pending.append(await producer.send(topic, raw, key=key))
            n += 1
            if len(pending) >= chunk:
                await settle()
            if rate and n % 50 == 0:
                ahead = out.started_at + n / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await settle()
    finally:
        await producer.stop()
    out.finished_at = time.monotonic()
    out.done = True
    return out


# -- collecting -------------------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    """One output record: whose event, where it landed, when the worker made it, when read."""

    event_id: str | None
    partition: int
    offset: int
    ts_ms: int
    arrival: float
    doc: dict[str, Any] | None


class Collector:
    """Read a topic from its start, in the background, until stopped.

    ``keep`` decides what is kept of each record: ``"docs"`` everything, ``"seen"`` the
    :class:`Seen` without the document, ``"numbered"`` only a count per event numbered
    ``<prefix>-<n>`` (one byte each: millions of events in a long soak).
    """

    def __init__(self, bootstrap: str, topic: str, keep: str = "seen") -> None:
        self.bootstrap, self.topic, self.keep = bootstrap, topic, keep
        self.records: list[Seen] = []
        self.ids: Counter[str] = Counter()
        self.numbered = bytearray()
        self.count = 0
        self.errors = 0
        self.positions: dict[int, int] = {}  # partition -> the next offset to read
        self._stop = threading.Event()
        self.ready = threading.Event()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_bytes=8 * 1_048_576,
        )
        await consumer.start()
        self.ready.set()
        try:
            while not self._stop.is_set():
                try:
                    batch = await consumer.getmany(timeout_ms=200)
                except KafkaError:
                    self.errors += 1  # a broker restart: the consumer reconnects by itself
                    await asyncio.sleep(0.5)
                    continue
                now = time.monotonic()
                for messages in batch.values():
                    for m in messages:
                        self._take(m, now)
                for tp in batch:
                    self.positions[tp.partition] = await consumer.position(tp)
        finally:
            await consumer.stop()

    def _take(self, m: Any, now: float) -> None:
        try:
            doc = orjson.loads(m.value)
        except orjson.JSONDecodeError:
            doc = {}
        eid = doc.get("event_id") if isinstance(doc, dict) else None
        self.count += 1
        if self.keep == "numbered":
            n = int(str(eid).rsplit("-", 1)[1])
            if n >= len(self.numbered):
                self.numbered.extend(bytes(max(n + 1 - len(self.numbered), 1 << 16)))
            self.numbered[n] = min(self.numbered[n] + 1, 255)
            return
        if eid is not None:
            self.ids[eid] += 1
        kept = doc if self.keep == "docs" else None
        self.records.append(Seen(eid, m.partition, m.offset, m.timestamp, now, kept))

    def stop(self) -> None:
        self._stop.set()

    def read_up_to(self, ends: dict[int, int]) -> bool:
        """Whether every partition was read up to its offset in ``ends``."""
        return all(self.positions.get(p, 0) >= end for p, end in ends.items())

    def missing(self, wanted: Iterable[str]) -> set[str]:
        return {eid for eid in wanted if eid not in self.ids}

    def missing_numbered(self, total: int) -> int:
        """How many of the events numbered 0 .. ``total`` - 1 have no output (``"numbered"``)."""
        seen = self.numbered[:total]
        return total - len(seen) + seen.count(0)

    def duplicates(self) -> int:
        if self.keep == "numbered":
            return sum(n - 1 for n in self.numbered if n > 1)
        return sum(n - 1 for n in self.ids.values() if n > 1)


def settle(bg: Background, dep: Deployment, *collectors: Collector, timeout_s: float = 90) -> None:
    """Wait until the workers committed every event sent, and each collector read its topic up
    to where it ended then: a worker commits an event after its outputs were acknowledged and
    never scores it again, so every output for those events (late duplicates included) has
    been read, however slow the machine; no fixed wait for stragglers."""
    wait_for("the workers to commit every event", lambda: bg.run(dep.scored_all()), timeout_s, 0.25)
    for c in collectors:
        ends = bg.run(end_offsets(c.bootstrap, c.topic))
        wait_for(f"{c.topic} read to its end", lambda c=c, ends=ends: c.read_up_to(ends), timeout_s)


# -- worker processes --------------------------------------------------------------------
class Workers:
    """``driftline worker`` subprocesses of one deployment; every one is stopped on exit."""

    def __init__(self, dep: Deployment, env: dict[str, str] | None = None) -> None:
        self.dep = dep
        # /metrics and /health on a free port each: several workers share this machine
        self.env = {**dep.env, "DRIFTLINE_METRICS_PORT": "0", **(env or {})}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> subprocess.Popen[bytes]:
        with (self.dep.root / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dep.root,
            )
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> float:
        """Signal a worker and wait for it; return how long it took to exit."""
        proc = self.procs[name]
        start = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(
                    f"worker {name} ignored {signal.Signals(sig).name} for {timeout_s:.0f}s"
                ) from None
        return time.monotonic() - start

    def ready(self, name: str, timeout_s: float = 120.0) -> float:
        """Wait until the worker's scoring consumer holds partitions; return the seconds."""
        proc = self.procs[name]

        def scoring() -> bool:
            assert proc.poll() is None, f"worker {name} exited\n{self.log(name)}"
            return re.search(r"scoring partitions: \[\d", self.full_log(name)) is not None

        return wait_for(f"worker {name} scoring", scoring, timeout_s, 0.05)

    def health(self, name: str) -> dict[str, Any] | None:
        """The worker's ``/health`` document (None until it serves one)."""
        proc = self.procs[name]
        port_file = Path(self.env["DRIFTLINE_DATA_DIR"]) / "metrics" / f"worker-{proc.pid}.json"
        try:
            port = orjson.loads(port_file.read_bytes())["port"]
            url = f"http://127.0.0.1:{port}/health"
            with urllib.request.urlopen(url, timeout=5) as answer:
                body = answer.read()
        except urllib.error.HTTPError as exc:  # 503: not ready, or stuck; the body says why
            body = exc.read()
        except (OSError, ValueError, KeyError):
            return None
        doc = orjson.loads(body)
        return doc if isinstance(doc, dict) else None

    def log(self, name: str, tail: int = 6000) -> str:
        path = self.dep.root / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def full_log(self, name: str) -> str:
        path = self.dep.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) that ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


# -- consumer lag ------------------------------------------------------------------------
class LagProbe:
    """Committed offsets of a consumer group against the end offsets of its topic."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int = 4) -> None:
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]

    async def start(self) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        await self.admin.start()
        await self.consumer.start()

    async def lag(self) -> int:
        """Events of the topic not committed by the group yet (all of them before a commit)."""
        committed = await self.admin.list_consumer_group_offsets(self.group)
        ends = await self.consumer.end_offsets(self.partitions)
        total = 0
        for tp in self.partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            total += max(ends[tp] - done, 0)
        return total

    async def close(self) -> None:
        await self.consumer.stop()
        await self.admin.close()


class Tap:
    """A stream whose end the test decides: ``events`` in order until :meth:`close`."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for event in self.events:
            if self._closed.is_set():
                return
            yield event

    def close(self) -> None:
        self._closed.set()


def stamped(
    events: list[dict[str, Any]], prefix: str, total: int, first: int = 0
) -> Iterator[dict[str, Any]]:
    """``total`` events cycled from ``events``, numbered ``<prefix>-<first>`` on (soaks)."""
    for i in range(first, first + total):
        event = events[i % len(events)]
        yield {**event, "event_id": f"{prefix}-{i}"}


__all__ = [
    "Background",
    "Collector",
    "LagProbe",
    "Seen",
    "Sent",
    "Tap",
    "Workers",
    "cpu_s",
    "produce",
    "rss_kib",
    "settle",
    "stamped",
    "wait_for",
]
