"""The Faust application and worker as Driftline runs them.

Every Faust app of Driftline (a scoring worker, ``driftline monitor``, the retrainer) is built
by :func:`faust_app` and run by :func:`faust_worker`, so that they agree on serialisation,
commits, session timeout, security and where their data lives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Producer
from faust.types import ConsumerT, ProducerT

from streams.adapters.kafka_admin import faust_credentials
from streams.config.settings import Settings


class DurableProducer(Producer):
    """Faust's producer with the options of every Driftline producer: ``acks=all`` and
    idempotence (Faust turns idempotence on only inside transactions)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class _ReadCommittedThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust reads committed only inside its own transactions; its constructor call has
        # no other way in, and the consumer reads the attribute when it starts.
        consumer._isolation_level = "read_committed"
        return consumer


class ReadCommittedConsumer(Consumer):
    """Faust's consumer reading committed records only, as every Driftline consumer does
    (:func:`~streams.adapters.kafka_admin.consumer_options`)."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


class App(faust.App):
    """A Faust app whose producer is a :class:`DurableProducer` and whose consumer a
    :class:`ReadCommittedConsumer`."""

    def _new_producer(self) -> ProducerT:
        return DurableProducer(self.transport, loop=self.loop, beacon=self.beacon)

    def _new_consumer(self) -> ConsumerT:
        return ReadCommittedConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
        )


def faust_app(settings: Settings, bootstrap: str, app_id: str, start: str = "earliest") -> App:
    """A Faust app as Driftline runs them: raw bytes in and out, offsets committed every
    second, no web server, data under the data dir. ``app_id`` is the consumer group, and
    ``start`` where it begins on a topic it has no committed offset for."""
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    return App(
        app_id,
        broker=f"kafka://{bootstrap}",
        datadir=str(settings.data_dir / "faust") + "/{conf.name}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        consumer_auto_offset_reset=start,
        topic_partitions=settings.topic_partitions,
        # Faust's own topics (its leader topic) as durable as ours: the command line resolves
        # the plan's factor for the cluster before it builds an app.
        topic_replication_factor=settings.topic_replication_factor or 1,
        producer_linger_ms=settings.producer_linger_ms,
        broker_commit_interval=1.0,
        # A crashed member holds its partitions until its session expires; Faust's default
        # (60 s) kept a restarted worker waiting that long before it scored again.
        broker_session_timeout=10.0,
        # SASL and/or TLS exactly as the settings give them to every aiokafka client.
        broker_credentials=faust_credentials(settings),
    )


def faust_worker(app: faust.App, log_level: str, *more: faust.App) -> faust.Worker:
    """The Faust worker that runs ``app`` and ``more`` apps (``execute_from_commandline``),
    at ``log_level``. Each app is a service of the worker: started, run and stopped with it.

    Faust's terminal spinner is off: at WARNING and above it sets the root logger to DEBUG
    (its handler spins on every record), so every debug line of aiokafka built a log record
    on the hot path, 2 % of a busy worker's time, for a spinner nobody sees in a log file.
    """
    worker = faust.Worker(app, *more, loglevel=log_level.lower(), quiet=True)
    worker.spinner = None
    return worker


__all__ = ["App", "DurableProducer", "ReadCommittedConsumer", "faust_app", "faust_worker"]
