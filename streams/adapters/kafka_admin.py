"""Kafka client options from settings, topic creation and a health probe (aiokafka).

Every Kafka client Driftline builds takes its security from here: :func:`client_options` for
aiokafka producers, consumers and admin clients, :func:`faust_credentials` for Faust apps.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
)

from streams.config.settings import Settings, env_name
from streams.errors import ConfigError, ServiceError

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Return the TLS context for the broker: its CA, and our certificate for mutual TLS."""
    cafile = settings.kafka_ssl_cafile
    key_password = settings.kafka_ssl_key_password
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                key_password.get_secret_value() if key_password else None,
            )
    except (OSError, ssl.SSLError) as exc:
        # The message names the file and the problem; never the key password.
        raise ConfigError(f"cannot load the Kafka TLS files: {exc}") from exc
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def client_options(settings: Settings | None) -> dict[str, Any]:
    """Return the aiokafka keyword arguments for security, from ``settings``.

    The same dict works for producers, consumers and the admin client.
    """
    if settings is None or settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    opts: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        opts.update(
            sasl_mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    return opts


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Return the ``broker_credentials`` of a Faust app: the same security as
    :func:`client_options`, in Faust's terms (None for PLAINTEXT)."""
    from faust.auth import SASLCredentials, SSLCredentials  # Faust is heavy: worker only

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return SSLCredentials(ssl_context(settings))
    password = settings.kafka_sasl_password
    return SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else None,
        ssl_context=ssl_context(settings) if protocol == "SASL_SSL" else None,
        mechanism=settings.kafka_sasl_mechanism or "PLAIN",
    )


async def diagnose(bootstrap: str, settings: Settings | None, timeout_s: float = 10.0) -> str:
    """Say why a client cannot connect to ``bootstrap``, in words an operator can act on.

    aiokafka only logs why each bootstrap server refused it and raises a bare "unable to
    bootstrap"; this opens one connection the way the clients do to get the reason back.
    The reason never carries a secret (aiokafka's own texts do not).
    """
    from aiokafka.conn import create_conn

    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host,
                int(port),
                request_timeout_ms=int(timeout_s * 1000),
                **client_options(settings),
            ),
            timeout_s,
        )
    except SaslAuthenticationFailed as exc:
        user = settings.kafka_sasl_username if settings else None
        mechanism = (settings.kafka_sasl_mechanism if settings else None) or "PLAIN"
        return (
            f"authentication failed as user {user!r} ({mechanism}): check "
            f"{env_name('kafka_sasl_username')} and {env_name('kafka_sasl_password')} ({exc})"
        )
    except (KafkaError, OSError, TimeoutError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    conn.close()
    return "the broker answered a new connection; it may have been busy or restarting"


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
    try:
        await admin.start()
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
        reason = (
            await diagnose(bootstrap, settings) if isinstance(exc, KafkaConnectionError) else ""
        )
        raise ServiceError(
            "kafka", f"cannot create topics {wanted} on {bootstrap}: {reason or exc}"
        ) from exc
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


__all__ = [
    "client_options",
    "create_topics",
    "diagnose",
    "faust_credentials",
    "kafka_healthy",
    "ssl_context",
]
