"""The control plane: the retrainer, which turns retrain requests into gated candidates, shadow
tests, promotions and rollbacks (:mod:`~streams.control.retrainer`), and the announcements of
registry changes on ``model-updates`` (:mod:`~streams.control.updates`). It writes a model's
routing (:mod:`streams.scoring.routing`) and knows nothing of local services.
"""

__all__: list[str] = []
