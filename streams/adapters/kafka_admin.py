"""Kafka client options from settings, topic creation and a health probe (aiokafka).

Every Kafka client Driftline builds takes its options from here: :func:`client_options` for
the security of admin clients, :func:`consumer_options` for every consumer (security, and
reading committed records only), :func:`producer_options` for every
producer (durability and idempotence on top), :func:`faust_credentials` for Faust apps.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, KafkaTimeoutError, SaslAuthenticationFailed

from streams.adapters.kafka_nodes import prefer_responsive_brokers
from streams.config.settings import Settings, env_name
from streams.errors import ConfigError

log = logging.getLogger(__name__)

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

    The same dict works for producers, consumers and the admin client. Every client built
    in this process then refreshes its metadata from a broker that answers
    (:func:`~streams.adapters.kafka_nodes.prefer_responsive_brokers`).
    """
    prefer_responsive_brokers()
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


def consumer_options(settings: Settings | None) -> dict[str, Any]:
    """Return the aiokafka keyword arguments of every Driftline consumer: security as
    :func:`client_options`, and ``read_committed``: a scoring worker that runs exactly once
    writes in transactions, and an aborted one's records (or an open one's, until it ends)
    are never read. Harmless at least once: records written outside a transaction are read
    as they come."""
    return {"isolation_level": "read_committed", **client_options(settings)}


def producer_options(settings: Settings | None) -> dict[str, Any]:
    """Return the aiokafka keyword arguments of every Driftline producer.

    ``acks=all``: a write is acknowledged once every in-sync replica holds it (at least the
    topic's ``min.insync.replicas``), so losing the leader right after loses nothing. And
    idempotence: a batch that the producer sends again after a timeout or a leader change is
    written once, not twice (aiokafka then retries a batch until it is written, never
    expiring it). The request timeout is the setting's (:func:`request_timeout_ms`).
    Security as :func:`client_options`.
    """
    return {
        "acks": "all",
        "enable_idempotence": True,
        "request_timeout_ms": request_timeout_ms(settings),
        **client_options(settings),
    }


class PatientProducer(AIOKafkaProducer):  # type: ignore[misc]
    """An aiokafka producer whose ``send`` waits for room as long as the cluster needs.

    aiokafka's ``send`` gives up with ``KafkaTimeoutError`` when a partition's batch stays full
    for ``request_timeout_ms``: its leader hangs, or is being replaced. The message was not
    taken then, so it is offered again (back-pressure, as a full queue would exert) rather
    than dropped: with a short request timeout (:func:`request_timeout_ms`) that is what lets
    a producer leave a frozen broker after seconds without failing the sends that waited.
    A worker that waits too long is its watchdog's to restart.
    """

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        """``AIOKafkaProducer.send``, offered again until the message is taken."""
        while True:
            try:
                return await super().send(*args, **kwargs)
            except KafkaTimeoutError:
                log.warning("kafka: a partition takes no message yet (its leader?); waiting")

    async def send_batch(self, *args: Any, **kwargs: Any) -> Any:
        """``AIOKafkaProducer.send_batch`` (the scoring loop's), offered again likewise."""
        while True:
            try:
                return await super().send_batch(*args, **kwargs)
            except KafkaTimeoutError:
                log.warning("kafka: a partition takes no batch yet (its leader?); waiting")


def request_timeout_ms(settings: Settings | None) -> int:
    """How long a producer or a scoring consumer waits on one request (aiokafka's own
    default, 40 s, is what a frozen broker would cost: see the setting)."""
    return (settings or Settings()).kafka_request_timeout_ms


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Return the ``broker_credentials`` of a Faust app: the same security as
    :func:`client_options`, in Faust's terms (None for PLAINTEXT). Its aiokafka clients, too,
    refresh metadata from a broker that answers."""
    prefer_responsive_brokers()
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
    "PatientProducer",
    "client_options",
    "consumer_options",
    "diagnose",
    "faust_credentials",
    "kafka_healthy",
    "producer_options",
    "request_timeout_ms",
    "ssl_context",
]
