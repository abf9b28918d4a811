"""The hot path: decode, route and score a micro-batch of events
(:mod:`~streams.scoring.batch`), the consume-score-produce-commit loop around it
(:mod:`~streams.scoring.loop`) and what it keeps of a batch until the commit
(:mod:`~streams.scoring.inflight`), its sends (:mod:`~streams.scoring.sender`), its consumer's
positions (:mod:`~streams.scoring.positions`) and its transactions when exactly once
(:mod:`~streams.scoring.transactions`), and a model's
champion/challenger routing
(:mod:`~streams.scoring.routing`). Below the monitors, the control plane and ops, which may
read its types (scored batches, batch stats, routing); it imports none of them.
"""

__all__: list[str] = []
