"""Baseline *floor*: the strongest scoring loop we can hand-write, on librdkafka.

What an engineer who knows Kafka writes when all they need is predictions, at least once:
confluent-kafka's C client fetches and batches; a whole fetch is consumed at once, parsed
with orjson and scored in one onnxruntime call; each prediction is handed to the producer
without waiting for it; every 100 ms the producer is flushed (every send acknowledged) and
only then are the consumed offsets committed. Durability as Driftline's own: ``acks=all``
and an idempotent producer. No validation, no dead letters, no routing, no monitoring.

With ``--relay`` it only copies each event's bytes to the predictions topic (no parsing, no
scoring): the most a Python process moves through Kafka on this machine, the I/O limit.

Reads the same ``DRIFTLINE_*`` settings as ``driftline worker``.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from models.export import make_session, onnx_feed
from models.registry import Registry
from streams.config.settings import Settings, load_settings

COMMIT_EVERY_S = 0.1

Handle = Callable[[list[Message]], None]


def scorer(settings: Settings, producer: Producer) -> Handle:
    """Score a fetch in one ONNX call and hand each prediction to the producer."""
    loaded = Registry(settings.registry).load(f"{settings.model}@champion")
    card = loaded.card
    session = make_session(loaded.payload)
    row = itemgetter(*[f.name for f in card.features if f.kind == "numeric"])
    output = [card.onnx.output_probability]
    topic, version = settings.topic_predictions, card.version

    def handle(messages: list[Message]) -> None:
        docs = [orjson.loads(m.value() or b"") for m in messages]
        x = np.array([row(d["features"]) for d in docs], dtype=np.float64)
        categories = np.empty((len(docs), 0), dtype=str)
        (proba,) = session.run(output, onnx_feed(x, categories, card.onnx.inputs))
        now = time.time()
        for m, d, p in zip(messages, docs, proba.tolist(), strict=True):
            doc = {
                "event_id": d["event_id"],
                "version": version,
                "label": int(p[1] >= 0.5),
                "probabilities": p,
                "scored_at": now,
            }
            send(producer, topic, orjson.dumps(doc), m.key(), m.partition())

    return handle


def relay(settings: Settings, producer: Producer) -> Handle:
    """Copy each event's bytes to the predictions topic."""
    topic = settings.topic_predictions

    def handle(messages: list[Message]) -> None:
        for m in messages:
            send(producer, topic, m.value(), m.key(), m.partition())

    return handle


def send(producer: Producer, topic: str, value: Any, key: Any, partition: int | None) -> None:
    """Hand one record to the producer (to its event's partition: same key, same partition),
    waiting for room in its queue when it is full."""
    while True:
        try:
            producer.produce(topic, value, key, -1 if partition is None else partition)
            return
        except BufferError:
            producer.poll(0.05)


def main(argv: list[str]) -> None:
    settings = load_settings()
    assert settings.model and settings.kafka_bootstrap, "DRIFTLINE_MODEL and _KAFKA_BOOTSTRAP"
    mode = "relay" if "--relay" in argv else "floor"
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"bench-{mode}-{settings.topic_events}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": settings.producer_linger_ms,
        }
    )
    handle = (relay if mode == "relay" else scorer)(settings, producer)
    positions: dict[tuple[str | None, int | None], int] = {}

    def commit() -> None:
        if positions:
            producer.flush()  # every send acknowledged before its offsets are committed
            offsets = [
                TopicPartition(t, p, o) for (t, p), o in positions.items() if t and p is not None
            ]
            consumer.commit(offsets=offsets, asynchronous=False)
            positions.clear()

    def on_revoke(_: Consumer, partitions: list[TopicPartition]) -> None:
        commit()

    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    consumer.subscribe([settings.topic_events], on_revoke=on_revoke)
    committed_at = time.monotonic()
    wait_s = settings.batch_wait_ms / 1000
    try:
        while not stopping:
            fetched = consumer.consume(num_messages=settings.batch_size, timeout=wait_s)
            messages = [m for m in fetched if m.error() is None]
            if messages:
                handle(messages)
                for m in messages:
                    positions[(m.topic(), m.partition())] = (m.offset() or 0) + 1
                producer.poll(0)  # delivery reports
            if time.monotonic() - committed_at >= COMMIT_EVERY_S:
                commit()
                committed_at = time.monotonic()
        commit()
    finally:
        consumer.close()


if __name__ == "__main__":
    main(sys.argv[1:])
