"""The training window: which labelled events a candidate learns from, and where they start.

The window is the Redis stream of the most recent labelled events (``driftline:{<name>}:
window``, written by the monitors) or, with ``DRIFTLINE_RETRAIN_SQL``, the rows of a SQL query
(:mod:`~streams.control.sql_window`). After a drift the old concept would only teach the
candidate the past: it learns from the events labelled since the drift request, and so do the
refits after it (:mod:`~streams.control.refits`; their requests carry the drift's time). A
request of the online challenger learns from that post-drift window too while refits are
scheduled or a post-drift candidate is in shadow, and from the whole window otherwise.
"""

from __future__ import annotations

from typing import Any

import orjson

from models.card import QueryInfo
from streams.contracts.messages import RetrainRequest
from streams.contracts.names import window_key
from streams.control.lifecycle import Lifecycle
from streams.control.refits import REFIT_REASON, Refits
from streams.control.sql_window import read_window

# Retrain-request reasons (their first word, from monitoring.retrain_policy) that mean the data
# changed: the candidate then learns from what was labelled after the request only.
DRIFT_REASONS = frozenset({"concept_drift", "performance", "data_drift", "sustained", REFIT_REASON})
# Reasons that ask for a better model of the same data: they need not wait for a watch to end
# (the watch goes on guarding the champion while their candidate is in shadow).
LEARN_MORE = frozenset({"challenger", REFIT_REASON})


def trigger(reason: str) -> str:
    """The first trigger a request names (its reason's first word).

    Examples
    --------
    >>> trigger("refit: 1000 events labelled since the drift"), trigger("concept_drift (cusum)")
    ('refit', 'concept_drift')
    """
    return reason.split(" ", 1)[0].rstrip(":;")


def _ms(entry_id: bytes | str) -> float:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return float(text.split("-", 1)[0])


class TrainingWindow:
    """Reads a model's training window for the retrainer."""

    def __init__(self, lifecycle: Lifecycle, refits: Refits) -> None:
        self.settings = lifecycle.settings
        self.registry = lifecycle.registry
        self.redis = lifecycle.redis
        self.refits = refits

    async def start(self, request: RetrainRequest, stage: dict[str, Any]) -> float:
        """Where the candidate's window starts (UNIX s; 0: the whole window); ``stage`` is the
        model's stage as the request found it."""
        if trigger(request.reason) in DRIFT_REASONS:
            return request.at
        plan = await self.refits.plan(request.model)
        return float(plan.get("since") or stage.get("window_since") or 0.0)

    async def rows(self, model: str, since: float) -> tuple[list[dict[str, Any]], QueryInfo | None]:
        """The labelled events (``{"f": features, "y": 0/1}``, oldest first) from ``since``
        (0: all), and the SQL query they came from (None: the Redis window, whose rows also
        carry ``t``, the time they were labelled, ms)."""
        if self.settings.retrain_sql and self.settings.retrain_db:
            card = self.registry.card(f"{model}@champion")
            return await read_window(
                self.settings.retrain_db, self.settings.retrain_sql, card, since
            )
        start = f"{int(since * 1000)}-0" if since else "-"
        entries: list[Any] = await self.redis.xrange(window_key(model), min=start) or []
        return [{**orjson.loads(fields[b"row"]), "t": _ms(at)} for at, fields in entries], None


__all__ = ["DRIFT_REASONS", "LEARN_MORE", "TrainingWindow", "trigger"]
