"""The retrainer: retrain requests in, gated candidates through shadow to champion (or not).

- A request (``retrain-requests``, consumer group ``driftline-retrainer``, committed only once
  handled) trains a candidate on the training window in Redis — the most recent labelled
  events — and holds out the most recent part of it (post-drift data) for the gates.
- A candidate that passes every gate becomes the challenger in **shadow**: it scores live
  traffic while a paired, always-valid sequential test (mSPRT) compares it with the champion on
  the same labelled events. The test promotes or rejects it.
- After any promotion (by the test or by hand) the new champion is **watched**: if its live
  accuracy falls below the previous champion's by a margin, it is rolled back automatically.

Every decision is written to the registry history, to ``driftline:model:<name>:events`` in Redis
and, as a :class:`~streams.contracts.messages.ModelUpdate`, to ``model-updates``. Stage state lives
in ``driftline:model:<name>:stage`` so that a restarted retrainer carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from models.data import dataset_from_rows
from models.errors import ModelError
from models.gates import run_gates
from models.history import History
from models.registry import Registry
from models.workflow import TrainOptions, train
from monitoring.sequential import PairedMSPRT
from streams.adapters.kafka_admin import client_options
from streams.adapters.redis_client import async_redis
from streams.config.settings import Settings
from streams.contracts.messages import ModelUpdate, RetrainRequest
from streams.contracts.names import (
    RETRAINER_GROUP,
    champion_seen_key,
    deferred_key,
    events_key,
    health_key,
    pairs_prefix,
    stage_key,
    window_key,
)
from streams.scoring.routing import Routing, save_routing

log = logging.getLogger("driftline.retrainer")

# Retrain-request reasons (their first word, from monitoring.retrain_policy) that mean the data
# changed: the candidate then learns from what was labelled after the request only.
DRIFT_REASONS = frozenset({"concept_drift", "performance", "data_drift", "sustained"})


class Retrainer:
    """Handles retrain requests and runs the shadow and watch stages of every model."""

    def __init__(self, settings: Settings, bootstrap: str, redis_url: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.registry = Registry(settings.registry)
        self.history = History(settings.registry)
        self.redis = async_redis(redis_url, settings)
        self.producer: AIOKafkaProducer | None = None
        self.gates = settings.gates

    # -- recording ----------------------------------------------------------------------
    async def record(
        self, model: str, kind: str, *, update: ModelUpdate | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Write one decision to the history, Redis and (with ``update``) model-updates."""
        entry = self.history.record(model, kind, **fields)
        await self.redis.xadd(events_key(model), {"event": orjson.dumps(entry)}, maxlen=10_000)
        if update is not None and self.producer is not None:
            payload = orjson.dumps(update.model_dump(mode="json"))
            await self.producer.send_and_wait(
                self.settings.topic_model_updates, payload, key=model.encode()
            )
        log.info("%s %s %s", model, kind, {k: v for k, v in fields.items() if k != "gates"})
        return entry

    # -- requests -----------------------------------------------------------------------
    async def handle(self, request: RetrainRequest) -> str:
        """Train, gate and stage a candidate for one request; return the outcome."""
        model = request.model
        await self.record(
            model,
            "request",
            request_id=request.request_id,
            reason=request.reason,
            alert_ids=request.alert_ids,
            version=request.version,
        )
        stage = await self.stage(model)
        if stage.get("phase") == "watch":
            # A fresh champion that does worse is rolled back first; retrain after that.
            await self.redis.set(self._deferred_key(model), request.model_dump_json())
            await self.record(
                model,
                "deferred",
                request_id=request.request_id,
                reason=f"watching {stage['version']} after its promotion",
            )
            return "deferred"
        if stage.get("phase") == "shadow":
            await self.record(
                model,
                "skipped",
                request_id=request.request_id,
                reason=f"candidate {stage['version']} is already in shadow",
            )
            return "skipped"
        rows, fresh_only = await self._training_rows(request)
        if len(rows) < self.settings.retrain_min_rows:
            # Kept, and handled by `step` as soon as there are enough labelled events.
            await self.redis.set(self._deferred_key(model), request.model_dump_json())
            what = "labelled events since the drift" if fresh_only else "labelled events"
            await self.record(
                model,
                "deferred",
                request_id=request.request_id,
                reason=f"{len(rows)} {what} in the window, {self.settings.retrain_min_rows} needed",
            )
            return "deferred"
        champion = self.registry.load(f"{model}@champion")
        card = champion.card
        try:
            data = dataset_from_rows(
                card, [r["f"] for r in rows], [r["y"] for r in rows], source=f"window:{model}"
            )
            n_hold = max(100, int(len(rows) * self.settings.retrain_holdout))
            fit = data.subset(np.arange(0, len(rows) - n_hold))
            holdout = data.subset(np.arange(len(rows) - n_hold, len(rows)))
            options = TrainOptions(
                name=model,
                estimator=card.training.estimator,
                class_weight=card.training.class_weight,
                mitigate=card.training.mitigation,
                folds=3,
                seed=int(time.time()) % 10_000,
            )
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(None, train, fit, options)
            report = run_gates(
                result.card, result.payload, (card, champion.payload), holdout, self.gates
            )
        except ModelError as exc:
            await self.record(model, "failed", request_id=request.request_id, reason=str(exc))
            return "failed"
        await self.record(
            model,
            "gates",
            request_id=request.request_id,
            passed=report.passed,
            gates=report.to_dict(),
        )
        if not report.passed:
            reason = report.summary()
            await self.record(
                model,
                "reject",
                request_id=request.request_id,
                reason=reason,
                update=ModelUpdate(model=model, action="reject", reason=reason),
            )
            return "rejected"
        registered = self.registry.register(result.payload, result.card)
        version = registered.version
        self.registry.promote(model, version, "challenger")
        save_routing(self.registry, model, Routing(mode="shadow"))
        await self.set_stage(
            model,
            phase="shadow",
            version=version,
            champion=card.version,
            started=time.time(),
            offset=0,
            test=PairedMSPRT(**self.settings.sequential).snapshot(),
        )
        await self.record(
            model,
            "stage",
            version=version,
            stage="shadow",
            champion=card.version,
            request_id=request.request_id,
            update=ModelUpdate(
                model=model,
                action="stage",
                version=version,
                alias="challenger",
                routing={"mode": "shadow"},
            ),
        )
        return "shadow"

    # -- stages -------------------------------------------------------------------------
    def _stage_key(self, model: str) -> str:
        return stage_key(model)

    def _deferred_key(self, model: str) -> str:
        return deferred_key(model)

    async def _training_rows(self, request: RetrainRequest) -> tuple[list[dict[str, Any]], bool]:
        """The labelled events to train on, and whether only those after the request count.

        After a drift (concept, performance, data) the old concept would only teach the
        candidate the past: it learns from the events labelled since the request. Otherwise
        (the online challenger did better) it learns from the whole window.
        """
        fresh_only = request.reason.split(" ", 1)[0] in DRIFT_REASONS
        start = f"{int(request.at * 1000)}-0" if fresh_only else "-"
        entries: list[Any] = await self.redis.xrange(window_key(request.model), min=start) or []
        return [orjson.loads(fields[b"row"]) for _, fields in entries], fresh_only

    async def _retry_deferred(self, model: str) -> None:
        raw = await self.redis.get(self._deferred_key(model))
        if not raw:
            return
        request = RetrainRequest.model_validate_json(raw)
        rows, _ = await self._training_rows(request)
        if len(rows) < self.settings.retrain_min_rows:
            return
        await self.redis.delete(self._deferred_key(model))
        await self.record(
            model,
            "retry",
            request_id=request.request_id,
            reason="enough labelled events to train on now",
        )
        await self.handle(request)

    async def stage(self, model: str) -> dict[str, Any]:
        """The stage a model is in (empty when none)."""
        raw = await self.redis.get(self._stage_key(model))
        return orjson.loads(raw) if raw else {}

    async def set_stage(self, model: str, **state: Any) -> None:
        await self.redis.set(self._stage_key(model), orjson.dumps(state))

    async def clear_stage(self, model: str) -> None:
        await self.redis.delete(self._stage_key(model))

    async def step(self, model: str) -> None:
        """Advance the model's stage by what has been observed since the last step."""
        stage = await self.stage(model)
        aliases = self.registry.aliases(model)
        champion = aliases["champion"].version if "champion" in aliases else None
        if not stage:
            await self._retry_deferred(model)
            seen_key = champion_seen_key(model)
            raw = await self.redis.get(seen_key)
            seen = raw.decode() if isinstance(raw, bytes) else raw
            await self.redis.set(seen_key, champion or "")
            if seen and champion and seen != champion:
                await self._start_watch(model, champion, seen, None)
            return
        if stage["phase"] == "shadow":
            await self._step_shadow(model, stage)
        elif stage["phase"] == "watch":
            await self._step_watch(model, stage)

    async def _step_shadow(self, model: str, stage: dict[str, Any]) -> None:
        version = stage["version"]
        pairs = await self.redis.lrange(f"{pairs_prefix(model)}:{version}", stage["offset"], -1)
        test = PairedMSPRT(**self.settings.sequential)
        test.restore(stage["test"])
        if pairs:
            champ = np.array([p[0:1] == b"1" for p in pairs], dtype=bool)
            cand = np.array([p[1:2] == b"1" for p in pairs], dtype=bool)
            test.update(cand, champ)
            stage["offset"] += len(pairs)
            stage["champion_correct"] = stage.get("champion_correct", 0) + int(champ.sum())
            stage["pairs"] = stage.get("pairs", 0) + len(pairs)
        stage["test"] = test.snapshot()
        decision = test.decision
        if decision == "continue":
            await self.set_stage(model, **stage)
            return
        stats = test.statistics()
        await self.record(model, "test", version=version, decision=decision, statistics=stats)
        save_routing(self.registry, model, Routing())
        if decision == "reject":
            reason = f"sequential test: not better than champion {stage['champion']} ({stats})"
            await self.clear_stage(model)
            await self.record(
                model,
                "reject",
                version=version,
                reason=reason,
                update=ModelUpdate(model=model, action="reject", version=version, reason=reason),
            )
            return
        previous = stage["champion"]
        self.registry.promote(model, version, "champion")
        baseline = stage["champion_correct"] / max(stage["pairs"], 1)
        await self.record(
            model,
            "promote",
            version=version,
            previous=previous,
            reason="sequential test",
            baseline_accuracy=baseline,
            update=ModelUpdate(model=model, action="promote", version=version, alias="champion"),
        )
        await self._start_watch(model, version, previous, baseline)

    async def _start_watch(
        self, model: str, version: str, previous: str, baseline: float | None
    ) -> None:
        if baseline is None:
            baseline = (await self.live(model, previous))[0]
        await self.redis.set(champion_seen_key(model), version)
        await self.set_stage(
            model,
            phase="watch",
            version=version,
            previous=previous,
            baseline=baseline,
            until=time.time() + self.settings.watch_s,
        )
        await self.record(
            model,
            "stage",
            version=version,
            stage="watch",
            previous=previous,
            baseline_accuracy=baseline,
        )

    async def _step_watch(self, model: str, stage: dict[str, Any]) -> None:
        accuracy, labels = await self.live(model, stage["version"])
        baseline = stage.get("baseline")
        margin = self.settings.rollback_margin
        if (
            baseline is not None
            and accuracy is not None
            and labels >= self.settings.rollback_min_labels
            and accuracy < baseline - margin
        ):
            restored = self.registry.rollback(model)
            await self.redis.set(champion_seen_key(model), restored)
            await self.clear_stage(model)
            reason = (
                f"live accuracy {accuracy:.3f} over {labels} labels < previous champion's "
                f"{baseline:.3f} - {margin:g}"
            )
            await self.record(
                model,
                "rollback",
                version=stage["version"],
                restored=restored,
                reason=reason,
                update=ModelUpdate(
                    model=model,
                    action="rollback",
                    version=restored,
                    alias="champion",
                    reason=reason,
                ),
            )
        elif time.time() > stage["until"]:
            await self.clear_stage(model)
            await self.record(
                model,
                "stage",
                version=stage["version"],
                stage="stable",
                accuracy=accuracy,
                labels=labels,
            )

    async def live(self, model: str, version: str) -> tuple[float | None, int]:
        """Rolling accuracy and labels of ``version`` as champion, over every worker."""
        workers = await self.redis.hgetall(health_key(model))
        total, weighted = 0, 0.0
        for raw in workers.values():
            scope = orjson.loads(raw).get("metrics", {}).get(f"{version}/champion")
            if not scope:
                continue
            rolling = scope.get("rolling", {})
            count, accuracy = rolling.get("count") or 0, rolling.get("accuracy")
            if count and accuracy is not None:
                total += count
                weighted += count * accuracy
        return (weighted / total if total else None), total

    # -- loops --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Consume requests and step every model's stage until ``stop`` is set."""
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, **client_options(self.settings)
        )
        consumer = AIOKafkaConsumer(
            self.settings.topic_retrain_requests,
            bootstrap_servers=self.bootstrap,
            group_id=RETRAINER_GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_options(self.settings),
        )
        await self.producer.start()
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(
                    timeout_ms=int(self.settings.stage_interval_s * 1000)
                )
                for messages in batch.values():
                    for msg in messages:
                        await self._handle_raw(msg.value)
                if batch:
                    await consumer.commit()  # only now: a crash before this retries the request
                for model in self.registry.names():
                    await self.step(model)
        finally:
            await consumer.stop()
            await self.producer.stop()
            await self.redis.aclose()

    async def _handle_raw(self, value: bytes | None) -> None:
        try:
            request = RetrainRequest.model_validate_json(value or b"")
        except ValidationError as exc:
            log.error("ignoring a malformed retrain request: %s", exc.errors()[0]["msg"])
            return
        if request.model not in self.registry.names():
            log.error("retrain request for unknown model %r", request.model)
            return
        outcome = await self.handle(request)
        log.info("request %s for %s: %s", request.request_id, request.model, outcome)


__all__ = ["Retrainer"]
