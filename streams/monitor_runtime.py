"""Monitoring inside a worker: feed the monitors per batch, join labels, alert, snapshot.

Redis holds everything that must outlive the process (ARCHITECTURE §4):

- ``driftline:model:<name>:state:<worker_id>`` — the monitor and alert-policy snapshot (JSON,
  the format documented in :mod:`monitoring.model_monitor`), written at least every
  ``snapshot_interval_s`` with one ``SET`` (atomic) and read back when a worker starts;
- ``driftline:model:<name>:health`` — a hash, one field per worker: its health summary;
- ``driftline:alerts`` — a capped stream of alerts, also published on the channel of the same
  name and produced to the ``drift-alerts`` topic;
- ``driftline:join:<name>:*`` — the label join (:mod:`streams.redis_join`).

When Redis is unreachable, scoring goes on: monitoring keeps its state in memory, logs one
warning, marks itself degraded in health, and writes again once Redis answers.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from models.card import ModelCard
from monitoring.alerts import AlertPolicy
from monitoring.config import MonitorConfig
from monitoring.findings import Finding
from monitoring.model_monitor import ModelMonitor
from streams.messages import SCHEMA_VERSION
from streams.redis_join import RedisLabelJoin
from streams.scoring import Scored
from streams.settings import Settings

log = logging.getLogger("driftline.monitor")

ALERTS_KEY = "driftline:alerts"

# KEYS: dedupe prefix, alerts stream. ARGV: cooldown_s, maxlen, then (dedupe suffix, json) pairs.
# An alert is appended only when no worker raised the same one within the cooldown.
_EMIT = """
local out = {}
for i = 3, #ARGV, 2 do
  if redis.call('SET', KEYS[1] .. ARGV[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'alert', ARGV[i + 1])
    redis.call('PUBLISH', KEYS[2], ARGV[i + 1])
    out[#out + 1] = ARGV[i + 1]
  end
end
return out
"""

SendAlerts = Callable[[list[bytes]], Awaitable[None]]


def encode_alert(model: str, finding: Finding, now: float) -> dict[str, Any]:
    """The alert contract (``streams.messages.Alert``) for one finding."""
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


class MonitorRuntime:
    """Everything monitoring does for one model in one worker process."""

    def __init__(
        self,
        settings: Settings,
        model: str,
        card: ModelCard,
        redis_url: str,
        send_alerts: SendAlerts,
    ) -> None:
        self.settings = settings
        self.model = model
        self.config = MonitorConfig.from_mapping(settings.monitor)
        self.monitor = ModelMonitor(card, self.config)
        self.policy = AlertPolicy(settings.alert_cooldown_s)
        password = settings.redis_password.get_secret_value() if settings.redis_password else None
        self.redis = aioredis.Redis.from_url(
            redis_url, password=password, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        self.join = RedisLabelJoin(self.redis, model, settings.join_ttl_s, settings.join_max_items)
        self._emit = self.redis.register_script(_EMIT)
        self.send_alerts = send_alerts
        self.state_key = f"driftline:model:{model}:state:{settings.worker_id}"
        self.health_key = f"driftline:model:{model}:health"
        self.degraded: str | None = None
        self.alerts_sent = 0
        self.restored = False
        self._last_snapshot = 0.0
        self._started = False

    # -- redis guard --------------------------------------------------------------------
    async def _guarded(self, what: str, call: Awaitable[Any]) -> Any:
        try:
            result = await call
        except (RedisError, OSError) as exc:
            if self.degraded is None:
                log.warning("monitoring degraded: Redis %s failed (%s); scoring goes on", what, exc)
            self.degraded = f"redis {what}: {exc}"
            return None
        if self.degraded is not None:
            log.warning("monitoring recovered: Redis answers again")
            self.degraded = None
        return result

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Resume from the last snapshot in Redis, if there is one (once, on first use)."""
        if self._started:
            return
        raw = await self._guarded("load", self.redis.get(self.state_key))
        if raw is None and self.degraded is not None:
            return  # Redis is down: try again on the next batch rather than start from zero
        self._started = True
        if raw:
            state = orjson.loads(raw)
            self.monitor.restore(state["monitor"])
            self.policy.restore(state["policy"])
            self.restored = True
            log.info("monitoring resumed from %s", self.state_key)

    def add_card(self, card: ModelCard) -> None:
        """Make a newly served version known to the monitors."""
        self.monitor.add_card(card)

    async def close(self) -> None:
        """Write a last snapshot and disconnect."""
        await self.tick(force=True)
        await self.redis.aclose()

    # -- per batch ----------------------------------------------------------------------
    async def on_scored(self, scored: Sequence[Scored]) -> None:
        """Feed the monitors with what a batch was scored on; keep it for the label join."""
        await self.start()
        findings: list[Finding] = []
        pending: dict[str, list[Any]] = defaultdict(list)
        for part in scored:
            numeric, categorical = self._vectors(part.features)
            findings += self.monitor.observe_batch(
                numeric, categorical, part.scores, part.version, part.variant
            )
            groups = self.monitor.groups_of(numeric, categorical)
            glist = groups.tolist() if groups is not None else [None] * len(part.event_ids)
            for eid, label, score, group in zip(
                part.event_ids, part.labels.tolist(), part.scores.tolist(), glist, strict=True
            ):
                pending[eid].append([part.version, part.variant, label, score, group])
        joined = await self._guarded(
            "join", self.join.add_predictions(list(pending.items()), time.time())
        )
        if joined:
            findings += self._observe_joined(joined)
        await self._alert(findings)

    async def on_labels(self, labels: Sequence[tuple[str, Any]]) -> None:
        """Join labels with their predictions (either order) and feed the label monitors."""
        await self.start()
        joined = await self._guarded("join", self.join.add_labels(list(labels), time.time()))
        if joined:
            await self._alert(self._observe_joined(joined))

    def _observe_joined(self, joined: Sequence[tuple[str, Any, Any]]) -> list[Finding]:
        classes = list(self.monitor.card.classes)
        by_scope: dict[tuple[str, str], list[tuple[int, int, float, Any]]] = defaultdict(list)
        for _, predictions, label in joined:
            y = classes.index(label) if isinstance(label, str) and label in classes else label
            if not isinstance(y, int) or y not in (0, 1):
                continue  # a label the model cannot have predicted: not comparable
            for version, variant, predicted, score, group in predictions:
                by_scope[(version, variant)].append((y, predicted, score, group))
        findings: list[Finding] = []
        for (version, variant), rows in by_scope.items():
            y_true, y_pred, scores, groups = zip(*rows, strict=True)
            has_groups = any(g is not None for g in groups)
            findings += self.monitor.observe_labels(
                np.array(y_true, dtype=np.int64),
                np.array(y_pred, dtype=np.int64),
                np.array(scores, dtype=np.float64),
                np.array(groups, dtype=object) if has_groups else None,
                version,
                variant,
            )
        return findings

    def _vectors(
        self, features: list[dict[str, Any]]
    ) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, np.ndarray[Any, Any]]]:
        mon = self.monitor
        num: dict[str, np.ndarray[Any, Any]] = {}
        if mon.numeric:
            # numpy turns None into NaN for a float array: missing values stay missing.
            matrix = np.array([[f[n] for n in mon.numeric] for f in features], dtype=np.float64)
            num = {n: matrix[:, j] for j, n in enumerate(mon.numeric)}
        cat = {
            n: np.array([None if f[n] is None else str(f[n]) for f in features], dtype=object)
            for n in mon.categorical
        }
        return num, cat

    # -- alerts -------------------------------------------------------------------------
    async def _alert(self, findings: list[Finding]) -> None:
        if not findings:
            return
        now = time.time()
        by_version: dict[str, list[Finding]] = defaultdict(list)
        for f in findings:
            by_version[str(f.details.get("version", ""))].append(f)
        chosen = [
            f
            for version, fs in by_version.items()
            for f in self.policy.decide(self.model, version, fs, now)
        ]
        if not chosen:
            return
        args: list[Any] = [
            int(self.settings.alert_cooldown_s) or 1,
            self.settings.alerts_stream_maxlen,
        ]
        for f in chosen:
            alert = encode_alert(self.model, f, now)
            args += [
                f"{self.model}:{alert['version']}:{f.kind}:{f.feature or ''}",
                orjson.dumps(alert),
            ]
        emitted = await self._guarded(
            "alerts", self._emit(keys=["driftline:alert:dedupe:", ALERTS_KEY], args=args)
        )
        if emitted is None:
            # Redis is down: the Kafka topic still gets them (deduped locally by the policy).
            emitted = args[3::2]
        self.alerts_sent += len(emitted)
        for raw in emitted:
            log.warning("alert %s", raw.decode() if isinstance(raw, bytes) else raw)
        await self.send_alerts([bytes(r) if isinstance(r, bytes) else r.encode() for r in emitted])

    # -- periodic -----------------------------------------------------------------------
    async def tick(self, force: bool = False) -> None:
        """Snapshot, sweep the join and publish health when the interval has passed."""
        now = time.time()
        if not force and now - self._last_snapshot < self.settings.snapshot_interval_s:
            return
        await self.start()
        if not self._started:
            return  # never overwrite a snapshot we could not read
        self._last_snapshot = now
        state = orjson.dumps(
            {"monitor": self.monitor.snapshot(), "policy": self.policy.snapshot(), "at": now}
        )
        await self._guarded("snapshot", self.redis.set(self.state_key, state))
        await self._guarded("sweep", self.join.sweep(now))
        join_stats = await self._guarded("stats", self.join.stats())
        health = self.health()
        health["join"] = join_stats
        await self._guarded(
            "health",
            self.redis.hset(self.health_key, self.settings.worker_id, orjson.dumps(health)),
        )

    def health(self) -> dict[str, Any]:
        """The monitors' health plus this runtime's own state."""
        out = self.monitor.health()
        out.update(
            worker=self.settings.worker_id,
            degraded=self.degraded,
            alerts_sent=self.alerts_sent,
            resumed=self.restored,
            at=time.time(),
        )
        return out


__all__ = ["ALERTS_KEY", "MonitorRuntime", "encode_alert"]
