"""Announce registry changes on ``model-updates`` so that every worker applies them at once.

Workers also re-read the registry every ``reload_interval_s``, so an announcement that cannot
be sent (no broker running) delays a change; it never loses it.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.errors import ServiceError
from streams.kafka_admin import client_options
from streams.messages import ModelUpdate
from streams.services import LocalServices
from streams.settings import Settings

log = logging.getLogger("driftline.updates")


async def publish_update(settings: Settings, bootstrap: str, update: ModelUpdate) -> None:
    """Produce ``update`` to the model-updates topic and wait for the broker's ack."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **client_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topic_model_updates,
            orjson.dumps(update.model_dump(mode="json")),
            key=update.model.encode(),
        )
    finally:
        await producer.stop()


def announce(settings: Settings, update: ModelUpdate) -> str:
    """Publish ``update`` if a broker is reachable; return a line saying what happened."""
    try:
        bootstrap = LocalServices(settings).kafka_bootstrap()
        asyncio.run(asyncio.wait_for(publish_update(settings, bootstrap, update), 15))
    except (ServiceError, KafkaError, OSError, TimeoutError) as exc:
        return (
            f"not announced on {settings.topic_model_updates} ({exc}); running workers apply it "
            f"within {settings.reload_interval_s:g}s"
        )
    return f"announced on {settings.topic_model_updates}"


__all__ = ["announce", "publish_update"]
