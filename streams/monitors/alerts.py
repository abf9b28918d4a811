"""The alert path of a model's monitors: policy, then every process's dedupe, then Kafka.

Findings pass the :class:`monitoring.alerts.AlertPolicy` (this process's cooldowns), become
alerts (the contract ``streams.contracts.messages.Alert``), go through the
:class:`monitoring.state.AlertSink` (in a worker the Redis one: deduplicated across processes,
on the stream and channel ``driftline:alerts``) and what it delivered to the ``drift-alerts``
topic (and, with ``DRIFTLINE_HISTORY_DB``, to the SQL history sink). When Redis is down the
topic still gets them, deduplicated by the policy alone.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from monitoring.alerts import AlertPolicy
from monitoring.findings import Finding
from monitoring.state import AlertSink
from streams.adapters.sql_history import SqlHistory
from streams.contracts.messages import SCHEMA_VERSION
from streams.monitors.guard import RedisGuard

log = logging.getLogger("driftline.monitor")

Send = Callable[[str, list[bytes]], Awaitable[None]]


def encode_alert(model: str, finding: Finding, now: float) -> dict[str, Any]:
    """The alert contract (``streams.contracts.messages.Alert``) for one finding."""
    details = dict(finding.details)
    return {
        "schema_version": SCHEMA_VERSION,
        "alert_id": uuid.uuid4().hex,
        "kind": finding.kind,
        "model": model,
        "version": str(details.get("version", "")),
        "feature": finding.feature,
        "detector": finding.detector,
        "statistic": float(finding.statistic),
        "threshold": float(finding.threshold),
        "at": now,
        "details": details,
    }


class AlertPath:
    """Turns a batch's findings into the alerts delivered, for one model."""

    def __init__(
        self,
        model: str,
        policy: AlertPolicy,
        sink: AlertSink,
        guard: RedisGuard,
        topic: str,
        history: SqlHistory | None = None,
    ) -> None:
        self.model = model
        self.history = history
        self.policy = policy
        self.sink = sink
        self.guard = guard
        self.topic = topic
        self.sent = 0

    async def deliver(
        self, findings: list[Finding], send: Send
    ) -> tuple[list[Mapping[str, Any]], float] | None:
        """Deliver what the policy keeps of ``findings``: the alerts sent and when, or None
        when the policy kept none (an alert another process sent counts as kept)."""
        if not findings:
            return None
        now = time.time()
        by_version: dict[str, list[Finding]] = defaultdict(list)
        for f in findings:
            by_version[str(f.details.get("version", ""))].append(f)
        chosen = [
            encode_alert(self.model, f, now)
            for version, fs in by_version.items()
            for f in self.policy.decide(self.model, version, fs, now)
        ]
        if not chosen:
            return None
        emitted: list[Mapping[str, Any]] | None = await self.guard("alerts", self.sink.emit(chosen))
        if emitted is None:
            # Redis is down: the Kafka topic still gets them (deduped locally by the policy).
            emitted = list(chosen)
        self.sent += len(emitted)
        if self.history is not None:
            self.history.add_alerts(emitted)  # written with the next batch of the sink
        payloads = [orjson.dumps(alert) for alert in emitted]
        for raw in payloads:
            log.warning("alert %s", raw.decode())
        await send(self.topic, payloads)
        return emitted, now


__all__ = ["AlertPath", "Send", "encode_alert"]
