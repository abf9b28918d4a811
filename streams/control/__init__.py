"""The control plane: the retrainer, a Faust app of its own whose agent turns retrain requests
into gated candidates in shadow (:mod:`~streams.control.retrainer`) and whose timer steps every
model through its shadow test, promotion, watch and rollback
(:mod:`~streams.control.stages`); the events a candidate learns from
(:mod:`~streams.control.window`, :mod:`~streams.control.sql_window`) and the pairs its shadow
test starts from (:mod:`~streams.control.holdout_pairs`); the refits that follow a
drift-triggered promotion (:mod:`~streams.control.refits`); the record of those decisions and
of each model's stage (:mod:`~streams.control.lifecycle`); and the announcements of registry
changes on ``model-updates`` (:mod:`~streams.control.updates`). It writes a model's routing
(:mod:`streams.scoring.routing`) and knows nothing of local services.
"""

__all__: list[str] = []
