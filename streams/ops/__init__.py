"""Operations: the Prometheus families and series of a worker
(:mod:`~streams.ops.observability`, :mod:`~streams.ops.quality_metrics`) and the liveness
watchdog (:mod:`~streams.ops.liveness`). Pure of any worker: it reads
:mod:`streams.scoring`'s batch stats and is wired into a worker by :mod:`streams.worker`.
"""

__all__: list[str] = []
