"""Baseline *floor*: the least a scorer must do, hand-written on aiokafka and onnxruntime.

Consume a batch, parse it with orjson, score it in one onnxruntime call, produce one
prediction per event, wait for the broker's acks, commit. No validation, no dead letters,
no routing, no monitoring: the figure Driftline's full path is compared with.

Reads the same ``DRIFTLINE_*`` settings as ``driftline worker``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from operator import itemgetter

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata

from models.export import make_session, onnx_feed
from models.registry import Registry
from streams.config.settings import load_settings


async def main() -> None:
    settings = load_settings()
    assert settings.model and settings.kafka_bootstrap, "DRIFTLINE_MODEL and _KAFKA_BOOTSTRAP"
    loaded = Registry(settings.registry).load(f"{settings.model}@champion")
    card = loaded.card
    session = make_session(loaded.payload)
    names = [f.name for f in card.features if f.kind == "numeric"]
    row = itemgetter(*names)
    no_categories = np.empty((0, 0), dtype=str)
    output = [card.onnx.output_probability]
    consumer = AIOKafkaConsumer(
        settings.topic_events,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"bench-floor-{settings.topic_events}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=settings.producer_linger_ms
    )
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(
                timeout_ms=settings.batch_wait_ms, max_records=settings.batch_size
            )
            if not batch:
                continue
            acks = []
            offsets = {}
            for tp, messages in batch.items():
                docs = [orjson.loads(m.value) for m in messages]
                x = np.array([row(d["features"]) for d in docs], dtype=np.float64)
                feed = onnx_feed(x, no_categories.reshape(len(docs), 0), card.onnx.inputs)
                (proba,) = session.run(output, feed)
                now = time.time()
                for m, d, p in zip(messages, docs, proba.tolist(), strict=True):
                    doc = {
                        "event_id": d["event_id"],
                        "version": card.version,
                        "label": int(p[1] >= 0.5),
                        "probabilities": p,
                        "scored_at": now,
                    }
                    acks.append(
                        await producer.send(
                            settings.topic_predictions, orjson.dumps(doc), key=m.key
                        )
                    )
                offsets[tp] = OffsetAndMetadata(messages[-1].offset + 1, "")
            await asyncio.gather(*acks)
            await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main())
