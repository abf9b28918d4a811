"""The one kit of the tests that run real ``driftline`` processes on a real Kafka and Redis.

- :class:`Deployment`: one test's model registry, topic names and worker environment
  (:meth:`Deployment.up` also creates its topics and, if asked, a champion);
- :func:`produce`: the one way to write a topic (:meth:`Deployment.produce` for its own);
- :class:`Collector`: the one way to read a topic, in the background until stopped, and
  :func:`collect`, the same until enough came (:meth:`Deployment.collect` for its own);
- :class:`Workers`: ``driftline`` subprocesses (:meth:`Deployment.worker` runs one for a
  ``with`` block);
- :func:`end_offsets`, :class:`LagProbe`, :func:`group_lag` and :func:`committed_all`: where
  a topic ends and what a consumer group has committed of it;
- :class:`Background` and :func:`settle`: producers and collectors on a loop of their own,
  for scenarios whose body is plain, sequential code (start a worker, pull a plug).
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import itertools
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
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from models.data import synthetic
from models.registry import Registry
from models.workflow import TrainOptions, train
from streams.adapters.kafka_admin import client_options
from streams.adapters.kafka_topics import ensure_topics
from streams.adapters.redis_client import sync_redis
from streams.config.settings import Settings, env_name
from streams.config.topics import TOPIC_KINDS, with_topic_names
from streams.contracts.names import scorer_group, state_key
from streams.local.producer import dataset_events
from tests.conftest import Endpoints
from tests.waiting import wait_for

T = TypeVar("T")
# a JSON document, raw bytes, a null value, or (key, value) as it is to be sent
Value = bytes | dict[str, Any] | tuple[bytes | None, bytes | None] | None
# the topics of a deployment, by the short name tests use
TOPICS = ("events", "predictions", "labels", "dlq", "updates", "alerts", "retrain", "monitor")


# -- the deployment ------------------------------------------------------------------------
@dataclass
class Deployment:
    """One test's model registry, topic names and worker environment.

    ``settings``: the client settings (e.g. SASL) the test's own producers and collectors
    connect with; none for the plain session services."""

    services: Endpoints
    unique: str
    root: Path
    model: str = "credit"
    env: dict[str, str] = field(default_factory=dict)
    settings: Settings | None = None

    def __post_init__(self) -> None:
        self.model = f"credit-{self.unique}"
        self.registry = Registry(self.root / "registry")
        self.topics = {name: f"{name}-{self.unique}" for name in TOPICS}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")},
            "DRIFTLINE_KAFKA_BOOTSTRAP": self.services.kafka,
            "DRIFTLINE_REDIS_URL": self.services.redis,
            "DRIFTLINE_REGISTRY": str(self.registry.root),
            "DRIFTLINE_DATA_DIR": str(self.root / "data"),
            "DRIFTLINE_MODEL": self.model,
            "DRIFTLINE_TOPIC_EVENTS": self.topics["events"],
            "DRIFTLINE_TOPIC_PREDICTIONS": self.topics["predictions"],
            "DRIFTLINE_TOPIC_LABELS": self.topics["labels"],
            "DRIFTLINE_TOPIC_DLQ": self.topics["dlq"],
            "DRIFTLINE_TOPIC_MODEL_UPDATES": self.topics["updates"],
            "DRIFTLINE_TOPIC_ALERTS": self.topics["alerts"],
            "DRIFTLINE_TOPIC_RETRAIN_REQUESTS": self.topics["retrain"],
            "DRIFTLINE_TOPIC_MONITOR": self.topics["monitor"],
            "DRIFTLINE_RELOAD_INTERVAL_S": "1.0",
            "DRIFTLINE_LOG_LEVEL": "INFO",
            "DRIFTLINE_METRICS_PORT": "0",  # several workers of a test share the host
            # Fewer than the default 12: hundreds of tests' topics share one broker. A test
            # of scale-out asks for more (Deployment.up's env).
            "DRIFTLINE_TOPIC_PARTITIONS": "4",
        }
        # every topic of this deployment is its own: a shared one would leak between tests
        topics = {env_name(f"topic_{kind}") for kind in TOPIC_KINDS}
        missing = topics - self.env.keys()
        assert not missing, f"the kit gives no name to {sorted(missing)}"

    @classmethod
    def up(
        cls,
        services: Endpoints,
        unique: str,
        root: Path,
        *,
        champion: str | None = None,
        monitor: Mapping[str, Any] | None = None,
        settings: Settings | None = None,
        **env: str,
    ) -> Deployment:
        """A deployment with its topics created (4 partitions each unless ``env`` says
        ``DRIFTLINE_TOPIC_PARTITIONS``); ``monitor``: the
        workers' monitoring config (and a snapshot every half second); ``env``: more of the
        workers' environment; ``champion``: a model of that estimator promoted."""
        dep = cls(services, unique, root, settings=settings)
        if monitor is not None:
            dep.env.update(
                DRIFTLINE_MONITOR=orjson.dumps(dict(monitor)).decode(),
                DRIFTLINE_SNAPSHOT_INTERVAL_S="0.5",
            )
        dep.env.update(env)
        planned = with_topic_names(settings or Settings(), dep.env)
        partitions = int(dep.env["DRIFTLINE_TOPIC_PARTITIONS"])
        asyncio.run(
            ensure_topics(
                services.kafka, planned.model_copy(update={"topic_partitions": partitions})
            )
        )
        if champion is not None:
            dep.registry.promote(dep.model, dep.add_version(champion))
        return dep

    def add_version(self, estimator: str = "logreg", seed: int = 1) -> str:
        """Train a small Agrawal model and register it; return its version."""
        ds = synthetic("agrawal", rows=1500, seed=seed)
        result = train(ds, TrainOptions(name=self.model, estimator=estimator, folds=3, seed=seed))
        return self.registry.register(result.payload, result.card).version

    @property
    def options(self) -> dict[str, Any]:
        """What a Kafka client of the test needs besides the bootstrap servers."""
        return client_options(self.settings) if self.settings is not None else {}

    async def produce(self, topic: str, values: Iterable[Value], rate: float = 0.0) -> Sent:
        """:func:`produce` to this deployment's ``topic`` (a short name: ``"events"``)."""
        return await produce(
            self.services.kafka, self.topics[topic], values, rate=rate, options=self.options
        )

    def score(
        self,
        events: Sequence[dict[str, Any]],
        worker: subprocess.Popen[bytes],
        timeout_s: float = 120,
    ) -> list[dict[str, Any]]:
        """Send ``events`` and read every prediction, up to the end of the topic once the
        workers committed them all (duplicates included)."""
        asyncio.run(self.produce("events", events))
        return asyncio.run(
            self.collect(
                "predictions",
                len(events),
                timeout_s=timeout_s,
                worker=worker,
                complete=self.scored_all,
            )
        )

    async def collect(
        self,
        topic: str,
        until: int,
        *,
        timeout_s: float,
        worker: subprocess.Popen[bytes] | None = None,
        complete: Callable[[], Awaitable[bool]] | None = None,
    ) -> list[dict[str, Any]]:
        """:func:`collect` of this deployment's ``topic`` (a short name: ``"predictions"``)."""
        return await collect(
            self.services.kafka,
            self.topics[topic],
            until,
            timeout_s=timeout_s,
            worker=worker,
            complete=complete,
            options=self.options,
        )

    @contextmanager
    def worker(
        self, name: str = "worker", command: str = "worker"
    ) -> Iterator[subprocess.Popen[bytes]]:
        """Run ``driftline worker`` (or another command) in a subprocess during the block."""
        with Workers(self) as workers:
            yield workers.start(name, command)

    def cli(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        """Run one ``driftline`` command with this deployment's environment."""
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            cwd=self.root,
        )

    def log(self, name: str = "worker", tail: int = 4000) -> str:
        """The end of a process's log."""
        return self.full_log(name)[-tail:]

    def full_log(self, name: str = "worker") -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def scorer_group(self) -> str:
        """The consumer group of the workers' scoring loops."""
        return scorer_group(self.model)

    async def scored_all(self) -> bool:
        """Whether the workers committed every event sent so far: they acknowledged every
        output for them first, and will not score them again."""
        return await committed_all(self.services.kafka, self.scorer_group, self.topics["events"])

    def assignments(self, name: str = "worker") -> list[list[int]]:
        """The partitions a worker's scoring loop was given, one list per rebalance."""
        found = re.findall(r"scoring partitions: \[([\d, ]*)\]", self.full_log(name))
        return [[int(p) for p in f.split(",") if p.strip()] for f in found]

    def swaps(self, name: str = "worker") -> list[dict[str, Any]]:
        """What a worker swapped to (versions and routing), one entry per swap, in order."""
        found = re.findall(r": swap .* -> (\{.*\})\s*$", self.full_log(name), re.MULTILINE)
        return [ast.literal_eval(f) for f in found]


