"""The scoring worker: the Faust app that hosts the scoring loop, the monitors' agents and the
model-update follower (:mod:`~streams.worker.app`, one app per model served), each model's
metrics, health and watchdog (:mod:`~streams.worker.health`) and the process's ``/metrics``
and ``/health`` endpoints (:mod:`~streams.worker.endpoints`). It assembles the middle layer
(scoring, monitors, control, ops); only the command line imports it.
"""

__all__: list[str] = []
