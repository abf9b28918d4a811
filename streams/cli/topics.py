"""``driftline topics check`` and the topic check every long-running command makes at start."""

from __future__ import annotations

import asyncio
import sys

import click

from streams.adapters.kafka_topics import ensure_topics as ensure_on_cluster
from streams.adapters.kafka_topics import plan_rows, refuse_weaker
from streams.cli.options import Args, command, group, option
from streams.cli.output import print_json
from streams.config.settings import Settings, load_settings
from streams.local.services import LocalServices


def ensure_topics(settings: Settings, bootstrap: str) -> Settings:
    """Create the missing topics as planned; refuse to go on with one weaker than planned.

    Differences that are not weaker (more partitions, a longer retention) are said on stderr.
    Returns ``settings`` with the plan's replication factor and ``min.insync.replicas``
    resolved for this cluster, for what the process creates itself (Faust's own topics).
    """
    report = asyncio.run(ensure_on_cluster(bootstrap, settings))
    refuse_weaker(report)
    for difference in report.differences:
        print(f"driftline: topic {difference.describe()}", file=sys.stderr)
    first = report.plan[0]
    resolved = {
        "topic_replication_factor": first.replication_factor,
        "topic_min_insync_replicas": int(first.configs["min.insync.replicas"]),
    }
    return settings.model_copy(update=resolved)


def _check(args: Args) -> int:
    settings = load_settings(model=args.model)
    bootstrap = LocalServices(settings).kafka_bootstrap()
    report = asyncio.run(ensure_on_cluster(bootstrap, settings, create=args.create))
    rows = plan_rows(report)
    if args.json:
        print_json({"brokers": report.brokers, "topics": rows})
    else:
        print(f"{report.brokers} broker(s) at {bootstrap}; the plan:")
        for row in rows:
            configs = ", ".join(f"{k}={v}" for k, v in row["configs"].items())
            state = "created" if row["created"] else "missing" if row["missing"] else "ok"
            state = "differs" if row["differences"] else state
            print(
                f"  {row['topic']:<24} {row['partitions']} partitions, "
                f"{row['replication_factor']} replicas, {configs}: {state}"
            )
            for line in row["differences"]:
                print(f"    {line}")
    return 1 if report.weaker else 0


def register(root: click.Group) -> None:
    """Add ``topics`` (check)."""
    topics = group(
        "topics",
        help="the topics' plan: partitions, replicas, retention, and what differs",
        description="Every topic Driftline uses, as it is to be created (from the "
        "DRIFTLINE_TOPIC_* settings and the cluster's size), compared with what exists.",
    )
    topics.add_command(
        command(
            "check",
            _check,
            help="print the plan and every difference (exit 1 if a topic is weaker)",
            params=[
                option("--create", flag=True, help="also create the missing topics"),
                option(
                    "--model",
                    metavar="NAME",
                    help="the model whose topics to plan, where topic names contain {model}",
                ),
                option("--json", flag=True, help="print the plan as JSON"),
            ],
        )
    )
    root.add_command(topics)


__all__ = ["ensure_topics", "register"]
