"""The processes that run until stopped: ``worker``, ``monitor``, ``retrainer``, ``sinks``;
and ``demo``."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import click

from streams.cli.options import Args, command, option
from streams.cli.topics import ensure_topics
from streams.config.settings import Settings, env_name, load_settings
from streams.errors import ConfigError, ServiceError
from streams.local.services import LocalServices

if TYPE_CHECKING:
    from models.registry import Registry


def _worker(args: Args) -> int:
    from models.registry import Registry  # Faust is heavy to import: only workers need it
    from streams.monitors.agents import faust_worker
    from streams.worker.app import WorkerRuntime, create_app, freeze_heap
    from streams.worker.endpoints import WorkerEndpoints
    from streams.worker.health import WorkerObservability

    base = load_settings()
    registry = Registry(base.registry)
    models = _served_models(args, registry)
    bootstrap = LocalServices(base).kafka_bootstrap()
    apps, parts = [], []
    for model in models:
        settings = ensure_topics(base.for_model(model), bootstrap)
        runtime = WorkerRuntime(settings, model, registry)
        observability = WorkerObservability(settings, runtime)
        app = create_app(
            settings,
            bootstrap,
            runtime,
            redis_url=_monitor_redis(settings),
            on_batch=observability.on_batch,
        )
        observability.attach(app)
        apps.append(app)
        parts.append(observability)
        print(f"worker for {model}: {runtime.current.describe()} on {bootstrap}", file=sys.stderr)
    if base.retrainer_in_worker:
        from streams.control.retrainer import Retrainer

        retrainer = Retrainer(parts[0].settings, bootstrap, LocalServices(base).redis_url())

        async def run_retrainer() -> None:
            await retrainer.run(asyncio.Event())  # runs until the worker stops

        apps[0].task(run_retrainer)
    endpoints = WorkerEndpoints(base, parts)
    endpoints.attach(apps[0])
    for part in parts:
        part.start()
    endpoints.start()
    freeze_heap()
    faust_worker(apps[0], base.log_level, *apps[1:]).execute_from_commandline()
    return 0


def _served_models(args: Args, registry: Registry) -> list[str]:
    """The models a worker is to serve: ``--model`` (repeated), or ``--all-models``."""
    named = list(dict.fromkeys(args.model or ()))
    if args.all_models:
        if named:
            raise ConfigError("give --model NAME (repeated) or --all-models, not both")
        named = [m for m in registry.names() if "champion" in registry.aliases(m)]
        if not named:
            raise ConfigError(f"--all-models: no model in {registry.root} has a champion")
    if not named:
        raise ConfigError(
            f"which model? pass --model NAME (repeated for several), --all-models, or set "
            f"{env_name('model')}"
        )
    return named


def _monitor(args: Args) -> int:
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
    settings = ensure_topics(settings, bootstrap)

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


def _retrainer(args: Args) -> int:
    import signal

    from streams.control.retrainer import Retrainer

    settings = load_settings()
    services = LocalServices(settings)
    bootstrap = services.kafka_bootstrap()
    settings = ensure_topics(settings, bootstrap)
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


def _sinks(args: Args) -> int:
    import logging
    import signal

    from streams.adapters.redis_client import async_redis
    from streams.sinks.service import SinkService

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    if not settings.sinks:
        raise ConfigError(
            f"no sink to deliver to: set {env_name('sinks')}, e.g. "
            '{"ops": {"type": "webhook", "url": "https://example.com/hook"}}'
        )
    url = LocalServices(settings).redis_url()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        redis = async_redis(url, settings)
        try:
            await SinkService(settings, redis).run(stop)
        finally:
            await redis.aclose()

    names = ", ".join(f"{n} ({s.type})" for n, s in settings.sinks.items())
    print(f"sinks: delivering alerts to {names}", file=sys.stderr)
    asyncio.run(run())
    return 0


def _demo(args: Args) -> int:
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


def register(root: click.Group) -> None:
    """Add ``worker``, ``monitor``, ``retrainer``, ``sinks`` and ``demo``."""
    root.add_command(
        command(
            "worker",
            _worker,
            help="score events from Kafka with a model's champion",
            description="Score the events topic with a model's champion (and challenger), "
            "hot-swap versions without a restart; runs until stopped. Tuned by the DRIFTLINE_* "
            "settings (`driftline config`).",
            params=[
                option(
                    "--model",
                    setting="model",
                    metavar="NAME",
                    multiple=True,
                    help="model to serve; repeat it to serve several in one process",
                ),
                option(
                    "--all-models",
                    flag=True,
                    help="serve every model that has a champion in the registry",
                ),
            ],
        )
    )
    root.add_command(
        command(
            "monitor",
            _monitor,
            help="join labels and watch a model in a process of its own (optional)",
            description="Join labels with predictions and run the drift, performance and "
            "fairness monitors apart from the workers; runs until stopped.",
            params=[option("--model", setting="model", metavar="NAME", help="model to watch")],
        )
    )
    root.add_command(
        command(
            "retrainer",
            _retrainer,
            help="train, gate, shadow-test, promote and roll back on retrain requests",
            description="Serve retrain requests until stopped; tuned by the DRIFTLINE_* settings.",
        )
    )
    root.add_command(
        command(
            "sinks",
            _sinks,
            help="deliver alerts to webhooks, Slack, PagerDuty and email until stopped",
            description="Deliver every alert of the Redis alerts stream to the sinks of "
            "DRIFTLINE_SINKS, each once, retried with backoff; serves /health and /metrics on "
            "DRIFTLINE_SINKS_METRICS_PORT. Runs until stopped.",
        )
    )
    root.add_command(
        command(
            "demo",
            _demo,
            help="the whole loop live: drift, alerts, retraining, promotion",
            description="Start services, train, serve, drift, alert, retrain and promote, then "
            "stop.",
            params=[
                option("--quick", flag=True, help="shorter phases (about a minute)"),
                option(
                    "--broker",
                    setting="broker",
                    choices=["kafka", "tansu"],
                    default_text="kafka when Java is installed, else tansu",
                    help="broker to start",
                ),
            ],
        )
    )


__all__ = ["register"]
