"""The retrainer: retrain requests in, gated candidates out to shadow (or refused).

A request (``retrain-requests``) trains a candidate on the training window in Redis — the most
recent labelled events — or, with ``DRIFTLINE_RETRAIN_SQL``, on the rows of a SQL query
(:mod:`~streams.control.sql_window`), and holds out the most recent part of it (post-drift
data) for the gates. A candidate that passes every gate is registered, made the challenger and
put in **shadow**; from there :class:`~streams.control.stages.StageStepper` promotes or rejects
it and watches the new champion. A request that finds too few labelled events (or a SQL window
it cannot read) is deferred and retried when there are enough. Which events a candidate learns
from is :mod:`~streams.control.window`'s; its shadow test starts from the holdout events
neither model saw (:mod:`~streams.control.holdout_pairs`). During a watch a drift request is
deferred, while a refit (:mod:`~streams.control.refits`) or the online challenger's request
trains and stages its candidate, the watch carried in its stage; a refit on twice the
post-drift events replaces a post-drift candidate still in shadow.

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

from models.data import dataset_from_rows
from models.errors import ModelError
from models.gates import run_gates
from models.workflow import TrainOptions, train
from monitoring.sequential import PairedMSPRT
from streams.adapters.faust_app import faust_app
from streams.config.settings import Settings
from streams.contracts.messages import ModelUpdate, RetrainRequest
from streams.contracts.names import RETRAINER_GROUP, deferred_key
from streams.control.holdout_pairs import unseen_pairs
from streams.control.lifecycle import Lifecycle
from streams.control.refits import SUPERSEDE_FACTOR, Refits
from streams.control.stages import StageStepper
from streams.control.window import LEARN_MORE, TrainingWindow, trigger
from streams.errors import StreamsError
from streams.scoring.routing import Routing, save_routing

log = logging.getLogger("driftline.retrainer")


class Retrainer:
    """Handles retrain requests and steps the shadow and watch stages of every model."""

    def __init__(self, settings: Settings, bootstrap: str, redis_url: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.lifecycle = Lifecycle(settings, redis_url)
        self.registry = self.lifecycle.registry
        self.redis = self.lifecycle.redis
        self.record = self.lifecycle.record
        self.refits = Refits(self.lifecycle)
        self.window = TrainingWindow(self.lifecycle, self.refits)
        self.stages = StageStepper(self.lifecycle, self._retry_deferred, self._refit)
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
        seen = await self.lifecycle.stage_raw(model)
        stage: dict[str, Any] = orjson.loads(seen) if seen else {}
        better = trigger(request.reason) in LEARN_MORE
        if stage.get("phase") == "watch" and not better:
            # A fresh champion that does worse is rolled back first; retrain after that.
            return await self._defer(request, f"watching {stage['version']} after its promotion")
        if stage.get("phase") == "shadow" and (not better or stage.get("window_since") is None):
            reason = f"candidate {stage['version']} is already in shadow"
            await self.record(model, "skipped", request_id=request.request_id, reason=reason)
            return "skipped"
        try:
            since = await self.window.start(request, stage)
            rows, query = await self.window.rows(model, since)
        except (ModelError, StreamsError) as exc:  # the SQL window: a database down, a bad query
            return await self._defer(request, f"the training window cannot be read: {exc}")
        # A candidate of the scheduled post-drift window learns from a superset of what its
        # champion learnt, by the same recipe: its test asks only that it be no worse than
        # the champion by more than refit_margin (the watch still guards after promotion).
        schedule = await self.refits.plan(model)
        refit = better and bool(schedule) and since == schedule.get("since")
        if stage.get("phase") == "shadow" and len(rows) < SUPERSEDE_FACTOR * stage["rows"]:
            reason = (
                f"candidate {stage['version']} is already in shadow, trained on "
                f"{stage['rows']} of these {len(rows)} labelled events"
            )
            await self.record(model, "skipped", request_id=request.request_id, reason=reason)
            return "skipped"
        if len(rows) < self.settings.retrain_min_rows:
            # Kept, and handled by `step` as soon as there are enough labelled events.
            what = "labelled events since the drift" if since else "labelled events"
            needed = self.settings.retrain_min_rows
            return await self._defer(request, f"{len(rows)} {what} in the window, {needed} needed")
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
            seed = await loop.run_in_executor(
                None,
                unseen_pairs,
                (result.card, result.payload),
                (card, champion.payload),
                rows[len(rows) - n_hold :],
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
        # The stage this candidate replaces: none, the watch it read, or (a refit on more
        # post-drift events) the candidate in shadow now, whatever its test saw since.
        over = seen if stage.get("phase") == "watch" else None
        if stage.get("phase") == "shadow":
            replaced = stage["version"]
            over = await self.lifecycle.stage_raw(model)
            stage = orjson.loads(over) if over else {}
            if stage.get("version") != replaced:
                reason = f"the test of {replaced}, which it was to replace, ended meanwhile"
                return await self._defer(request, reason)
        watch = stage if stage.get("phase") == "watch" else stage.get("watch")
        carry = {"watch": watch} if watch else {}
        if not await self.lifecycle.claim_stage(model, request.request_id, over, **carry):
            # a watch or another candidate began while this one trained: after it, again
            return await self._defer(request, "another stage began while the candidate trained")
        if not await self.lifecycle.claim_request(model, request.request_id):
            await self.lifecycle.restore_stage(model, over)
            reason = "another retrainer already staged a candidate for this request"
            await self.record(model, "skipped", request_id=request.request_id, reason=reason)
            return "skipped"
        test_options = dict(self.settings.sequential)
        if refit:
            margin = max(float(test_options.get("margin", 0.0)), self.settings.refit_margin)
            test_options["margin"] = margin
        test = PairedMSPRT(**test_options)
        test.update(*seed)  # the holdout rows neither model saw: see holdout_pairs
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
            last_pair="",
            test=test.snapshot(),
            pairs=len(seed[0]),
            champion_correct=int(seed[1].sum()),
            request_id=request.request_id,
            rows=len(rows),
            window_since=since or None,
            **carry,
        )
        if refit:
            await self.refits.advance(model, len(rows))
        if stage.get("phase") == "shadow":
            reason = f"superseded by {version}, trained on {len(rows)} labelled events"
            old = stage["version"]
            update = ModelUpdate(model=model, action="reject", version=old, reason=reason)
            await self.record(model, "reject", version=old, reason=reason, update=update)
        await self.record(
            model,
            "stage",
            version=version,
            stage="shadow",
            champion=card.version,
            request_id=request.request_id,
            rows=len(rows),
            seeded_pairs=len(seed[0]),
            margin=test.margin,
            update=ModelUpdate(
                model=model,
                action="stage",
                version=version,
                alias="challenger",
                routing={"mode": "shadow"},
            ),
        )
        return "shadow"

    async def _defer(self, request: RetrainRequest, reason: str) -> str:
        """Keep ``request`` for the stage timer to retry; record why."""
        await self.redis.set(deferred_key(request.model), request.model_dump_json())
        await self.record(request.model, "deferred", request_id=request.request_id, reason=reason)
        return "deferred"

    async def _retry_deferred(self, model: str) -> None:
        raw = await self.redis.get(deferred_key(model))
        if not raw:
            return
        request = RetrainRequest.model_validate_json(raw)
        try:
            since = await self.window.start(request, await self.lifecycle.stage(model))
            rows, _ = await self.window.rows(model, since)
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

    async def _refit(self, model: str, champion: str) -> bool:
        """Handle the model's refit when its milestone came; whether one did."""
        request = await self.refits.due(model, champion)
        if request is None:
            return False
        outcome = await self.handle(request)
        log.info("refit %s for %s: %s", request.request_id, model, outcome)
        return True

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
