"""Retrain decisions of a model's monitors: the policy asked, a request sent when it says so."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from monitoring.retrain_policy import RetrainPolicy
from streams.contracts.messages import RetrainRequest
from streams.monitors.alerts import Send

log = logging.getLogger("driftline.monitor")


class Retraining:
    """Asks :class:`monitoring.retrain_policy.RetrainPolicy` and sends its requests."""

    def __init__(self, model: str, policy: RetrainPolicy, topic: str) -> None:
        self.model = model
        self.policy = policy
        self.topic = topic
        self.requests = 0

    async def consider(
        self,
        version: str,
        alerts: Sequence[Mapping[str, Any]],
        now: float,
        send: Send,
        champion_metrics: Mapping[str, Any] | None,
        challenger_metrics: Mapping[str, Any] | None,
        online_pairs: Sequence[tuple[bool, bool]],
    ) -> None:
        """Send a retrain request for ``version`` (the champion) when the policy says so.

        ``online_pairs`` holds (online challenger correct, champion correct) per labelled
        event, oldest first.
        """
        paired = None
        if online_pairs:
            both = np.array(online_pairs, dtype=bool)
            paired = (both[:, 0], both[:, 1])  # (challenger, champion), as the policy expects
        decision = self.policy.consider(
            self.model,
            version,
            [a for a in alerts if a.get("version") in (version, "")],
            now,
            champion_metrics=champion_metrics,
            challenger_metrics=challenger_metrics,
            paired=paired,
        )
        if decision is None:
            return
        request = RetrainRequest(
            request_id=uuid.uuid4().hex,
            model=self.model,
            version=version,
            reason=decision.reason,
            alert_ids=decision.alert_ids,
            at=now,
        )
        log.warning("retrain request for %s@%s: %s", self.model, version, decision.reason)
        self.requests += 1
        await send(self.topic, [orjson.dumps(request.model_dump(mode="json"))])


__all__ = ["Retraining"]
