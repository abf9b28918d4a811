"""``driftline report NAME``: a model's training evaluation and live history in one HTML file.

The cards come from the registry; the live history from Redis: the monitoring points of
``driftline:{<name>}:history`` (written by :class:`~streams.monitors.runtime.MonitorRuntime`),
the model's alerts in ``driftline:alerts``, and its lifecycle events in
``driftline:{<name>}:events`` (written by the retrainer), merged with the registry's own
alias history (promotions and rollbacks made by hand); and, when the monitors slice by a
context attribute, the per-slice metrics of their health (``driftline:{<name>}:health``).
Rendering is :func:`models.report.render_report`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import redis

from models.card import ModelCard
from models.errors import ModelError
from models.registry import Registry
from models.report import LiveHistory, merge_changes, render_report
from monitoring.findings import FINDING_KINDS
from streams.adapters.redis_client import SyncClient, sync_redis
from streams.adapters.redis_history import (
    lifecycle_change,
    read_history,
    read_slices,
    registry_changes,
)
from streams.cli.options import (
    POSITIVE_INT,
    Args,
    argument,
    command,
    option,
    redis_url_option,
    registry_option,
)
from streams.config.settings import Settings, env_name, load_settings
from streams.errors import StreamsError
from streams.local.services import LocalServices

EXIT_USAGE = 2


def _client(settings: Settings) -> SyncClient:
    return sync_redis(
        LocalServices(settings).redis_url(),
        settings,
        socket_timeout=5.0,
        socket_connect_timeout=5.0,
    )


def _cards(registry: Registry, name: str, wanted: str | None) -> tuple[list[ModelCard], str | None]:
    """The cards to show (champion, else latest, first) and the champion's version."""
    _, main = registry.resolve(name)
    champion = registry.aliases(name).get("champion")
    versions = [main]
    if wanted == "all":
        versions += registry.versions(name)
    elif wanted:
        versions += [v.strip().removeprefix("v") for v in wanted.split(",") if v.strip()]
    unique = list(dict.fromkeys(versions))
    return [registry.card(f"{name}@{v}") for v in unique], champion.version if champion else None


def report_command(args: Args) -> int:
    """Write the HTML report of one model and say where."""
    settings = load_settings(registry=args.registry, redis_url=args.redis_url)
    registry = Registry(settings.registry)
    out = Path(args.out) if args.out else Path(f"{args.name}-report.html")
    if not out.parent.is_dir():
        print(f"driftline: cannot write {out}: no directory {out.parent}", file=sys.stderr)
        return EXIT_USAGE
    try:
        cards, champion = _cards(registry, args.name, args.versions)
        changes = registry_changes(registry, args.name)
    except ModelError as exc:
        print(f"driftline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    notes: list[str] = []
    history: LiveHistory | None = None
    slices: dict[str, Any] = {}
    if not args.no_live:
        try:
            client = _client(settings)
            try:
                points, alerts, recorded = read_history(client, args.name, args.points)
                slices = read_slices(client, args.name)
            finally:
                client.close()
            history = LiveHistory(
                points=points,
                alerts=alerts,
                changes=merge_changes([*changes, *recorded], points),
                max_points=settings.history_max_points,
                alert_kinds=FINDING_KINDS,
            )
        except (StreamsError, redis.RedisError, OSError) as exc:
            notes.append(f"Live history not read from Redis: {exc}")
            print(f"driftline: warning: live history not read from Redis: {exc}", file=sys.stderr)
    page = render_report(cards, history, champion=champion, notes=notes, slices=slices)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        print(f"driftline: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    live = "" if history is None else f", {len(history.points)} history points"
    if history is not None:
        live += f", {len(history.alerts)} alerts, {len(history.changes)} version changes"
    shown = ", ".join(f"v{c.version}" for c in cards)
    print(f"wrote {out.resolve()} ({len(page) // 1024} KiB; {shown}{live})")
    return 0


def register(root: click.Group) -> None:
    """Add ``report``."""
    root.add_command(
        command(
            "report",
            report_command,
            help="an HTML report of a model: training plots and its live history",
            description="Write one self-contained HTML page about model NAME of the registry "
            "(no external URL, plots inline): confusion matrix, ROC and calibration curves and "
            "per-group metrics of the champion (and other versions), then metrics, drift, "
            "alerts and version changes over time.",
            params=[
                argument("name", metavar="NAME"),
                option(
                    "--out",
                    metavar="FILE.html",
                    help="where to write the page",
                    default_text="NAME-report.html in the current directory",
                ),
                option(
                    "--versions",
                    metavar="V,V|all",
                    help="versions to evaluate besides the champion: comma-separated, or all",
                    default_text="the champion only; the latest version when there is no champion",
                ),
                registry_option(),
                redis_url_option("Redis holding the live history"),
                option(
                    "--points",
                    type=POSITIVE_INT,
                    metavar="N",
                    help="plot only the N most recent history points",
                    default_text=f"every point kept, at most {env_name('history_max_points')}",
                ),
                option("--no-live", flag=True, help="training evaluation only: do not read Redis"),
            ],
        )
    )


__all__ = [
    "lifecycle_change",
    "read_history",
    "read_slices",
    "register",
    "registry_changes",
    "report_command",
]
