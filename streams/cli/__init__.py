"""The ``driftline`` command line: the parser and ``main`` (:mod:`~streams.cli.main`, also run by
``python -m streams.cli``), options that environment variables can set
(:mod:`~streams.cli.options`) and one module per command group (models, stream, ops, report).
The top layer: it may import every other subpackage, and no other subpackage imports it
(``bench`` builds its ``driftline bench`` command with :mod:`~streams.cli.options`).
"""

__all__: list[str] = []
