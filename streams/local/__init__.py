"""Local development: Kafka and Redis on loopback (:mod:`~streams.local.services`, with
:mod:`~streams.local.kafka_local`, the pinned broker jars of :mod:`~streams.local.kafka_jars`
and ``kafka/``, and the programs of :mod:`~streams.local.toolchain`), synthetic and replayed
events (:mod:`~streams.local.producer`) and ``driftline demo`` (:mod:`~streams.local.demo`).
Production workers never import it; the command line does.
"""

__all__: list[str] = []
