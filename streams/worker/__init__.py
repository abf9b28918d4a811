"""The scoring worker: the Faust app that hosts the scoring loop, the monitors' agents and the
model-update follower (:mod:`~streams.worker.app`), and its ``/metrics`` and ``/health``
endpoints with their watchdog (:mod:`~streams.worker.health`). It assembles the middle
layer (scoring, monitors, control, ops); only the command line imports it.
"""

__all__: list[str] = []
