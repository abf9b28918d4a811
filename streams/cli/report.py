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
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson
import redis

from models.card import ModelCard
from models.errors import ModelError
from models.registry import Registry
from models.report import LiveHistory, VersionChange, merge_changes, render_report
from monitoring.findings import FINDING_KINDS
from streams.adapters.redis_client import SyncClient, sync_redis
from streams.cli.options import POSITIVE_INT, Args, argument, command, option
from streams.config.settings import Settings, env_name, load_settings
from streams.contracts.names import ALERTS_KEY, HEALTH_FIELD, events_key, health_key, history_key
from streams.errors import StreamsError
from streams.local.services import LocalServices

EXIT_USAGE = 2
LIFECYCLE = ("promote", "rollback", "reject", "register")


def _client(settings: Settings) -> SyncClient:
    return sync_redis(
        LocalServices(settings).redis_url(),
        settings,
        socket_timeout=5.0,
        socket_connect_timeout=5.0,
    )


def _epoch(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return None


def lifecycle_change(record: Mapping[str, Any]) -> VersionChange | None:
    """A version change from a lifecycle record (registry history), or None for other kinds."""
    kind, at = record.get("kind"), _epoch(record.get("at"))
    if kind not in LIFECYCLE or at is None or record.get("version") is None:
        return None
    version, reason = str(record["version"]), str(record.get("reason") or "")
    if kind == "rollback":  # the record names the version rolled back, and the one restored
        return VersionChange(at, "rollback", str(record.get("restored", "?")), version, reason)
    previous = record.get("previous")
    return VersionChange(
        at, str(kind), version, None if previous is None else str(previous), reason
    )


def registry_changes(registry: Registry, name: str) -> list[VersionChange]:
    """Champion promotions and rollbacks recorded by the registry itself."""
    state = registry.aliases(name).get("champion")
    out = []
    for event in state.history if state else []:
        at = _epoch(event.at)
        if at is not None:
            out.append(VersionChange(at, event.action, event.version, event.previous))
    return out


def read_history(
    client: SyncClient, name: str, points: int | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[VersionChange]]:
    """History points, alerts (from the oldest point on, if any) and lifecycle changes."""
    key = history_key(name)
    if points:
        newest: Any = client.xrevrange(key, count=points)
        raw: Any = newest[::-1]
    else:
        raw = client.xrange(key)
    found = [orjson.loads(fields[b"point"]) for _, fields in raw if b"point" in fields]
    # stream ids are millisecond timestamps: read alerts from an hour before the oldest point
    start = f"{max(int(found[0]['at'] * 1000) - 3_600_000, 0)}" if found else "-"
    entries: Any = client.xrange(ALERTS_KEY, min=start)
    alerts = [orjson.loads(f[b"alert"]) for _, f in entries if b"alert" in f]
    records: Any = client.xrange(events_key(name))
    changes = [lifecycle_change(orjson.loads(f[b"event"])) for _, f in records if b"event" in f]
    return (
        found,
        [a for a in alerts if a.get("model") == name],
        [c for c in changes if c is not None],
    )


def read_slices(client: SyncClient, name: str) -> dict[str, Any]:
    """Per ``"<version>/<variant>"``, the slices in the monitors' health now (empty when
    they do not slice or have written no health yet)."""
    raw: Any = client.hget(health_key(name), HEALTH_FIELD)
    metrics = (orjson.loads(raw) if raw else {}).get("metrics") or {}
    return {scope: m["slices"] for scope, m in metrics.items() if m.get("slices")}


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
                option(
                    "--registry", setting="registry", metavar="DIR", help="model registry directory"
                ),
                option(
                    "--redis-url",
                    setting="redis_url",
                    metavar="URL",
                    help="Redis holding the live history",
                    default_text="the one `driftline services up` started",
                ),
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
