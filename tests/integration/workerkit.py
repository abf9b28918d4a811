"""Helpers for tests that run a real scoring worker against the session's Kafka and Redis."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from models.data import synthetic
from models.registry import Registry
from models.workflow import TrainOptions, train
from streams.config.settings import Settings, env_name
from streams.contracts.names import scorer_group
from streams.local.producer import dataset_events
from tests.conftest import Endpoints


@dataclass
class Deployment:
    """One test's model registry, topic names and worker environment."""

    services: Endpoints
    unique: str
    root: Path
    model: str = "credit"
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model = f"credit-{self.unique}"
        self.registry = Registry(self.root / "registry")
        self.topics = {
            name: f"{name}-{self.unique}"
            for name in (
                "events",
                "predictions",
                "labels",
                "dlq",
                "updates",
                "alerts",
                "retrain",
                "monitor",
            )
        }
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
        }
        # every topic of this deployment is its own: a shared one would leak between tests
        topics = {env_name(f) for f in Settings.model_fields if f.startswith("topic_")}
        missing = topics - {env_name("topic_partitions")} - self.env.keys()
        assert not missing, f"workerkit gives no name to {sorted(missing)}"

    def add_version(self, estimator: str = "logreg", seed: int = 1) -> str:
        """Train a small Agrawal model and register it; return its version."""
        ds = synthetic("agrawal", rows=1500, seed=seed)
        result = train(ds, TrainOptions(name=self.model, estimator=estimator, folds=3, seed=seed))
        return self.registry.register(result.payload, result.card).version

    @contextmanager
    def worker(
        self, name: str = "worker", command: str = "worker"
    ) -> Iterator[subprocess.Popen[bytes]]:
        """Run ``driftline worker`` (or another command) in a subprocess during the block."""
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", command],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()

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

    def log(self, name: str = "worker") -> str:
        return self.full_log(name)[-4000:]

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
        try:
            lag = await group_lag(self.services.kafka, self.scorer_group, self.topics["events"])
        except KafkaError:  # e.g. no coordinator for the group yet: not there yet either
            return False
        return lag == 0

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


async def send(
    bootstrap: str, topic: str, values: Iterable[bytes | dict[str, Any]], rate: float = 0.0
) -> int:
    """Produce ``values`` (dicts are JSON-encoded), optionally at ``rate`` per second."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_request_size=4_194_304
    )
    await producer.start()
    n = 0
    start = time.monotonic()
    try:
        for value in values:
            raw = value if isinstance(value, bytes) else orjson.dumps(value)
            key = value.get("entity") or value.get("event_id") if isinstance(value, dict) else None
            await producer.send(topic, raw, key=key.encode() if key else None)
            n += 1
            if rate and n % 100 == 0:
                ahead = start + n / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    return n


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
) -> list[dict[str, Any]]:
    """Read ``topic`` from the start until ``until`` messages came.

    With ``complete``, an async check that nothing more will be written for what was sent
    (:meth:`Deployment.scored_all`: the worker committed every event, after its outputs were
    acknowledged; :func:`nothing_pending`: the writer has finished), read on until it holds
    and then up to the end of the topic as it was then: every record, duplicates and strays
    included, however slow the machine. ``AssertionError`` when it does not hold in time.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    ends: dict[TopicPartition, int] | None = None
    try:
        while loop.time() < deadline:
            if worker is not None and worker.poll() is not None:
                break
            batch = await consumer.getmany(timeout_ms=300)
            for tp, messages in batch.items():
                for m in messages:
                    doc = orjson.loads(m.value)
                    doc["_partition"] = tp.partition
                    doc["_offset"] = m.offset
                    out.append(doc)
            if len(out) < until:
                continue
            if complete is None:
                return out
            if ends is None and await complete():
                ends = await consumer.end_offsets(list(consumer.assignment()))
            if ends is not None and all(
                [await consumer.position(tp) >= end for tp, end in ends.items()]
            ):
                return out
    finally:
        await consumer.stop()
    if complete is not None and len(out) >= until:
        raise AssertionError(
            f"{topic}: {len(out)} records read, but in {timeout_s:g}s "
            + ("nothing said that no more are coming" if ends is None else "not up to its end")
        )
    return out


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of each partition of ``topic`` now."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()  # with the topic's metadata
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        assert parts, f"no partitions known for {topic}"
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in sorted(parts)])
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records of ``topic`` that ``group`` has not committed yet (all, before its first)."""
    ends = await end_offsets(bootstrap, topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    total = 0
    for partition, end in ends.items():
        meta = committed.get(TopicPartition(topic, partition))
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        total += max(end - done, 0)
    return total


__all__ = [
    "Deployment",
    "agrawal_events",
    "collect",
    "end_offsets",
    "group_lag",
    "nothing_pending",
    "send",
]