def agrawal_events(
    n: int, *, prefix: str, entities: int = 0, seed: int = 7
) -> list[dict[str, Any]]:
    """``n`` valid events drawn from the Agrawal generator."""
    ds = synthetic("agrawal", rows=max(n, 50), seed=seed)
    return [event for event, _ in dataset_events(ds, prefix=prefix, entities=entities)][:n]


# -- worker processes ----------------------------------------------------------------------
class Workers:
    """``driftline`` subprocesses of one deployment; every one is stopped on exit."""

    def __init__(self, dep: Deployment, env: dict[str, str] | None = None) -> None:
        self.dep = dep
        self.env = {**dep.env, **(env or {})}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, *command: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``driftline <command…>`` (``worker`` by default), its output in
        ``<name>.log`` under the root; ``env``: more of this process's environment."""
        with (self.dep.root / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", *(command or ("worker",))],
                env={**self.env, **(env or {})},
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
            return any(self.dep.assignments(name))

        return wait_for(f"worker {name} scoring", scoring, timeout_s, 0.05)

    def _get(self, name: str, path: str) -> bytes | None:
        """The body of the worker's ``path`` (a 503's too), None until it serves one."""
        proc = self.procs[name]
        port_file = Path(self.env["DRIFTLINE_DATA_DIR"]) / "metrics" / f"worker-{proc.pid}.json"
        try:
            port = orjson.loads(port_file.read_bytes())["port"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                body: bytes = answer.read()
        except urllib.error.HTTPError as exc:  # 503: not ready, or stuck; the body says why
            body = exc.read()
        except (OSError, ValueError, KeyError):
            return None
        return body

    def health(self, name: str) -> dict[str, Any] | None:
        """The worker's ``/health`` document (None until it serves one)."""
        body = self._get(name, "/health")
        doc = orjson.loads(body) if body is not None else None
        return doc if isinstance(doc, dict) else None

    def metrics(self, name: str) -> str:
        """The worker's ``/metrics`` text ("" until it serves one)."""
        body = self._get(name, "/metrics")
        return body.decode() if body is not None else ""

    def log(self, name: str, tail: int = 6000) -> str:
        return self.dep.log(name, tail)

    def full_log(self, name: str) -> str:
        return self.dep.full_log(name)

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


# -- producing -----------------------------------------------------------------------------
@dataclass
class Sent:
    """What the producer got acknowledged, in order: (partition, offset) each."""

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
    options: Mapping[str, Any] | None = None,
) -> Sent:
    """Produce ``values`` (dicts as JSON) at ``rate`` per second (0: as fast as possible),
    acked by chunks; ``options``: more of the client's settings (e.g. SASL).

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
        **(options or {}),
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


def monitors_snapshot(redis_url: str, model: str) -> dict[str, Any]:
    """The monitors' part of ``model``'s last snapshot in Redis (``{}`` before the first)."""
    client = sync_redis(redis_url, None, socket_timeout=5)
    try:
        raw = client.get(state_key(model))
    finally:
        client.close()
    monitor = (orjson.loads(raw) if raw else {}).get("monitor")
    return monitor if isinstance(monitor, dict) else {}


# -- collecting ----------------------------------------------------------------------------
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
    """Read a topic from its start until stopped (or until :meth:`run`'s ``done`` holds).

    ``keep`` decides what is kept of each record: ``"docs"`` everything, ``"seen"`` the
    :class:`Seen` without the document, ``"numbered"`` only a count per event numbered
    ``<prefix>-<n>`` (one byte each: millions of events in a long soak).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        keep: str = "seen",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap, self.topic, self.keep = bootstrap, topic, keep
        self.options = dict(options or {})
        self.records: list[Seen] = []
        self.ids: Counter[str] = Counter()
        self.numbered = bytearray()
        self.count = 0
        self.errors = 0
        self.positions: dict[int, int] = {}  # partition -> the next offset to read
        self._stop = threading.Event()
        self.ready = threading.Event()

    async def run(self, done: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Read until :meth:`stop`, or until ``done`` (asked after each fetch) holds."""
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_bytes=8 * 1_048_576,
            **self.options,
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
                    batch = {}
                now = time.monotonic()
                for messages in batch.values():
                    for m in messages:
                        self._take(m, now)
                # every partition, not only those with records: reading committed, a fetch
                # may carry nothing but a transaction's commit marker, which moves it on
                for tp in batch or consumer.assignment():
                    self.positions[tp.partition] = await consumer.position(tp)
                if done is not None and await done():
                    return
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

    def partitions_since(self, wall: float) -> set[int]:
        """The partitions with a record made (its timestamp) at or after ``wall``."""
        return {r.partition for r in list(self.records) if r.ts_ms >= wall * 1000}

    def longest_pause(self, after_s: float) -> float:
        """The longest time between two records made after ``after_s`` - 1 s (wall clock)."""
        window = sorted(r.ts_ms for r in list(self.records) if r.ts_ms >= (after_s - 1.0) * 1000)
        return max((b - a for a, b in itertools.pairwise(window)), default=0) / 1000


async def nothing_pending() -> bool:
    """For :func:`collect`'s ``complete``: whatever writes the topic has finished (it exited,
    or it was this test and its sends were acknowledged)."""
    return True


async def collect(
    bootstrap: str,
    topic: str,
    until: int,
    *,
    timeout_s: float,
    worker: subprocess.Popen[bytes] | None = None,
    complete: Callable[[], Awaitable[bool]] | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Read ``topic`` from the start until ``until`` messages came (or ``worker`` exited, or
    ``timeout_s`` passed); each document with its ``_partition`` and ``_offset``.

    With ``complete``, an async check that nothing more will be written for what was sent
    (:meth:`Deployment.scored_all`: the worker committed every event, after its outputs were
    acknowledged; :func:`nothing_pending`: the writer has finished), read on until it holds
    and then up to the end of the topic as it was then: every record, duplicates and strays
    included, however slow the machine. ``AssertionError`` when it does not hold in time.
    """
    reader = Collector(bootstrap, topic, keep="docs", options=options)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    ends: dict[int, int] | None = None
    finished = False

    async def done() -> bool:
        nonlocal ends, finished
        if reader.count >= until:
            if complete is None:
                finished = True
            elif ends is None and await complete():
                ends = await end_offsets(bootstrap, topic, options)
            finished = finished or (ends is not None and reader.read_up_to(ends))
        exited = worker is not None and worker.poll() is not None
        return finished or exited or loop.time() >= deadline

    await reader.run(done)
    if complete is not None and reader.count >= until and not finished:
        raise AssertionError(
            f"{topic}: {reader.count} records read, but in {timeout_s:g}s "
            + ("nothing said that no more are coming" if ends is None else "not up to its end")
        )
    return [
        {**(r.doc or {}), "_partition": r.partition, "_offset": r.offset} for r in reader.records
    ]


# -- where a topic ends, what a group committed ---------------------------------------------
async def end_offsets(
    bootstrap: str, topic: str, options: Mapping[str, Any] | None = None
) -> dict[int, int]:
    """The end offset of each partition of ``topic`` now."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, **(options or {})
    )
    await consumer.start()  # with the topic's metadata
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        assert parts, f"no partitions known for {topic}"
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in sorted(parts)])
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


class LagProbe:
    """Committed offsets of a consumer group against the end offsets of its topic, with
    clients kept open between samples."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        ends = await end_offsets(self.bootstrap, self.topic)
        self.partitions = [TopicPartition(self.topic, p) for p in sorted(ends)]
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        await self.admin.start()
        await self.consumer.start()

    async def lag(self) -> int:
        """Records of the topic not committed by the group yet (all of them before a commit)."""
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


async def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records of ``topic`` that ``group`` has not committed yet (all, before its first)."""
    probe = LagProbe(bootstrap, group, topic)
    await probe.start()
    try:
        return await probe.lag()
    finally:
        await probe.close()


async def committed_all(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` committed every record of ``topic`` written so far."""
    try:
        return await group_lag(bootstrap, group, topic) == 0
    except KafkaError:  # e.g. no coordinator for the group yet: not there yet either
        return False


# -- scenarios in plain code -----------------------------------------------------------------
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


def settle(bg: Background, dep: Deployment, *collectors: Collector, timeout_s: float = 90) -> None:
    """Wait until the workers committed every event sent, and each collector read its topic up
    to where it ended then: a worker commits an event after its outputs were acknowledged and
    never scores it again, so every output for those events (late duplicates included) has
    been read, however slow the machine; no fixed wait for stragglers."""
    wait_for("the workers to commit every event", lambda: bg.run(dep.scored_all()), timeout_s, 0.25)
    for c in collectors:
        ends = bg.run(end_offsets(c.bootstrap, c.topic, c.options))
        wait_for(f"{c.topic} read to its end", lambda c=c, ends=ends: c.read_up_to(ends), timeout_s)


__all__ = [
    "TOPICS",
    "Background",
    "Collector",
    "Deployment",
    "LagProbe",
    "Seen",
    "Sent",
    "Value",
    "Workers",
    "agrawal_events",
    "collect",
    "committed_all",
    "end_offsets",
    "group_lag",
    "nothing_pending",
    "produce",
    "settle",
]
