"""Event sources for ``driftline produce``: synthetic datasets and CSV/JSONL replays.

Each source yields ``(event, label)`` pairs: an event document as users would produce it and
its ground truth (or None when the file carries none).
"""

from __future__ import annotations

import asyncio
import csv
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from models.data import Dataset
from streams.adapters.kafka_admin import PatientProducer
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

    Every send is acknowledged before this returns (acks awaited a thousand at a time), so
    the counts are what the topics hold; a send the broker never acknowledged raises
    :class:`~streams.errors.ServiceError` saying how many.
    """
    producer = PatientProducer(bootstrap_servers=bootstrap, linger_ms=5, **producer_options)
    await producer.start()
    acks = _Acks()
    pending: list[tuple[float, bytes, bytes]] = []
    started = time.monotonic()
    sent = 0
    try:
        for event, label in pairs:
            if count is not None and sent >= count:
                break
            key = (event.get("entity") or event["event_id"]).encode()
            await acks.add(await producer.send(topic, orjson.dumps(event), key=key), "event")
            sent += 1
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
        await acks.settle()
    finally:
        await producer.stop()
    return acks.acked["event"], acks.acked["label"]


class _Acks:
    """The delivery futures of what was sent, awaited by the thousand, counted by kind."""

    def __init__(self, every: int = 1000) -> None:
        self.every = every
        self.waiting: list[tuple[asyncio.Future[Any], str]] = []
        self.acked = {"event": 0, "label": 0}

    async def add(self, future: asyncio.Future[Any], kind: str) -> None:
        self.waiting.append((future, kind))
        if len(self.waiting) >= self.every:
            await self.settle()

    async def settle(self) -> None:
        waiting, self.waiting = self.waiting, []
        results = await asyncio.gather(*(f for f, _ in waiting), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        for (_, kind), result in zip(waiting, results, strict=True):
            if not isinstance(result, BaseException):
                self.acked[kind] += 1
        if failed:
            raise ServiceError(
                "kafka",
                f"{len(failed)} of {len(waiting)} sends were not acknowledged ({failed[0]!r}); "
                f"{self.acked['event']} events and {self.acked['label']} labels were",
            )


async def _flush_due(
    producer: AIOKafkaProducer,
    topic: str | None,
    pending: list[tuple[float, bytes, bytes]],
    now: float,
    acks: _Acks,
) -> None:
    while pending and pending[0][0] <= now and topic:
        _, key, value = pending.pop(0)
        await acks.add(await producer.send(topic, value, key=key), "label")


__all__ = ["dataset_events", "file_events", "produce"]
