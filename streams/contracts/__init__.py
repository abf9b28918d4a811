"""What Driftline's processes agree on: the wire contracts of every Kafka message
(:mod:`~streams.contracts.messages`, pydantic models with their JSON Schemas) and the names
of shared state (:mod:`~streams.contracts.names`: Redis keys, consumer groups). The bottom
layer of ``streams``: it imports only :mod:`models` and :mod:`streams.errors`, and every other
subpackage may import it.
"""

__all__: list[str] = []
