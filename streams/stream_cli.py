"""Streaming commands: ``worker``, ``produce``, ``tail`` and ``schema``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from streams.errors import ConfigError, ServiceError
from streams.kafka_admin import client_options, create_topics
from streams.messages import json_schemas
from streams.services import LocalServices
from streams.settings import Settings, env_name, load_settings


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
    import faust  # Faust is heavy to import: only the worker needs it.

    from models.registry import Registry
    from streams.app import WorkerRuntime, create_app

    settings = load_settings(model=args.model)
    if not settings.model:
        raise ConfigError(f"which model? pass --model NAME or set {env_name('model')}")
    bootstrap = LocalServices(settings).kafka_bootstrap()
    ensure_topics(settings, bootstrap)
    runtime = WorkerRuntime(settings, settings.model, Registry(settings.registry))
    app = create_app(settings, bootstrap, runtime, redis_url=_monitor_redis(settings))
    if settings.retrainer_in_worker:
        from streams.retrainer import Retrainer

        retrainer = Retrainer(settings, bootstrap, LocalServices(settings).redis_url())

        async def run_retrainer() -> None:
            await retrainer.run(asyncio.Event())  # runs until the worker stops

        app.task(run_retrainer)
    print(
        f"worker for {settings.model}: {runtime.current.describe()} on {bootstrap}", file=sys.stderr
    )
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
    return 0


def _monitor(args: argparse.Namespace) -> int:
    import faust

    from models.card import ModelCard
    from models.errors import ModelError
    from models.registry import Registry
    from streams.monitor_agents import create_monitor_app

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
    faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True).execute_from_commandline()
    return 0


def _retrainer(args: argparse.Namespace) -> int:
    import signal

    from streams.retrainer import Retrainer

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
    import shutil

    from streams.demo import run_demo

    broker = args.broker or ("kafka" if shutil.which("java") else "tansu")
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
    from streams.producer import dataset_events, file_events, produce

    settings = load_settings()
    if (args.dataset is None) == (args.file is None):
        raise ConfigError("give exactly one source: --dataset NAME or --file PATH")
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
    """Add ``worker``, ``produce``, ``tail`` and ``schema`` to the CLI."""
    w = sub.add_parser("worker", help="score events from Kafka with a model's champion")
    w.add_argument("--model", default=None, help=f"model name (env {env_name('model')})")
    w.set_defaults(func=_worker)

    m = sub.add_parser(
        "monitor", help="join labels and watch a model in a process of its own (optional)"
    )
    m.add_argument("--model", default=None, help=f"model name (env {env_name('model')})")
    m.set_defaults(func=_monitor)

    r = sub.add_parser(
        "retrainer", help="train, gate, shadow-test, promote and roll back on retrain requests"
    )
    r.set_defaults(func=_retrainer)

    d = sub.add_parser("demo", help="the whole loop live: drift, alerts, retraining, promotion")
    d.add_argument("--quick", action="store_true", help="shorter phases (about a minute)")
    d.add_argument(
        "--broker",
        choices=["kafka", "tansu"],
        default=None,
        help="broker to start (default kafka when Java is installed, else tansu)",
    )
    d.set_defaults(func=_demo)

    p = sub.add_parser("produce", help="send synthetic or replayed events (and labels) to Kafka")
    p.add_argument(
        "--dataset",
        choices=["agrawal", "sea", "hyperplane"],
        default=None,
        help="synthetic dataset to draw events from",
    )
    p.add_argument("--file", type=Path, default=None, help="replay a CSV or JSONL file")
    p.add_argument("--count", type=int, default=1000, help="events to send (default 1000)")
    p.add_argument(
        "--rate", type=float, default=0.0, help="events per second (0: as fast as possible)"
    )
    p.add_argument("--seed", type=int, default=7, help="dataset seed (default 7)")
    p.add_argument(
        "--n-features",
        type=int,
        default=10,
        metavar="N",
        help="features of the hyperplane dataset (default 10)",
    )
    p.add_argument(
        "--entities",
        type=int,
        default=1000,
        help="distinct entities for sticky routing (default 1000; 0: none)",
    )
    p.add_argument(
        "--labels",
        action="store_true",
        help=f"also send ground truth to the labels topic ({env_name('topic_labels')})",
    )
    p.add_argument(
        "--label-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="send each label this long after its event",
    )
    p.add_argument("--label-column", default=None, help="label column/field in --file")
    p.add_argument("--prefix", default="ev", help="event_id prefix (default ev)")
    p.set_defaults(func=_produce)

    t = sub.add_parser("tail", help="print the messages of a topic as they arrive")
    t.add_argument("topic", help="topic name, e.g. predictions, events-dlq, drift-alerts")
    t.add_argument("--count", type=int, default=None, help="stop after N messages")
    t.add_argument("--json", action="store_true", help="print only the JSON values, one a line")
    t.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    t.set_defaults(func=_tail_cmd)

    s = sub.add_parser("schema", help="print the JSON Schema of every message contract")
    s.add_argument("name", nargs="?", default=None, help="one contract, e.g. event")
    s.set_defaults(func=_schema)


__all__ = ["all_topics", "ensure_topics", "register"]
