"""The monitoring runtime: the monitors of a model fed by its scored batches and labels,
with their state in Redis (:mod:`~streams.monitors.runtime`, which composes
:mod:`~streams.monitors.entries`, :mod:`~streams.monitors.labelled`,
:mod:`~streams.monitors.alerts`, :mod:`~streams.monitors.retraining`,
:mod:`~streams.monitors.snapshot` and :mod:`~streams.monitors.guard`), the owner's consumer of
``monitor-input`` (:mod:`~streams.monitors.input`) and the Faust agents and app around them
(:mod:`~streams.monitors.agents`). It reads :mod:`streams.scoring`'s scored batches and
imports no other subpackage of its layer.
"""

__all__: list[str] = []
