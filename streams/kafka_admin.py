"""Kafka client options from settings, topic creation and a health probe (aiokafka)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.errors import ServiceError
from streams.settings import Settings


def client_options(settings: Settings | None) -> dict[str, Any]:
    """Return the aiokafka keyword arguments for security, from ``settings``.

    The same dict works for producers, consumers and the admin client.
    """
    if settings is None or settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    opts: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        opts["ssl_context"] = ssl.create_default_context(cafile=cafile)
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        opts.update(
            sasl_mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    return opts


async def create_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    settings: Settings | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create each topic that does not exist yet, with ``partitions`` partitions.

    Topics are always created explicitly: a broker that auto-creates them may pick another
    partition count than the one the app expects.

    Returns
    -------
    list of str
        The topics that this call created.
    """
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        **client_options(settings),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
            )
            # Another process winning the race is fine: the topic is there, which is all we need.
            failed = {
                err[0]: err[1]
                for err in response.topic_errors
                if err[1] not in (0, TopicAlreadyExistsError.errno)
            }
            if failed:
                raise ServiceError("kafka", f"cannot create topics {failed} (error codes)")
        return missing
    except KafkaError as exc:
        raise ServiceError("kafka", f"cannot create topics {wanted} on {bootstrap}: {exc}") from exc
    finally:
        await admin.close()


async def _probe(bootstrap: str, settings: Settings | None, timeout_s: float) -> bool:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        **client_options(settings),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout_s)
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()


def kafka_healthy(bootstrap: str, settings: Settings | None = None, timeout_s: float = 5.0) -> bool:
    """Return whether a Kafka broker answers a metadata request at ``bootstrap``."""
    # A refused connection is the expected answer while a broker starts: not worth a log line.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_probe(bootstrap, settings, timeout_s))
    finally:
        quiet.setLevel(level)


__all__ = ["client_options", "create_topics", "kafka_healthy"]
