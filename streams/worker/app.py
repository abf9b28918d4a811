"""The scoring worker: a Faust app that scores micro-batches of ``events``.

The hot path is :class:`streams.scoring.loop.ScoringLoop`, a task of the app: at least once,
offsets committed only after the broker acknowledged every prediction and dead letter of the
batch, or exactly once (``processing_guarantee``), in one transaction per commit interval.
The app's agents forward labels and run the monitors. Model changes arrive on
``model-updates`` (every worker reads all of it, outside the consumer group) and are applied
between batches.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from models.card import ModelCard
from models.errors import ModelError
from models.registry import Registry
from models.scorer import OnnxScorer
from streams.adapters.faust_app import faust_app
from streams.adapters.kafka_admin import (
    PatientProducer,
    consumer_options,
    producer_options,
    request_timeout_ms,
)
from streams.config.settings import Settings
from streams.contracts.messages import card_event_model
from streams.contracts.names import scorer_group, worker_app_id
from streams.errors import ConfigError
from streams.monitors.agents import (
    MonitorFeed,
    add_label_forwarder,
    add_monitor_agent,
    delivery,
    sender,
)
from streams.monitors.runtime import MonitorRuntime
from streams.monitors.summaries import make_reducer
from streams.ops.liveness import exit_for_restart
from streams.scoring.batch import BatchResult, BatchScorer, Encoded, ModelSet
from streams.scoring.inflight import BatchStats
from streams.scoring.loop import MAX_BATCH_BYTES, SESSION_TIMEOUT_MS, ScoringLoop
from streams.scoring.routing import Routing, routing_of
from streams.scoring.transactions import Transaction, transactional_options

log = logging.getLogger("driftline.worker")


class WorkerRuntime:
    """The state one worker serves: the current :class:`ModelSet`, swapped between batches."""

    def __init__(self, settings: Settings, model: str, registry: Registry) -> None:
        self.settings = settings
        self.model = model
        self.registry = registry
        self.scorer = BatchScorer(model, max_event_bytes=settings.max_event_bytes)
        self.current = self.load()
        self.swaps = 0
        self.monitor: MonitorRuntime | None = None
        self.loop: ScoringLoop | None = None

    def cards(self) -> list[ModelCard]:
        """Cards of the versions served now (champion first)."""
        models = self.current
        served = [models.champion, *([models.challenger] if models.challenger else [])]
        return [s.card for s in served if isinstance(s, OnnxScorer)]

    def _key(self, models: ModelSet) -> tuple[str, str | None, str]:
        return (
            models.champion.version,
            models.challenger.version if models.challenger else None,
            models.routing.model_dump_json(),
        )

    def _wanted(self) -> tuple[str, str | None, Routing]:
        # one read: the aliases and the routing as one writer left them together
        state = self.registry.state(self.model)
        aliases = state.aliases
        if "champion" not in aliases:
            raise ConfigError(
                f"model {self.model!r} has no champion in {self.registry.root}: train it with "
                f"`driftline train --name {self.model} --promote` or promote a version"
            )
        challenger = aliases.get("challenger")
        routing = routing_of(state, self.model)
        return aliases["champion"].version, challenger.version if challenger else None, routing

    def load(self, previous: ModelSet | None = None) -> ModelSet:
        """Read the registry and build the model set (reusing unchanged scorers)."""
        champion_v, challenger_v, routing = self._wanted()
        threads = self.settings.onnx_threads

        def scorer(version: str) -> OnnxScorer:
            if previous and previous.champion.version == version:
                return previous.champion  # type: ignore[return-value]
            if previous and previous.challenger and previous.challenger.version == version:
                return previous.challenger  # type: ignore[return-value]
            return OnnxScorer.from_registry(
                self.registry, f"{self.model}@{version}", threads=threads
            )

        champion = scorer(champion_v)
        challenger = scorer(challenger_v) if challenger_v and challenger_v != champion_v else None
        event_type = (
            previous.event_type
            if previous and previous.champion is champion
            else card_event_model(champion.card)
        )
        return ModelSet(champion, event_type, challenger, routing)

    async def reconcile(self) -> bool:
        """Load what the registry says now, off the event loop; swap it in if it changed."""
        loop = asyncio.get_running_loop()
        try:
            fresh = await loop.run_in_executor(None, self.load, self.current)
        except Exception as exc:  # A bad version must never stop a serving worker.
            log.error(
                "model %s: keeping %s, cannot load update: %s",
                self.model,
                self.current.describe(),
                exc,
            )
            return False
        if self._key(fresh) == self._key(self.current):
            return False
        log.info("model %s: swap %s -> %s", self.model, self.current.describe(), fresh.describe())
        self.current = fresh
        self.swaps += 1
        return True

    def card_of(self, version: str) -> ModelCard | None:
        """The card of a version of this model (None when it cannot be read)."""
        try:
            return self.registry.card(f"{self.model}@{version}")
        except ModelError as exc:
            log.error("no card for %s@%s: %s", self.model, version, exc)
            return None


class CommittedFeed:
    """Exactly once, the owner's monitors take a batch in process only once its transaction
    committed: they never count a prediction that readers will not see, and an aborted
    transaction's batches (scored again) are dropped. Other workers' batches go to
    ``monitor-input`` inside the transaction. A batch that the monitors cannot take at the
    commit (their queue full, or handed over since) goes to the topic with the next batch,
    or in a transaction of its own at the next settle (:meth:`leftovers`); records carried
    into a transaction that aborts are carried again."""

    def __init__(self, feed: MonitorFeed) -> None:
        self.feed = feed
        self.held: list[BatchResult] = []  # the open transaction's, for the monitors here
        self.carried: list[Encoded] = []  # committed batches' records, not sent yet
        self.sending: list[Encoded] = []  # carried records sent in the open transaction

    def route(self, result: BatchResult) -> list[Encoded]:
        """Hold ``result`` for the monitors in process, or return its records to send."""
        carried = self.leftovers()
        monitor = self.feed.monitor
        if monitor is not None and monitor.owned and monitor.settings.monitor_local_feed:
            self.held.append(result)
            return carried
        return carried + self.feed.route(result)

    def leftovers(self) -> list[Encoded]:
        """The carried records, now to be sent in the open transaction."""
        carried, self.carried = self.carried, []
        self.sending += carried
        return carried

    def ended(self, committed: bool) -> None:
        """The transaction of the held batches ended: hand them over, or drop them."""
        held, self.held = self.held, []
        sent, self.sending = self.sending, []
        if committed:
            for result in held:
                self.carried += self.feed.route(result)
        else:  # committed batches' records, aborted with this transaction: not lost
            self.carried = sent + self.carried


def create_app(
    settings: Settings,
    bootstrap: str,
    runtime: WorkerRuntime,
    redis_url: str | None = None,
    on_batch: Callable[[BatchStats], None] | None = None,
) -> faust.App:
    """Build the Faust app of one scoring worker for ``runtime.model``.

    With ``redis_url``, the app also runs the monitoring agents (labels, snapshots) and sends
    alerts to the drift-alerts topic. ``on_batch`` sees every committed batch.
    """
    # the labels agent starts where the scoring consumer does: the same model's history
    app = faust_app(settings, bootstrap, worker_app_id(runtime.model), settings.start_offset)
    deliver = delivery(app)
    if redis_url is not None and settings.monitor_in_worker:
        runtime.monitor = MonitorRuntime(
            settings,
            runtime.model,
            runtime.cards()[0],
            redis_url,
            sender(deliver, runtime.model),
            card_loader=runtime.card_of,
        )

    exactly_once = settings.processing_guarantee == "exactly_once"

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=scorer_group(runtime.model),
            enable_auto_commit=False,
            auto_offset_reset=settings.start_offset,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=SESSION_TIMEOUT_MS // 4,
            request_timeout_ms=request_timeout_ms(settings),
            **consumer_options(settings),
        )

    def producer() -> AIOKafkaProducer:
        # No linger: a batch's messages are all queued before its acks are awaited, so they
        # travel together anyway, and a linger would only add to every batch's latency.
        return PatientProducer(
            bootstrap_servers=bootstrap,
            linger_ms=0,
            max_batch_size=MAX_BATCH_BYTES,
            **producer_options(settings),
            **transactional_options(settings, runtime.model),
        )

    reducer = (
        runtime.monitor.reducer
        if runtime.monitor is not None
        else make_reducer(settings, runtime.cards()[0], runtime.card_of)
    )
    feed = MonitorFeed(runtime.model, runtime.monitor, reducer)
    held = CommittedFeed(feed) if exactly_once else None
    loop = ScoringLoop(
        settings,
        consumer,
        producer,
        runtime.scorer,
        lambda: runtime.current,  # one model set per batch; swaps land between batches
        monitor_records=(held or feed).route if settings.monitoring else None,
        monitor_leftovers=held.leftovers if held is not None and settings.monitoring else None,
        on_batch=on_batch,
        transaction=(
            Transaction.of_worker(settings, runtime.model, SESSION_TIMEOUT_MS, held.ended)
            if held is not None
            else None
        ),
    )
    runtime.loop = loop

    async def score() -> None:
        try:
            await loop.run()
        except asyncio.CancelledError:
            if not loop.stopping.is_set():  # not a stop: a client's task ended ours
                log.error("the scoring loop was cancelled", exc_info=True)
                exit_for_restart("the scoring loop was cancelled")
            raise
        finally:
            if loop.failure is not None:  # what was not committed is scored after the restart
                exit_for_restart(f"the scoring loop stopped: {loop.failure!r}")

    app.task(score)

    if runtime.monitor is None:

        async def finish_batch(sender: Any, /, *args: Any, **kwargs: Any) -> None:
            await loop.stop()

        app.on_before_shutdown.connect(finish_batch)

    async def follow_updates() -> None:
        # Not a Faust agent: an agent shares its topic's partitions out among the app's group,
        # and every worker must hear every update (docs/architecture.md).
        consumer = AIOKafkaConsumer(
            settings.topic_model_updates,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="latest",
            **consumer_options(settings),
        )
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=int(settings.reload_interval_s * 1000))
                wanted = any(
                    _names_model(m.value, runtime.model) for msgs in batch.values() for m in msgs
                )
                if wanted or not batch:
                    await runtime.reconcile()
        finally:
            await consumer.stop()

    app.task(follow_updates)
    if settings.monitoring:
        add_label_forwarder(app, settings, runtime.model, runtime.scorer, deliver)
    if runtime.monitor is not None:
        # the last batches committed first, for the monitors to take before they hand over
        add_monitor_agent(app, settings, bootstrap, runtime.monitor, feed, before_stop=loop.stop)
    return app


def freeze_heap(young: int = 100_000) -> None:
    """Keep the cycle collector off the hot path.

    A worker allocates a few containers per event and frees nearly all of them by reference
    counting, yet every ``gc`` threshold's worth of allocations the collector walks the young
    objects, and each full collection walks the whole heap (models, libraries). What is loaded
    at start is frozen out of its reach and young collections run every ``young`` allocations
    instead of 700.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, 20, 100)


def _names_model(value: bytes | None, model: str) -> bool:
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and doc.get("model") == model


__all__ = ["CommittedFeed", "WorkerRuntime", "create_app", "freeze_heap"]
