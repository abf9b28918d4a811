"""The retrainer: retrain requests in, gated candidates out to shadow (or refused).

A request (``retrain-requests``) trains a candidate on the training window in Redis — the most
recent labelled events — or, with ``DRIFTLINE_RETRAIN_SQL``, on the rows of a SQL query
(:mod:`~streams.control.sql_window`), and holds out the most recent part of it (post-drift
data) for the gates. A candidate that passes every gate is registered, made the challenger and
put in **shadow**; from there :class:`~streams.control.stages.StageStepper` promotes or rejects
it and watches the new champion. A request that finds too few labelled events (or a SQL window
it cannot read) is deferred and retried when there are enough.

The retrainer is a Faust app of its own, app id (and consumer group) ``driftline-retrainer``:

- an **agent** on ``retrain-requests``: when several retrainers run, each request goes to one.
  A request is acked (and so committed, within Faust's commit interval) only once handled: a
  crash before that hands it to the next retrainer. An unexpected error crashes the app, as it
  stopped the loop this agent replaced, and leaves the request to a restart;
- a **timer** every ``stage_interval_s`` that steps every model's stage, on the group's leader
  only, so that two retrainers never act on the same shadow test or watch.

Both take one lock: a request and a round of steps (which may retry a deferred request) never
train or stage at the same time. :meth:`Retrainer.run` runs the app until an event is set (the
command line, or a task of a worker with ``retrainer_in_worker``); :attr:`Retrainer.app` is the
app itself, for a :func:`~streams.adapters.faust_app.faust_worker` to run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from functools import cached_property
from typing import Any, cast

import faust
import numpy as np
import orjson
from faust.streams import Stream
from pydantic import ValidationError

from models.card import QueryInfo
from models.data import dataset_from_rows
from models.errors import ModelError
from models.gates import run_gates
from models.workflow import TrainOptions, train
from monitoring.sequential import PairedMSPRT
from streams.adapters.faust_app import faust_app
from streams.config.settings import Settings
from streams.contracts.messages import ModelUpdate, RetrainRequest
from streams.contracts.names import RETRAINER_GROUP, deferred_key, window_key
from streams.control.lifecycle import Lifecycle
from streams.control.sql_window import read_window
from streams.control.stages import StageStepper
from streams.errors import StreamsError
from streams.scoring.routing import Routing, save_routing

log = logging.getLogger("driftline.retrainer")

# Retrain-request reasons (their first word, from monitoring.retrain_policy) that mean the data
# changed: the candidate then learns from what was labelled after the request only.
DRIFT_REASONS = frozenset({"concept_drift", "performance", "data_drift", "sustained"})


class Retrainer:
    """Handles retrain requests and steps the shadow and watch stages of every model."""

    def __init__(self, settings: Settings, bootstrap: str, redis_url: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.lifecycle = Lifecycle(settings, redis_url)
        self.registry = self.lifecycle.registry
        self.redis = self.lifecycle.redis
        self.record = self.lifecycle.record
        self.stages = StageStepper(self.lifecycle, self._retry_deferred)
        self.gates = settings.gates
        self.busy = asyncio.Lock()

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
        stage = await self.lifecycle.stage(model)
        if stage.get("phase") == "watch":
            # A fresh champion that does worse is rolled back first; retrain after that.
            await self.redis.set(deferred_key(model), request.model_dump_json())
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
        try:
            rows, fresh_only, query = await self._training_rows(request)
        except (ModelError, StreamsError) as exc:  # the SQL window: a database down, a bad query
            await self.redis.set(deferred_key(model), request.model_dump_json())
            reason = f"the training window cannot be read: {exc}"
            await self.record(model, "deferred", request_id=request.request_id, reason=reason)
            return "deferred"
        if len(rows) < self.settings.retrain_min_rows:
            # Kept, and handled by `step` as soon as there are enough labelled events.
            await self.redis.set(deferred_key(model), request.model_dump_json())
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
            source = query.database if query else f"window:{model}"
            data = dataset_from_rows(card, [r["f"] for r in rows], [r["y"] for r in rows], source)
            data = replace(data, query=query)
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
        await self.lifecycle.set_stage(
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

    async def _training_rows(
        self, request: RetrainRequest
    ) -> tuple[list[dict[str, Any]], bool, QueryInfo | None]:
        """The labelled events to train on, whether only those after the request count, and
        the SQL query they came from (None: the Redis window).

        After a drift (concept, performance, data) the old concept would only teach the
        candidate the past: it learns from the events labelled since the request. Otherwise
        (the online challenger did better) it learns from the whole window.
        """
        fresh_only = request.reason.split(" ", 1)[0] in DRIFT_REASONS
        if self.settings.retrain_sql and self.settings.retrain_db:
            card = self.registry.card(f"{request.model}@champion")
            since = request.at if fresh_only else 0.0
            rows, query = await read_window(
                self.settings.retrain_db, self.settings.retrain_sql, card, since
            )
            return rows, fresh_only, query
        start = f"{int(request.at * 1000)}-0" if fresh_only else "-"
        entries: list[Any] = await self.redis.xrange(window_key(request.model), min=start) or []
        return [orjson.loads(fields[b"row"]) for _, fields in entries], fresh_only, None

    async def _retry_deferred(self, model: str) -> None:
        raw = await self.redis.get(deferred_key(model))
        if not raw:
            return
        request = RetrainRequest.model_validate_json(raw)
        try:
            rows, _, _ = await self._training_rows(request)
        except (ModelError, StreamsError):
            return  # still unreadable: the request waits, as it said when it was deferred
        if len(rows) < self.settings.retrain_min_rows:
            return
        await self.redis.delete(deferred_key(model))
        await self.record(
            model,
            "retry",
            request_id=request.request_id,
            reason="enough labelled events to train on now",
        )
        await self.handle(request)

    async def handle_message(self, value: bytes | None) -> None:
        """Handle one message of ``retrain-requests``: malformed ones and unknown models are
        logged and skipped."""
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

    async def step_all(self) -> None:
        """Step the stage of every registered model once."""
        for model in self.registry.names():
            await self.stages.step(model)
        if self.lifecycle.sql is not None:
            await self.lifecycle.sql.flush()

    # -- the Faust app ------------------------------------------------------------------
    @cached_property
    def app(self) -> faust.App:
        """The retrainer's Faust app: the request agent and the stage timer.

        Built on first use, so that it belongs to the event loop that runs it.
        """
        settings = self.settings
        app = faust_app(settings, self.bootstrap, RETRAINER_GROUP)
        requests = app.topic(
            settings.topic_retrain_requests,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.topic_partitions,
        )

        async def publish(update: ModelUpdate) -> None:
            payload = orjson.dumps(update.model_dump(mode="json"))
            topic = settings.topic_model_updates
            await app.producer.send_and_wait(
                topic, update.model.encode(), payload, None, None, None
            )

        self.lifecycle.publish = publish

        @app.agent(requests, name="retrain-requests")
        async def serve(agent_stream: faust.StreamT[bytes]) -> None:
            # Acked by hand: Faust acks an event when its handler ends, failed or not.
            stream = cast(Stream[bytes], agent_stream).noack()
            async for event in stream.events():
                try:
                    async with self.busy:
                        await self.handle_message(event.value)
                except Exception as exc:
                    await app.crash(exc)  # the request, never acked, goes to a restart
                    return
                event.ack()

        async def step_stages() -> None:
            async with self.busy:
                await self.step_all()

        app.timer(interval=settings.stage_interval_s, on_leader=True)(step_stages)

        async def finish(sender: Any, /, *args: Any, **kwargs: Any) -> None:
            # Faust waited for the request in hand to be acked; a round of steps ends too,
            # and nothing starts after it (the lock is never released).
            await self.busy.acquire()
            if self.lifecycle.sql is not None:
                await self.lifecycle.sql.aclose()
            await self.redis.aclose()

        app.on_before_shutdown.connect(finish)
        return app

    async def run(self, stop: asyncio.Event) -> None:
        """Run the app until ``stop`` is set; raise what crashed it, if anything did."""
        app = self.app
        await app.start()
        waits = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(app.wait_until_stopped()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await app.stop()
        if app.crash_reason is not None:
            raise app.crash_reason


__all__ = ["Retrainer"]
