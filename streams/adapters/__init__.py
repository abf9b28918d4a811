"""The I/O clients every process shares: Kafka client and admin options, TLS and SASL
(:mod:`~streams.adapters.kafka_admin`), which broker a client asks for metadata
(:mod:`~streams.adapters.kafka_nodes`), the Faust app and worker that the scoring workers, the
monitor process and the retrainer run (:mod:`~streams.adapters.faust_app`), Redis clients
(:mod:`~streams.adapters.redis_client`), the Redis label join
(:mod:`~streams.adapters.redis_join`), and the monitors' Redis state store, records and alert
sink (:mod:`~streams.adapters.redis_state`, :mod:`~streams.adapters.redis_alerts`:
``monitoring.state``'s ``StateStore`` and ``AlertSink``). They depend only on
:mod:`streams.config`, :mod:`streams.contracts` and :mod:`streams.errors`.
"""

__all__: list[str] = []
