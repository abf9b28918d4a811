"""Commands on the topics: ``produce``, ``tail`` and ``schema``."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import click
import orjson
from aiokafka import AIOKafkaConsumer

from models.data import DATASETS
from streams.adapters.kafka_admin import consumer_options, producer_options
from streams.cli.options import (
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    Args,
    argument,
    command,
    option,
)
from streams.cli.topics import ensure_topics
from streams.cli.train import n_features_option
from streams.config.settings import Settings, env_name, load_settings
from streams.contracts.messages import CONTRACTS, json_schemas
from streams.errors import ConfigError
from streams.local.services import LocalServices


def _produce(args: Args) -> int:
    from models.data import synthetic
    from streams.local.producer import dataset_events, file_events, produce

    settings = load_settings(model=args.model)
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
    settings = ensure_topics(settings, bootstrap)
    started = time.monotonic()
    sent, labelled = asyncio.run(
        produce(
            bootstrap,
            pairs,
            topic=settings.topic_events,
            labels_topic=settings.topic_labels if args.labels else None,
            label_delay_s=args.label_delay,
            count=args.count,
            rate=args.rate,
            producer_options=producer_options(settings),
            model=settings.model,
        )
    )
    took = time.monotonic() - started
    print(
        f"sent {sent} events to {settings.topic_events}"
        + (f" and {labelled} labels to {settings.topic_labels}" if args.labels else "")
        + f", acknowledged, in {took:.1f}s ({sent / max(took, 1e-9):,.0f} events/s)"
    )
    return 0


async def _tail(settings: Settings, bootstrap: str, args: Args) -> int:
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        **consumer_options(settings),
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


def _tail_cmd(args: Args) -> int:
    settings = load_settings()
    bootstrap = LocalServices(settings).kafka_bootstrap()
    try:
        return asyncio.run(_tail(settings, bootstrap, args))
    except KeyboardInterrupt:
        return 0


def _schema(args: Args) -> int:
    schemas = json_schemas()
    if args.name:
        if args.name not in schemas:
            raise ConfigError(f"unknown message {args.name!r}; one of {', '.join(schemas)}")
        schemas = {args.name: schemas[args.name]}
    sys.stdout.write(orjson.dumps(schemas, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def register(root: click.Group) -> None:
    """Add ``produce``, ``tail`` and ``schema``."""
    root.add_command(_produce_command())
    root.add_command(
        command(
            "tail",
            _tail_cmd,
            help="print the messages of a topic as they arrive",
            description="Print the messages of TOPIC (e.g. predictions, events-dlq, "
            "drift-alerts) as [partition:offset] JSON; runs until stopped unless --count.",
            params=[
                argument("topic", metavar="TOPIC"),
                option(
                    "--count",
                    type=POSITIVE_INT,
                    metavar="N",
                    default_text="never",
                    help="stop after N",
                ),
                option("--json", flag=True, help="print only the JSON values, one a line"),
                option("--from-beginning", flag=True, help="start at the oldest message"),
            ],
        )
    )
    root.add_command(
        command(
            "schema",
            _schema,
            help="print the JSON Schema of every message contract",
            description="Print the JSON Schema of the message contracts, for producers and "
            f"consumers in any language; NAME picks one: {', '.join(CONTRACTS)} (default all).",
            params=[
                argument(
                    "name", metavar="[NAME]", optional=True, type=click.Choice(list(CONTRACTS))
                )
            ],
        )
    )


def _produce_command() -> click.Command:
    return command(
        "produce",
        _produce,
        help="send synthetic or replayed events (and labels) to Kafka",
        description="Send events from a synthetic dataset or a CSV/JSONL file to the events topic.",
        exclusive=("dataset", "file"),
        require_one=True,
        params=[
            option(
                "--dataset",
                choices=DATASETS,
                metavar="KIND",
                help=f"synthetic dataset to draw events from: {', '.join(DATASETS)}",
            ),
            option("--file", type=Path, metavar="PATH", help="replay a CSV or JSONL file"),
            option("--count", type=POSITIVE_INT, default=1000, metavar="N", help="events to send"),
            option(
                "--rate",
                type=NON_NEGATIVE_FLOAT,
                default=0.0,
                metavar="PER_S",
                help="events per second (0: as fast as possible)",
            ),
            option("--seed", type=NON_NEGATIVE_INT, default=7, metavar="N", help="dataset seed"),
            n_features_option(),
            option(
                "--entities",
                type=NON_NEGATIVE_INT,
                default=1000,
                metavar="N",
                help="distinct entities for sticky routing (0: none)",
            ),
            option(
                "--labels",
                flag=True,
                help="also send ground truth to the labels topic (named by "
                f"{env_name('topic_labels')})",
            ),
            option(
                "--label-delay",
                type=NON_NEGATIVE_FLOAT,
                default=0.0,
                metavar="SECONDS",
                help="send each label this long after its event",
            ),
            option("--label-column", metavar="COL", help="label column/field in --file"),
            option("--prefix", default="ev", metavar="TEXT", help="event_id prefix"),
            option(
                "--model",
                metavar="NAME",
                help="send to this model's topics (names with {model}); its labels name it",
            ),
        ],
    )


__all__ = ["register"]
