"""Announce registry changes on ``model-updates`` so that every worker applies them at once.

Workers also re-read the registry every ``reload_interval_s``, so an announcement that cannot
be sent (no broker running) delays a change; it never loses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import orjson
from aiokafka.errors import KafkaError

from streams.adapters.kafka_admin import PatientProducer, producer_options
from streams.config.settings import Settings
from streams.contracts.messages import ModelUpdate
from streams.errors import ServiceError

log = logging.getLogger("driftline.updates")


async def publish_update(settings: Settings, bootstrap: str, update: ModelUpdate) -> None:
    """Produce ``update`` to the model-updates topic and wait for the broker's ack."""
    producer = PatientProducer(bootstrap_servers=bootstrap, **producer_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topic_model_updates,
            orjson.dumps(update.model_dump(mode="json")),
            key=update.model.encode(),
        )
    finally:
        await producer.stop()


def announce(settings: Settings, update: ModelUpdate, bootstrap: Callable[[], str]) -> str:
    """Publish ``update`` if a broker is reachable; return a line saying what happened.

    ``bootstrap()`` says where the broker is (the caller knows: the settings, or the local
    services); a :class:`~streams.errors.ServiceError` it raises means none is running.
    """
    try:
        broker = bootstrap()
        asyncio.run(asyncio.wait_for(publish_update(settings, broker, update), 15))
    except (ServiceError, KafkaError, OSError, TimeoutError) as exc:
        return (
            f"not announced on {settings.topic_model_updates} ({exc}); running workers apply it "
            f"within {settings.reload_interval_s:g}s"
        )
    return f"announced on {settings.topic_model_updates}"


__all__ = ["announce", "publish_update"]
