"""Monitoring inside a worker: feed the monitors per batch, join labels, alert, snapshot.

:class:`MonitorRuntime` composes the parts, each in a module of its own:

- :mod:`~streams.monitors.entries` — what the label join keeps of a scored batch;
- :mod:`~streams.monitors.labelled` — label monitors, training window, shadow pairs and the
  online challenger, once a label joined its prediction;
- :mod:`~streams.monitors.alerts` — findings to alerts: policy, dedupe, delivery;
- :mod:`~streams.monitors.retraining` — retrain requests when the policy says so;
- :mod:`~streams.monitors.snapshot` — the snapshot, health and history;
- :mod:`~streams.monitors.guard` — what an unreachable Redis means.

Redis holds everything that must outlive the process (docs/architecture.md, "Contracts";
the keys are named in :mod:`streams.contracts.names`):

- ``driftline:{<name>}:state`` — the monitor and alert-policy snapshot (JSON,
  the format documented in :mod:`monitoring.monitor_snapshot`), written at least every
  ``snapshot_interval_s`` with one ``SET`` (atomic) and read back when a worker starts,
  through :class:`streams.adapters.redis_state.RedisStateStore`, a
  :class:`monitoring.state.StateStore`;
- ``driftline:{<name>}:health`` — a hash: the monitors' health summary (field ``monitor``);
- ``driftline:{<name>}:history`` — a stream capped at ``history_max_points``: one compact
  point (:mod:`monitoring.timeline`) per ``history_interval_s``, for ``driftline report``;
- ``driftline:alerts`` — a capped stream of alerts, also published on the channel of the same
  name (:class:`streams.adapters.redis_alerts.RedisAlertSink`, a
  :class:`monitoring.state.AlertSink`) and produced to the ``drift-alerts`` topic;
- ``driftline:{<name>}:join:*`` — the label join (:mod:`streams.adapters.redis_join`).

Before it first reads them, the model's keys from before hash tags are moved to these names
(once: :mod:`streams.adapters.redis_migrate`).

When Redis is unreachable, scoring goes on: monitoring keeps its state in memory, logs one
warning, marks itself degraded in health, and writes again once Redis answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from models.card import ModelCard
from monitoring.alerts import AlertPolicy
from monitoring.challenger import OnlineChallenger
from monitoring.errors import BatchError, MonitoringError
from monitoring.findings import Finding
from monitoring.model_monitor import ModelMonitor
from monitoring.retrain_policy import RetrainPolicy
from monitoring.state import AlertSink, StateStore
from streams.adapters.redis_alerts import RedisAlertSink
from streams.adapters.redis_client import async_redis
from streams.adapters.redis_fence import OwnerFence
from streams.adapters.redis_join import RedisLabelJoin, retry_step
from streams.adapters.redis_migrate import migrate_model_keys
from streams.adapters.redis_state import RedisMonitorRecords, RedisStateStore
from streams.adapters.sql_history import SqlHistory
from streams.config.settings import Settings
from streams.contracts.names import health_key, pairs_prefix, state_key, window_key
from streams.monitors.alerts import AlertPath, Send, encode_alert
from streams.monitors.entries import add_entries, entry_lines
from streams.monitors.guard import RedisGuard
from streams.monitors.labelled import LabelSide
from streams.monitors.retraining import Retraining
from streams.monitors.snapshot import Parts, StatePath
from streams.monitors.summaries import Reduced, feature_columns, make_reducer
from streams.scoring.batch import Scored

log = logging.getLogger("driftline.monitor")

# How long a label-join step is sent again while Redis fails: a replica takes over within a
# few seconds (a cluster's node timeout plus its election); the step applies once however
# often it is sent, and one given up loses its labels for good.
JOIN_PATIENCE_S = 15.0


class MonitorRuntime:
    """Everything monitoring does for one model in one worker process."""

    def __init__(
        self,
        settings: Settings,
        model: str,
        card: ModelCard,
        redis_url: str,
        send: Send,
        card_loader: Callable[[str], ModelCard | None] | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.config = settings.monitor
        self.monitor = ModelMonitor(card, self.config)
        self.policy = AlertPolicy(settings.alert_cooldown_s)
        self.retrain = RetrainPolicy(**settings.retrain_policy)
        self.challenger = (
            OnlineChallenger(card, kind=settings.challenger_kind)
            if settings.challenger_kind != "off"
            else None
        )
        self.champion_version = card.version
        self.redis = async_redis(
            redis_url, settings, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        # every owner write checks this epoch (streams.adapters.redis_fence)
        self.fence = OwnerFence(self.redis, model)
        self.join = RedisLabelJoin(
            self.redis,
            model,
            settings.join_ttl_s,
            settings.join_max_items,
            self.fence,
            # a new owner replays what followed the last snapshot: keep the join's answers
            # for that many records well past the snapshot interval
            replay_s=max(600.0, 20 * settings.snapshot_interval_s),
        )
        self.store: StateStore = RedisStateStore(self.redis, self.fence)
        self.sink: AlertSink = RedisAlertSink(
            self.redis, settings.alert_cooldown_s, settings.alerts_stream_maxlen
        )
        self.records = RedisMonitorRecords(
            self.redis,
            model,
            settings.window_size,
            settings.max_paired,
            settings.history_max_points,
            self.fence,
        )
        self.guard = RedisGuard(on_fenced=self._fenced)
        self.parts = Parts(self.monitor, self.policy, self.retrain, self.challenger)
        self.history = (
            SqlHistory(settings.history_db, settings.history_flush_s)
            if settings.history_db
            else None
        )
        self.state = StatePath(
            self.store,
            state_key(model),
            self.records,
            self.guard,
            settings.history_interval_s,
            self.history,
            model,
        )
        self.alerts = AlertPath(
            model, self.policy, self.sink, self.guard, settings.topic_alerts, self.history
        )
        self.retraining = Retraining(model, self.retrain, settings.topic_retrain_requests)
        self.labels = LabelSide(self.monitor, self.challenger, self.records, self.guard)
        # Reduces the scored batches of this process (and old records with features).
        self.reducer = make_reducer(settings, card, card_loader)
        # Read on every use: the worker's health wraps it to count alerts.
        self.send = send
        self.card_loader = card_loader
        self._known_versions = {card.version}
        self.state_key = state_key(model)
        self.health_key = health_key(model)
        self.window_key = window_key(model)
        self.pairs_prefix = pairs_prefix(model)
        self.restored = False
        self.unmonitored = 0  # events whose summaries the monitors could not take
        self._last_snapshot = 0.0
        self._started = False
        self._starting = asyncio.Lock()
        # Whether this process runs the model's monitors now, as the rebalance callbacks of the
        # monitor-input consumer say (:class:`streams.monitors.input.MonitorInput`). Its
        # assignment cannot say it: it keeps naming the old partitions until the new
        # assignment lands, long after the revocation has handed them over.
        self.owned = False
        # The next monitor-input offset to read: part of the snapshot, so that a new owner
        # reads on exactly where the state it loads stops (streams.monitors.input).
        self.input_next: int | None = None
        # One piece of input (and the snapshot that may follow it) at a time: a snapshot
        # taken halfway through a record would hold its effect without its offset.
        self.lock = asyncio.Lock()

    @property
    def degraded(self) -> str | None:
        """Why monitoring is degraded (Redis unreachable, a monitor error), or None."""
        return self.guard.degraded

    @degraded.setter
    def degraded(self, why: str | None) -> None:
        self.guard.degraded = why

    @property
    def alerts_sent(self) -> int:
        """Alerts this process delivered."""
        return self.alerts.sent

    @property
    def retrain_requests(self) -> int:
        """Retrain requests this process sent."""
        return self.retraining.requests

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Resume from the last snapshot in Redis, if there is one (once, on first use)."""
        if self._started:
            return
        async with self._starting:  # two feeds (topic, in-process) must not restore twice
            if not self._started:
                await self._load()

    async def _load(self) -> None:
        moved = await self.guard(
            "key migration", migrate_model_keys(self.redis, self.model, self.join, time.time())
        )
        if moved is None:
            return  # Redis is down: try again on the next batch
        if any(moved.values()):
            log.warning("moved %s's Redis keys to their hash-tagged names: %s", self.model, moved)
        answered, state = await self.state.load()
        if not answered:
            return  # Redis is down: try again on the next batch rather than start from zero
        self._started = True
        if state:
            self.input_next = self.parts.restore(state)
            self.restored = True
            log.info("monitoring resumed from %s", self.state_key)

    def release(self) -> None:
        """This process no longer owns the monitors: resume from Redis if it owns them again."""
        self.owned = False
        self._started = False

    async def take_ownership(self) -> int | None:
        """Become the owner: a new epoch, which makes every older owner's writes fail
        (None when Redis is down: the writes go unchecked until the next takeover)."""
        epoch: int | None = await self.guard("ownership", self.fence.take())
        if epoch is None:
            self.fence.epoch = None
        log.info("monitoring %s: owner epoch %s", self.model, epoch)
        return epoch

    def _fenced(self) -> None:
        # Another process took the monitors over while this one was away: what this one holds
        # is stale. Stop acting as the owner; the monitor-input consumer's next rebalance
        # says whether this process owns them again (then it reloads their snapshot).
        if self.owned:
            log.warning(
                "monitoring %s: another process owns the monitors now (epoch after %s); "
                "this one stops writing",
                self.model,
                self.fence.epoch,
            )
        self.release()

    def add_card(self, card: ModelCard) -> None:
        """Make a newly served version known to the monitors."""
        self.monitor.add_card(card)
        self.reducer.add_card(card)
        self._known_versions.add(card.version)

    def _learn_version(self, version: str) -> None:
        self._known_versions.add(version)  # asked once, whatever the answer
        card = self.card_loader(version) if self.card_loader else None
        if card is None:
            return
        try:
            self.monitor.add_card(card)
        except MonitoringError as exc:
            log.error(
                "monitoring compares %s@%s with the champion's card: %s", self.model, version, exc
            )

    async def close(self) -> None:
        """Write a last snapshot (unless the monitors were handed over) and disconnect."""
        if self._started:
            await self.tick(force=True)
        if self.history is not None:
            await self.history.aclose()
        await self.redis.aclose()

    # -- per batch ----------------------------------------------------------------------
    async def on_scored(self, scored: Sequence[Reduced], step: str | None = None) -> None:
        """Feed the monitors with the summaries of scored events; keep the events' join
        entries for the label join.

        ``step`` names the monitor-input record the batch came from: its join step applies
        once, however often the record is replayed (:mod:`streams.adapters.redis_join`).
        """
        await self.start()
        findings: list[Finding] = []
        ids: list[str] = []
        lines: list[bytes] = []
        pending: dict[str, dict[str, Any]] = {}  # events that more than one variant scored
        shared = any(r.part.variant == "shadow" for r in scored)
        for r in scored:
            part = r.part
            for version in {part.version, r.summary.ref}:
                if version not in self._known_versions:
                    self._learn_version(version)
            if part.variant == "champion" and part.event_ids:
                self.champion_version = part.version
            try:
                findings += self.monitor.observe_summary(r.summary)
            except BatchError as exc:  # not countable here; its labels still join
                self.unmonitored += r.summary.rows
                log.error("monitoring %s: a summary left out: %s", self.model, exc)
            keep = len(part.features)
            if shared:  # a shadow scores the champion's events; canary and champion split
                add_entries(pending, part, keep, r.groups, r.slices)
            else:
                ids += part.event_ids
                lines += entry_lines(part, keep, r.groups, r.slices)
        if pending:
            ids = list(pending)
            lines = [orjson.dumps(entry) for entry in pending.values()]
        step, now = step or retry_step(), time.time()
        joined = await self.guard.persist(
            "join", lambda: self.join.add_prediction_lines(ids, lines, now, step), JOIN_PATIENCE_S
        )
        if joined:
            findings += await self.labels.observe(joined)
        await self._alert(findings)

    async def on_labels(self, labels: Sequence[tuple[str, Any]], step: str | None = None) -> None:
        """Join labels with their predictions (either order) and feed the label monitors
        (``step``: as for :meth:`on_scored`)."""
        await self.start()
        step, now, items = step or retry_step(), time.time(), list(labels)
        joined = await self.guard.persist(
            "join", lambda: self.join.add_labels(items, now, step), JOIN_PATIENCE_S
        )
        if joined:
            await self._alert(await self.labels.observe(joined))

    def feature_columns(
        self, part: Scored
    ) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, np.ndarray[Any, Any]]]:
        """The monitored features of ``part`` as columns
        (:func:`streams.monitors.summaries.feature_columns`)."""
        return feature_columns(part, self.monitor.numeric, self.monitor.categorical)

    # -- alerts and retraining ----------------------------------------------------------
    async def _alert(self, findings: list[Finding]) -> None:
        delivered = await self.alerts.deliver(findings, self.send)
        if delivered is not None:
            await self._consider_retraining(*delivered)

    async def _consider_retraining(self, alerts: Sequence[Mapping[str, Any]], now: float) -> None:
        """Ask the retrainer for a new version when the policy says so."""
        version = self.champion_version
        await self.retraining.consider(
            version,
            alerts,
            now,
            self.send,
            champion_metrics=self.monitor.metrics().get(f"{version}/champion"),
            challenger_metrics=self.challenger.metrics() if self.challenger else None,
            online_pairs=self.labels.online_pairs,
        )

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
        await self.state.save(self.parts.snapshot(self.input_next, now))
        await self._consider_retraining([], now)
        await self.guard("sweep", self.join.sweep(now))
        join_stats = await self.guard("stats", self.join.stats())
        health = self.health()
        health["join"] = join_stats
        await self.state.publish(health, self.monitor, self.champion_version, now)

    def health(self) -> dict[str, Any]:
        """The monitors' health plus this runtime's own state."""
        out = self.monitor.health()
        out.update(
            worker=self.settings.worker_id,
            degraded=self.degraded,
            alerts_sent=self.alerts_sent,
            retrain_requests=self.retrain_requests,
            challenger=self.challenger.metrics() if self.challenger else None,
            resumed=self.restored,
            unmonitored=self.unmonitored,
            owner_epoch=self.fence.epoch,
            fenced_writes=self.guard.refused,
            at=time.time(),
        )
        return out


__all__ = ["MonitorRuntime", "Send", "encode_alert", "entry_lines"]
