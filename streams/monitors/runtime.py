"""Monitoring inside a worker: feed the monitors per batch, join labels, alert, snapshot.

Redis holds everything that must outlive the process (docs/architecture.md, "Contracts";
the keys are named in :mod:`streams.contracts.names`):

- ``driftline:model:<name>:state`` — the monitor and alert-policy snapshot (JSON,
  the format documented in :mod:`monitoring.model_monitor`), written at least every
  ``snapshot_interval_s`` with one ``SET`` (atomic) and read back when a worker starts;
- ``driftline:model:<name>:health`` — a hash: the monitors' health summary (field ``monitor``);
- ``driftline:model:<name>:history`` — a stream capped at ``history_max_points``: one compact
  point (:mod:`monitoring.timeline`) per ``history_interval_s``, for ``driftline report``;
- ``driftline:alerts`` — a capped stream of alerts, also published on the channel of the same
  name and produced to the ``drift-alerts`` topic;
- ``driftline:join:<name>:*`` — the label join (:mod:`streams.adapters.redis_join`).

When Redis is unreachable, scoring goes on: monitoring keeps its state in memory, logs one
warning, marks itself degraded in health, and writes again once Redis answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
from redis.exceptions import RedisError

from models.card import ModelCard
from monitoring.alerts import AlertPolicy
from monitoring.challenger import OnlineChallenger
from monitoring.config import MonitorConfig
from monitoring.errors import MonitoringError
from monitoring.findings import Finding
from monitoring.model_monitor import ModelMonitor
from monitoring.retrain_policy import RetrainPolicy
from monitoring.timeline import history_point
from streams.adapters.redis_client import async_redis
from streams.adapters.redis_join import RedisLabelJoin
from streams.config.settings import Settings
from streams.contracts.messages import SCHEMA_VERSION, RetrainRequest
from streams.contracts.names import (
    ALERT_DEDUPE_PREFIX,
    ALERTS_KEY,
    HEALTH_FIELD,
    health_key,
    history_key,
    pairs_prefix,
    state_key,
    window_key,
)
from streams.scoring.batch import Scored

log = logging.getLogger("driftline.monitor")

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


def entry_lines(
    part: Scored, keep: int, groups: list[Any] | None, slices: list[str] | None = None
) -> list[bytes]:
    """The label-join entry of each event of ``part``, as JSON, one per event.

    An entry is ``{"f": features or null, "p": [[version, variant, label, score, group]]}``:
    the first ``keep`` events keep their features. With ``slices`` (``slice_by`` is set and
    the batch had a context) each event's slice value follows its group, ``[..., group,
    slice]``: it waits for the label with the prediction, as the group does (an entry
    without it reads as no value).

    The entries are written out from one ``orjson`` call per column rather than built as a
    dict per event and dumped: that was three quarters of what storing a batch cost the
    worker (0.72 -> 0.19 µs per event). A label and a score (a float, or null) never hold a
    comma, so each column's array splits into its values at the commas. Scores are written
    as the float32 they are (``0.82345676``, not ``0.8234567642211914``): a tenth of the
    bytes the join stores per event.
    """
    n = len(part.event_ids)
    if n == 0:
        return []
    labels = orjson.dumps(part.labels.tolist())[1:-1].split(b",")
    f32 = np.ascontiguousarray(part.scores, dtype=np.float32)
    scores = orjson.dumps(f32, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
    middle = b',"p":[[' + orjson.dumps([part.version, part.variant])[1:-1] + b","
    features = [orjson.dumps(f) for f in part.features[:keep]] + [b"null"] * (n - keep)
    if groups is None and slices is None:
        tail = b",null]]}"
        return [
            b"".join((b'{"f":', f, middle, label, b",", score, tail))
            for f, label, score in zip(features, labels, scores, strict=True)
        ]
    gs: list[Any] = [None] * n if groups is None else groups
    encoded = {g: orjson.dumps(g) for g in set(gs)}
    if slices is None:
        return [
            b"".join((b'{"f":', f, middle, label, b",", score, b",", encoded[g], b"]]}"))
            for f, label, score, g in zip(features, labels, scores, gs, strict=True)
        ]
    values = {v: orjson.dumps(v) for v in set(slices)}
    return [
        b"".join(
            (b'{"f":', f, middle, label, b",", score, b",", encoded[g], b",", values[v], b"]]}")
        )
        for f, label, score, g, v in zip(features, labels, scores, gs, slices, strict=True)
    ]


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
        self.config = MonitorConfig.from_mapping(settings.monitor)
        self.monitor = ModelMonitor(card, self.config)
        self.policy = AlertPolicy(settings.alert_cooldown_s)
        self.retrain = RetrainPolicy(**settings.retrain_policy)
        self.challenger = (
            OnlineChallenger(card, kind=settings.challenger_kind)
            if settings.challenger_kind != "off"
            else None
        )
        # (online challenger correct, champion correct) on the same labelled events
        self._online_pairs: deque[tuple[bool, bool]] = deque(maxlen=20_000)
        self.champion_version = card.version
        self.retrain_requests = 0
        self.redis = async_redis(
            redis_url, settings, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        self.join = RedisLabelJoin(self.redis, model, settings.join_ttl_s, settings.join_max_items)
        self._emit = self.redis.register_script(_EMIT)
        self.send = send
        self.card_loader = card_loader
        self._known_versions = {card.version}
        self.state_key = state_key(model)
        self.health_key = health_key(model)
        self.window_key = window_key(model)
        self.pairs_prefix = pairs_prefix(model)
        self.degraded: str | None = None
        self._failed_at = 0.0
        self.alerts_sent = 0
        self.restored = False
        self._last_snapshot = 0.0
        self._last_history = 0.0
        self._feature_tokens = float(max(settings.window_features_rate, settings.window_size))
        self._feature_clock = time.monotonic()
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

    # -- redis guard --------------------------------------------------------------------
    async def _guarded(self, what: str, call: Awaitable[Any]) -> Any:
        started = time.monotonic()
        try:
            result = await call
        except (RedisError, OSError) as exc:
            if self.degraded is None:
                log.warning("monitoring degraded: Redis %s failed (%s); scoring goes on", what, exc)
            self.degraded = f"redis {what}: {exc}"
            self._failed_at = time.monotonic()
            return None
        # Only a call that began after the last failure proves that Redis is back: one that
        # was already under way (the timer and the agent share this flag) proves nothing.
        if self.degraded is not None and started > self._failed_at:
            log.warning("monitoring recovered: Redis answers again")
            self.degraded = None
        return result

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Resume from the last snapshot in Redis, if there is one (once, on first use)."""
        if self._started:
            return
        async with self._starting:  # two feeds (topic, in-process) must not restore twice
            if not self._started:
                await self._load()

    async def _load(self) -> None:
        raw = await self._guarded("load", self.redis.get(self.state_key))
        if raw is None and self.degraded is not None:
            return  # Redis is down: try again on the next batch rather than start from zero
        self._started = True
        if raw:
            state = orjson.loads(raw)
            self.monitor.restore(state["monitor"])
            self.policy.restore(state["policy"])
            self.retrain.restore(state.get("retrain", {}))
            self.input_next = state.get("input_next")
            if self.challenger is not None and state.get("challenger"):
                self.challenger.restore(state["challenger"])
            self.restored = True
            log.info("monitoring resumed from %s", self.state_key)

    def release(self) -> None:
        """This process no longer owns the monitors: resume from Redis if it owns them again."""
        self.owned = False
        self._started = False

    def add_card(self, card: ModelCard) -> None:
        """Make a newly served version known to the monitors."""
        self.monitor.add_card(card)
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
        await self.redis.aclose()

    # -- per batch ----------------------------------------------------------------------
    async def on_scored(self, scored: Sequence[Scored]) -> None:
        """Feed the monitors with what a batch was scored on; keep it for the label join."""
        await self.start()
        findings: list[Finding] = []
        ids: list[str] = []
        lines: list[bytes] = []
        pending: dict[str, dict[str, Any]] = {}  # events that more than one variant scored
        shared = any(part.variant == "shadow" for part in scored)
        for part in scored:
            if part.version not in self._known_versions:
                self._learn_version(part.version)
            if part.variant == "champion":
                self.champion_version = part.version
            numeric, categorical = self.feature_columns(part)
            groups = self.monitor.groups_of(numeric, categorical, part.context)
            findings += self.monitor.observe_batch(
                numeric, categorical, part.scores, part.version, part.variant, groups
            )
            glist = groups.tolist() if groups is not None else None
            slist = self.monitor.slices_of(part.context)  # None: not sliced, or no context
            keep = self._features_budget(len(part.event_ids)) if part.variant != "shadow" else 0
            if not shared:  # a shadow scores the champion's events; canary and champion split
                ids += part.event_ids
                lines += entry_lines(part, keep, glist, slist)
                continue
            version, variant = part.version, part.variant
            for i, (eid, label, score) in enumerate(
                zip(part.event_ids, part.labels.tolist(), part.scores.tolist(), strict=True)
            ):
                entry = pending.get(eid)
                if entry is None:
                    entry = pending[eid] = {"f": part.features[i] if i < keep else None, "p": []}
                item = [version, variant, label, score, glist[i] if glist else None]
                if slist is not None:
                    item.append(slist[i])
                entry["p"].append(item)
        if pending:
            ids = list(pending)
            lines = [orjson.dumps(entry) for entry in pending.values()]
        joined = await self._guarded(
            "join", self.join.add_prediction_lines(ids, lines, time.time())
        )
        if joined:
            findings += await self._observe_joined(joined)
        await self._alert(findings)

    def _features_budget(self, n: int) -> int:
        """How many of the next ``n`` events keep their features (a token bucket).

        Storing every event's features in the join is what monitoring costs most at high
        rates; the retraining window and the online challenger learn as well from a recent
        sample, so beyond ``window_features_rate`` events/s only predictions are kept.
        """
        now = time.monotonic()
        rate = self.settings.window_features_rate
        burst = max(rate, self.settings.window_size)  # a fresh start may fill the window
        self._feature_tokens = min(burst, self._feature_tokens + (now - self._feature_clock) * rate)
        self._feature_clock = now
        keep = min(n, int(self._feature_tokens))
        self._feature_tokens -= keep
        return keep

    async def on_labels(self, labels: Sequence[tuple[str, Any]]) -> None:
        """Join labels with their predictions (either order) and feed the label monitors."""
        await self.start()
        joined = await self._guarded("join", self.join.add_labels(list(labels), time.time()))
        if joined:
            await self._alert(await self._observe_joined(joined))

    async def _observe_joined(self, joined: Sequence[tuple[str, Any, Any]]) -> list[Finding]:
        """Label monitors, training window and paired shadow outcomes of joined events."""
        classes = list(self.monitor.card.classes)
        by_scope: dict[tuple[str, str], list[tuple[int, int, float, Any, Any]]] = defaultdict(list)
        window: list[bytes] = []
        paired: dict[str, list[str]] = defaultdict(list)
        learn_rows: list[dict[str, Any]] = []
        learn_y: list[int] = []
        champion_ok: list[bool] = []
        for eid, payload, label in joined:
            y = classes.index(label) if isinstance(label, str) and label in classes else label
            if not isinstance(y, int) or y not in (0, 1):
                continue  # a label the model cannot have predicted: not comparable
            features = payload["f"]
            if features is not None:
                window.append(orjson.dumps({"id": eid, "f": features, "y": y}))
            correct: dict[str, tuple[str, bool]] = {}
            for version, variant, predicted, score, group, *sliced in payload["p"]:
                value = sliced[0] if sliced else None  # the slice value, if it was stored
                by_scope[(version, variant)].append((y, predicted, score, group, value))
                correct[variant] = (version, predicted == y)
            if "champion" in correct and features is not None:
                learn_rows.append(features)
                learn_y.append(y)
                champion_ok.append(correct["champion"][1])
            if "champion" in correct and "shadow" in correct:
                version, shadow_ok = correct["shadow"]
                paired[version].append(f"{int(correct['champion'][1])}{int(shadow_ok)}")
        findings: list[Finding] = []
        for (version, variant), rows in by_scope.items():
            y_true, y_pred, scores, groups, values = zip(*rows, strict=True)
            has_groups = any(g is not None for g in groups)
            has_values = any(v is not None for v in values)
            findings += self.monitor.observe_labels(
                np.array(y_true, dtype=np.int64),
                np.array(y_pred, dtype=np.int64),
                np.array(scores, dtype=np.float64),
                np.array(groups, dtype=object) if has_groups else None,
                version,
                variant,
                slices=list(values) if has_values else None,
            )
        if self.challenger is not None and learn_rows:
            # progressive validation: each row is predicted before the challenger learns it
            challenger_ok = self.challenger.learn(learn_rows, learn_y)
            self._online_pairs.extend(zip(challenger_ok.tolist(), champion_ok, strict=True))
        await self._guarded("window", self._keep(window, paired))
        return findings

    async def _consider_retraining(self, alerts: list[dict[str, Any]], now: float) -> None:
        """Ask the retrainer for a new version when the policy says so."""
        version = self.champion_version
        paired = None
        if self._online_pairs:
            both = np.array(self._online_pairs, dtype=bool)
            paired = (both[:, 0], both[:, 1])  # (challenger, champion), as the policy expects
        decision = self.retrain.consider(
            self.model,
            version,
            [a for a in alerts if a.get("version") in (version, "")],
            now,
            champion_metrics=self.monitor.metrics().get(f"{version}/champion"),
            challenger_metrics=self.challenger.metrics() if self.challenger else None,
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
        self.retrain_requests += 1
        await self.send(
            self.settings.topic_retrain_requests, [orjson.dumps(request.model_dump(mode="json"))]
        )

    async def _keep(self, window: list[bytes], paired: dict[str, list[str]]) -> None:
        """Append labelled events to the training window and shadow pairs, one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for row in window:
            pipe.xadd(
                self.window_key, {"row": row}, maxlen=self.settings.window_size, approximate=True
            )
        for version, pairs in paired.items():
            key = f"{self.pairs_prefix}:{version}"
            pipe.rpush(key, *pairs)
            pipe.ltrim(key, -self.settings.max_paired, -1)
        await pipe.execute()

    def feature_columns(
        self, part: Scored
    ) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, np.ndarray[Any, Any]]]:
        """The monitored features of ``part`` as columns: numeric ones as the scorer read
        them when it gave them (in-process), else read from the events' features."""
        mon = self.monitor
        features = part.features
        num: dict[str, np.ndarray[Any, Any]] = {}
        given = part.numeric
        if given is not None and all(n in given for n in mon.numeric):
            num = {n: given[n] for n in mon.numeric}
        elif mon.numeric:
            # numpy turns None into NaN for a float array: missing values stay missing.
            row = itemgetter(*mon.numeric)
            matrix = np.array(list(map(row, features)), dtype=np.float64)
            matrix = matrix.reshape(len(features), len(mon.numeric))
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
            "alerts", self._emit(keys=[ALERT_DEDUPE_PREFIX, ALERTS_KEY], args=args)
        )
        if emitted is None:
            # Redis is down: the Kafka topic still gets them (deduped locally by the policy).
            emitted = args[3::2]
        self.alerts_sent += len(emitted)
        for raw in emitted:
            log.warning("alert %s", raw.decode() if isinstance(raw, bytes) else raw)
        payloads = [bytes(r) if isinstance(r, bytes) else r.encode() for r in emitted]
        await self.send(self.settings.topic_alerts, payloads)
        await self._consider_retraining([orjson.loads(p) for p in payloads], now)

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
            {
                "monitor": self.monitor.snapshot(),
                "policy": self.policy.snapshot(),
                "retrain": self.retrain.snapshot(),
                "challenger": self.challenger.snapshot() if self.challenger else None,
                "input_next": self.input_next,
                "at": now,
            }
        )
        await self._guarded("snapshot", self.redis.set(self.state_key, state))
        await self._consider_retraining([], now)
        await self._guarded("sweep", self.join.sweep(now))
        join_stats = await self._guarded("stats", self.join.stats())
        health = self.health()
        health["join"] = join_stats
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.health_key, HEALTH_FIELD, orjson.dumps(health))
        if now - self._last_history >= self.settings.history_interval_s:
            self._last_history = now
            point = history_point(health, self.monitor.drift_statistics(), self.champion_version)
            pipe.xadd(  # exact cap: one entry trimmed per interval costs nothing
                history_key(self.model),
                {"point": orjson.dumps(point)},
                maxlen=self.settings.history_max_points,
                approximate=False,
            )
        await self._guarded("health", pipe.execute())

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
            at=time.time(),
        )
        return out


__all__ = ["MonitorRuntime", "encode_alert", "entry_lines"]
