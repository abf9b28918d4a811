"""Alert sinks: the alerts stream delivered where people are (webhook, Slack, PagerDuty, SMTP).

``driftline sinks`` runs a :class:`~streams.sinks.service.SinkService`: one task per sink,
each reading the Redis alerts stream through a consumer group of its own
(:mod:`~streams.sinks.delivery`), apart from scoring and monitoring, which only append to that
stream. Routing and severity are :mod:`~streams.sinks.routing`, the receivers' payloads
:mod:`~streams.sinks.payloads`, the HTTP and SMTP clients :mod:`~streams.sinks.transports`.
A middle-layer subpackage: it reads :mod:`streams.adapters`, :mod:`streams.contracts` and
:mod:`streams.config` only.
"""

__all__: list[str] = []
