"""Streaming commands: ``worker``, ``produce``, ``tail`` and ``schema``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from models.data import DATASETS
from streams.adapters.kafka_admin import client_options, create_topics
from streams.cli.options import (
    add_option,
    exclusive_group,
    non_negative_float,
    non_negative_int,
    positive_int,
)
from streams.config.settings import Settings, env_name, load_settings
from streams.contracts.messages import CONTRACTS, json_schemas
from streams.errors import ConfigError, ServiceError
from streams.local.services import LocalServices


def all_topics(settings: Settings) -> list[str]:
    """Every topic Driftline uses, by its configured name."""
    return [
        settings.topic_events,
        settings.topic_predictions,
        settings.topic_labels,
        settings.topic_alerts,
        settings.topic_retrain_requests,
        settings.topic_model_updates,
        settings.topic_dlq,
        settings.topic_monitor,
    ]


def ensure_topics(settings: Settings, bootstrap: str) -> list[str]:
    """Create the topics that do not exist yet, with the configured partitions."""
    return asyncio.run(
        create_topics(bootstrap, all_topics(settings), settings.topic_partitions, settings)
    )


def _worker(args: argparse.Namespace) -> int:
    from models.registry import Registry  # Faust is heavy to import: only workers need it
    from streams.monitors.agents import faust_worker
    from streams.worker.app import WorkerRuntime, create_app, freeze_heap
    from streams.worker.health import WorkerObservability

    settings = load_settings(model=args.model)
    if not settings.model:
        raise ConfigError(f"which model? pass --model NAME or set {env_name('model')}")
    bootstrap = LocalServices(settings).kafka_bootstrap()
    ensure_topics(settings, bootstrap)
    runtime = WorkerRuntime(settings, settings.model, Registry(settings.registry))
    observability = WorkerObservability(settings, runtime)
    app = create_app(
        settings,
        bootstrap,
        runtime,
        redis_url=_monitor_redis(settings),
        on_batch=observability.on_batch,
    )
    observability.attach(app)
    if settings.retrainer_in_worker:
        from streams.control.retrainer import Retrainer

        retrainer = Retrainer(settings, bootstrap, LocalServices(settings).redis_url())

        async def run_retrainer() -> None:
            await retrainer.run(asyncio.Event())  # runs until the worker stops

        app.task(run_retrainer)
    print(
        f"worker for {settings.model}: {runtime.current.describe()} on {bootstrap}", file=sys.stderr
    )
    observability.start()
    freeze_heap()
    faust_worker(app, settings.log_level).execute_from_commandline()
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from models.card import ModelCard
    from models.errors import ModelError
    from models.registry import Registry
    from streams.monitors.agents import create_monitor_app, faust_worker

    settings = load_settings(model=args.model, monitoring=True)
    if not settings.model:
        raise ConfigError(f"which model? pass --model NAME or set {env_name('model')}")
    registry = Registry(settings.registry)
    if "champion" not in registry.aliases(settings.model):
        raise ConfigError(f"model {settings.model!r} has no champion in {registry.root}")
    model = settings.model
    card = registry.card(f"{model}@champion")
    services = LocalServices(settings)
    bootstrap = services.kafka_bootstrap()
    ensure_topics(settings, bootstrap)

    def card_of(version: str) -> ModelCard | None:
        try:
            return registry.card(f"{model}@{version}")
        except ModelError:
            return None

    app, _ = create_monitor_app(settings, bootstrap, model, card, services.redis_url(), card_of)
    print(f"monitor for {settings.model} on {bootstrap}", file=sys.stderr)
    from streams.worker.app import freeze_heap

    freeze_heap()
    faust_worker(app, settings.log_level).execute_from_commandline()
    return 0


def _retrainer(args: argparse.Namespace) -> int:
    import signal

    from streams.control.retrainer import Retrainer

    settings = load_settings()
    services = LocalServices(settings)
    bootstrap = services.kafka_bootstrap()
    ensure_topics(settings, bootstrap)
    retrainer = Retrainer(settings, bootstrap, services.redis_url())
    print(f"retrainer on {bootstrap}, registry {settings.registry}", file=sys.stderr)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await retrainer.run(stop)

    asyncio.run(run())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from streams.local.demo import run_demo
    from streams.local.toolchain import find_java

    broker = args.broker
    if broker is None:
        try:
            find_java(load_settings().services_from)
            broker = "kafka"
        except ServiceError as exc:
            print(f"driftline: {exc}; the demo runs on Tansu, in memory only", file=sys.stderr)
            broker = "tansu"
    return run_demo(quick=args.quick, broker=broker)


def _monitor_redis(settings: Settings) -> str | None:
    if not settings.monitoring:
        return None
    try:
        return LocalServices(settings).redis_url()
    except ServiceError as exc:
        raise ConfigError(
            f"{exc}; or set {env_name('monitoring')}=false to score without monitoring"
        ) from exc


def _produce(args: argparse.Namespace) -> int:
    from models.data import synthetic
    from streams.local.producer import dataset_events, file_events, produce

    settings = load_settings()
    if (args.dataset is None) == (args.file is None):  # the parser ensures it; callers may not
        raise ConfigError("give exactly one source: --dataset KIND or --file PATH")
    if args.file is not None:
        pairs = file_events(args.file, prefix=args.prefix, label_column=args.label_column)
    else:
        ds = synthetic(
            args.dataset, rows=max(args.count, 50), seed=args.seed, features=args.n_features
        )
        pairs = dataset_events(ds, prefix=args.prefix, entities=args.entities)
    bootstrap = LocalServices(settings).kafka_bootstrap()
    ensure_topics(settings, bootstrap)
    sent, labelled = asyncio.run(
        produce(
            bootstrap,
            pairs,
            topic=settings.topic_events,
            labels_topic=settings.topic_labels if args.labels else None,
            label_delay_s=args.label_delay,
            count=args.count,
            rate=args.rate,
            client_options=client_options(settings),
        )
    )
    print(
        f"sent {sent} events to {settings.topic_events}"
        + (f" and {labelled} labels to {settings.topic_labels}" if args.labels else "")
    )
    return 0


async def _tail(settings: Settings, bootstrap: str, args: argparse.Namespace) -> int:
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        **client_options(settings),
    )
    await consumer.start()
    seen = 0
    try:
        while args.count is None or seen < args.count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=args.count)
            for messages in batch.values():
                for msg in messages:
                    if args.count is not None and seen >= args.count:
                        break
                    _show(msg.value, msg.partition, msg.offset, as_json=args.json)
                    seen += 1
    finally:
        await consumer.stop()
    return 0


def _show(value: bytes | None, partition: int, offset: int, *, as_json: bool) -> None:
    text = (value or b"").decode("utf-8", "replace")
    if as_json:
        sys.stdout.write(text + "\n")
    else:
        sys.stdout.write(f"[{partition}:{offset}] {text}\n")
    sys.stdout.flush()


def _tail_cmd(args: argparse.Namespace) -> int:
    settings = load_settings()
    bootstrap = LocalServices(settings).kafka_bootstrap()
    try:
        return asyncio.run(_tail(settings, bootstrap, args))
    except KeyboardInterrupt:
        return 0


def _schema(args: argparse.Namespace) -> int:
    schemas = json_schemas()
    if args.name:
        if args.name not in schemas:
            raise ConfigError(f"unknown message {args.name!r}; one of {', '.join(schemas)}")
        schemas = {args.name: schemas[args.name]}
    sys.stdout.write(orjson.dumps(schemas, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``worker``, ``monitor``, ``retrainer``, ``demo``, ``produce``, ``tail``, ``schema``."""
    w = sub.add_parser(
        "worker",
        help="score events from Kafka with a model's champion",
        description="Score the events topic with a model's champion (and challenger), hot-swap "
        "versions without a restart; runs until stopped. Tuned by the DRIFTLINE_* settings "
        "(`driftline config`).",
    )
    add_option(w, "--model", setting="model", metavar="NAME", help="model to serve")
    w.set_defaults(func=_worker)

    m = sub.add_parser(
        "monitor",
        help="join labels and watch a model in a process of its own (optional)",
        description="Join labels with predictions and run the drift, performance and fairness "
        "monitors apart from the workers; runs until stopped.",
    )
    add_option(m, "--model", setting="model", metavar="NAME", help="model to watch")
    m.set_defaults(func=_monitor)

    r = sub.add_parser(
        "retrainer",
        help="train, gate, shadow-test, promote and roll back on retrain requests",
        description="Serve retrain requests until stopped; tuned by the DRIFTLINE_* settings.",
    )
    r.set_defaults(func=_retrainer)

    d = sub.add_parser(
        "demo",
        help="the whole loop live: drift, alerts, retraining, promotion",
        description="Start services, train, serve, drift, alert, retrain and promote, then stop.",
    )
    add_option(d, "--quick", action="store_true", help="shorter phases (about a minute)")
    add_option(
        d,
        "--broker",
        setting="broker",
        choices=["kafka", "tansu"],
        default_text="kafka when Java is installed, else tansu",
        help="broker to start",
    )
    d.set_defaults(func=_demo)

    p = sub.add_parser(
        "produce",
        help="send synthetic or replayed events (and labels) to Kafka",
        description="Send events from a synthetic dataset or a CSV/JSONL file to the events topic.",
    )
    source = exclusive_group(p, required=True)
    add_option(
        p,
        "--dataset",
        group=source,
        choices=DATASETS,
        metavar="KIND",
        help=f"synthetic dataset to draw events from: {', '.join(DATASETS)}",
    )
    add_option(
        p, "--file", group=source, type=Path, metavar="PATH", help="replay a CSV or JSONL file"
    )
    add_option(p, "--count", type=positive_int, default=1000, metavar="N", help="events to send")
    add_option(
        p,
        "--rate",
        type=non_negative_float,
        default=0.0,
        metavar="PER_S",
        help="events per second (0: as fast as possible)",
    )
    add_option(p, "--seed", type=non_negative_int, default=7, metavar="N", help="dataset seed")
    add_option(
        p,
        "--n-features",
        type=positive_int,
        default=10,
        metavar="N",
        help="features of the hyperplane dataset",
    )
    add_option(
        p,
        "--entities",
        type=non_negative_int,
        default=1000,
        metavar="N",
        help="distinct entities for sticky routing (0: none)",
    )
    add_option(
        p,
        "--labels",
        action="store_true",
        help=f"also send ground truth to the labels topic (named by {env_name('topic_labels')})",
    )
    add_option(
        p,
        "--label-delay",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="send each label this long after its event",
    )
    add_option(p, "--label-column", metavar="COL", help="label column/field in --file")
    add_option(p, "--prefix", default="ev", metavar="TEXT", help="event_id prefix")
    p.set_defaults(func=_produce)

    t = sub.add_parser(
        "tail",
        help="print the messages of a topic as they arrive",
        description="Print a topic's messages as [partition:offset] JSON; runs until stopped "
        "unless --count.",
    )
    t.add_argument("topic", help="topic name, e.g. predictions, events-dlq, drift-alerts")
    add_option(
        t, "--count", type=positive_int, metavar="N", default_text="never", help="stop after N"
    )
    add_option(t, "--json", action="store_true", help="print only the JSON values, one a line")
    add_option(t, "--from-beginning", action="store_true", help="start at the oldest message")
    t.set_defaults(func=_tail_cmd)

    s = sub.add_parser(
        "schema",
        help="print the JSON Schema of every message contract",
        description="Print the JSON Schema of the message contracts, for producers and "
        "consumers in any language.",
    )
    s.add_argument(
        "name",
        nargs="?",
        default=None,
        choices=list(CONTRACTS),
        metavar="NAME",
        help=f"one contract: {', '.join(CONTRACTS)} (default all)",
    )
    s.set_defaults(func=_schema)


__all__ = ["all_topics", "ensure_topics", "register"]
