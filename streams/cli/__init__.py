"""The ``driftline`` command line, on click: the root group and ``main``
(:mod:`~streams.cli.main`, also run by ``python -m streams.cli``), how commands and their
environment-settable options are declared (:mod:`~streams.cli.options`), what they print
(:mod:`~streams.cli.output`) and one module per command group: ``train``, ``models``,
``serve`` (worker, monitor, retrainer, demo), ``stream`` (produce, tail, schema), ``ops``
(alerts, status) and ``report``. The top layer: it may import every other subpackage, and no
other subpackage imports it (``bench`` builds its ``driftline bench`` command with
:mod:`~streams.cli.options`).
"""

__all__: list[str] = []
