"""Event sources for ``driftline produce``: synthetic datasets and CSV/JSONL replays.

Each source yields ``(event, label)`` pairs: an event document as users would produce it and
its ground truth (or None when the file carries none).
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, Producer

from models.data import Dataset
from streams.contracts.messages import SCHEMA_VERSION
from streams.errors import ConfigError, ServiceError

Pair = tuple[dict[str, Any], Any]


def dataset_events(ds: Dataset, *, prefix: str, entities: int) -> Iterator[Pair]:
    """Events of every row of ``ds`` (NaN and ``""`` become null), with their labels."""
    numeric = ds.numeric.tolist()
    categorical = ds.categorical.tolist()
    for i in range(len(ds)):
        features: dict[str, Any] = {
            name: None if math.isnan(v) else v
            for name, v in zip(ds.numeric_names, numeric[i], strict=True)
        }
        features.update(
            (name, v or None) for name, v in zip(ds.categorical_names, categorical[i], strict=True)
        )
        event = {
            "event_id": f"{prefix}-{i}",
            "features": features,
            "entity": f"entity-{i % entities}" if entities else None,
            "ts": time.time(),
        }
        yield event, int(ds.y[i])


def file_events(path: Path, *, prefix: str, label_column: str | None) -> Iterator[Pair]:
    """Events replayed from a JSONL file of events or a CSV file of feature rows."""
    if not path.exists():
        raise ConfigError(f"no such file: {path}")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with path.open("rb") as fh:
            for n, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{n + 1}: not JSON: {exc}") from exc
                label = doc.pop(label_column, None) if label_column else doc.pop("label", None)
                doc.setdefault("event_id", f"{prefix}-{n}")
                yield doc, label
        return
    with path.open(newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            label = _label(row.pop(label_column, None)) if label_column else None
            features = {k: _cell(v) for k, v in row.items()}
            yield {"event_id": f"{prefix}-{n}", "features": features, "ts": time.time()}, label


def _label(text: str | None) -> int | str | None:
    """A label cell: an integer class when it reads as one, else the class name."""
    if text is None or text.strip() == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text.strip()
    return int(number) if number.is_integer() else text.strip()


def _cell(text: str | None) -> Any:
    if text is None or text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


async def produce(
    bootstrap: str,
    pairs: Iterator[Pair],
    *,
    topic: str,
    labels_topic: str | None,
    label_delay_s: float,
    count: int | None,
    rate: float,
    producer_options: dict[str, Any],
    model: str | None = None,
) -> tuple[int, int]:
    """Send events (and, delayed, their labels); return (events sent, labels sent).

    With ``model``, each label names it (a labels topic shared by several models).
    ``producer_options`` is librdkafka's configuration
    (:func:`~streams.adapters.kafka_admin.librdkafka_producer_options`).

    Sends never wait on one another: librdkafka queues each record for its partition, so a
    partition whose leader hangs holds back its own records only, and the others flow.
    Every send is acknowledged before this returns, so the counts are what the topics hold;
    a send the broker never acknowledged raises :class:`~streams.errors.ServiceError` saying
    how many.
    """
    # murmur2: keys land on the partitions Java clients and aiokafka pick for them
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"}
    producer = Producer({**conf, **producer_options})
    acks = _Acks()
    pending: list[tuple[float, bytes, bytes]] = []
    started = time.monotonic()
    chosen = itertools.islice(pairs, count) if count is not None else pairs
    for sent, (event, label) in enumerate(chosen, start=1):
        key = (event.get("entity") or event["event_id"]).encode()
        await acks.send(producer, topic, orjson.dumps(event), key, "event")
        if labels_topic and label is not None:
            doc = {
                "schema_version": SCHEMA_VERSION,
                "event_id": event["event_id"],
                "label": label,
                "ts": time.time(),
            }
            if model is not None:
                doc["model"] = model
            pending.append((time.monotonic() + label_delay_s, key, orjson.dumps(doc)))
        await _flush_due(producer, labels_topic, pending, time.monotonic(), acks)
        if rate > 0:
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
    if pending:
        await asyncio.sleep(max(0.0, pending[-1][0] - time.monotonic()))
        await _flush_due(producer, labels_topic, pending, float("inf"), acks)
    await acks.settle(producer)
    return acks.acked["event"], acks.acked["label"]


class _Acks:
    """Sends through a librdkafka producer, counted by kind once acknowledged."""

    def __init__(self) -> None:
        self.acked = {"event": 0, "label": 0}
        self.failed: list[KafkaError] = []
        self.sent = 0

    async def send(
        self, producer: Producer, topic: str, value: bytes, key: bytes, kind: str
    ) -> None:
        """Queue one record; wait (serving acknowledgements) while librdkafka's queue is full."""

        def done(err: KafkaError | None, _msg: object) -> None:
            if err is None:
                self.acked[kind] += 1
            else:
                self.failed.append(err)

        while True:
            try:
                producer.produce(topic, value, key, on_delivery=done)
                break
            except BufferError:
                producer.poll(0)
                await asyncio.sleep(0.01)
        self.sent += 1
        producer.poll(0)  # acknowledgements so far, without waiting
        self._check()

    async def settle(self, producer: Producer) -> None:
        """Wait until every record sent is acknowledged (or failed for good)."""
        while producer.flush(0.1) > 0:
            await asyncio.sleep(0)
        self._check()

    def _check(self) -> None:
        if self.failed:
            raise ServiceError(
                "kafka",
                f"{len(self.failed)} of {self.sent} sends were not acknowledged "
                f"({self.failed[0]}); {self.acked['event']} events and "
                f"{self.acked['label']} labels were",
            )


async def _flush_due(
    producer: Producer,
    topic: str | None,
    pending: list[tuple[float, bytes, bytes]],
    now: float,
    acks: _Acks,
) -> None:
    while pending and pending[0][0] <= now and topic:
        _, key, value = pending.pop(0)
        await acks.send(producer, topic, value, key, "label")


__all__ = ["dataset_events", "file_events", "produce"]
