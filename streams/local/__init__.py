"""Local development: Kafka and Redis on loopback (:mod:`~streams.local.services`, which starts
them through :mod:`~streams.local.broker_process`, :mod:`~streams.local.redis_process` and
:mod:`~streams.local.processes`, with :mod:`~streams.local.kafka_local`, the pinned broker jars
of :mod:`~streams.local.kafka_jars` and ``kafka/``, and the programs of
:mod:`~streams.local.toolchain`), synthetic and replayed events (:mod:`~streams.local.producer`)
and ``driftline demo`` (:mod:`~streams.local.demo`, with :mod:`~streams.local.demo_setup` and
:mod:`~streams.local.demo_screen`), and a Prometheus scraping workers on the compose file's
configuration (:mod:`~streams.local.prometheus_process`, for the dashboard test). Production
workers never import it; the command line does.
"""

__all__: list[str] = []
