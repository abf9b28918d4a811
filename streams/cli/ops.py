"""Operator commands that read Redis: ``driftline alerts`` and ``driftline status``."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from models.registry import Registry
from models.report import slice_cells
from monitoring.findings import FINDING_KINDS
from streams.adapters.redis_client import SyncClient, sync_redis
from streams.cli.options import POSITIVE_INT, Args, argument, command, option
from streams.config.settings import Settings, env_name, load_settings
from streams.contracts.names import ALERTS_KEY, HEALTH_FIELD, health_key, stage_key
from streams.local.services import LocalServices
from streams.scoring.routing import load_routing
from streams.sinks.routing import explanation


def _client(settings: Settings) -> SyncClient:
    return sync_redis(LocalServices(settings).redis_url(), settings)


def _matches(alert: dict[str, Any], args: Args) -> bool:
    return (args.model is None or alert.get("model") == args.model) and (
        args.kind is None or alert.get("kind") == args.kind
    )


def _print_alert(alert: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(alert).decode() + "\n")
    else:
        feature = f" {alert['feature']}" if alert.get("feature") else ""
        why = explanation(alert)
        print(
            f"{alert['at']:.0f} {alert['model']}@{alert['version']} {alert['kind']}{feature} "
            f"{alert['detector']}={alert['statistic']:.4g} (threshold {alert['threshold']:.4g})"
            + ("" if why is None else f"; explained by {why}")
        )
    sys.stdout.flush()


def alerts_command(args: Args) -> int:
    """Print recent alerts (oldest first), then, with --follow, new ones as they fire."""
    client = _client(load_settings())
    last = "$"
    try:
        recent: Any = client.xrevrange(ALERTS_KEY, count=max(args.count * 10, 100))
        shown = [orjson.loads(f[b"alert"]) for _, f in recent]
        shown = [a for a in shown if _matches(a, args)][: args.count]
        for alert in reversed(shown):
            _print_alert(alert, args.json)
        if recent:
            last = recent[0][0].decode()
        while args.follow:
            found: Any = client.xread({ALERTS_KEY: last}, block=1000, count=100) or []
            for _, entries in found:
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    alert = orjson.loads(fields[b"alert"])
                    if _matches(alert, args):
                        _print_alert(alert, args.json)
    except KeyboardInterrupt:
        return 0
    finally:
        client.close()
    return 0


def model_status(settings: Settings, client: SyncClient, model: str) -> dict[str, Any]:
    """Versions, routing, stage, health (metrics, detectors) and last alerts of one model."""
    registry = Registry(settings.registry)
    aliases = {k: v.version for k, v in registry.aliases(model).items()}
    raw_health = client.hget(health_key(model), HEALTH_FIELD)
    raw_stage = client.get(stage_key(model))
    entries: Any = client.xrevrange(ALERTS_KEY, count=500)
    alerts = [orjson.loads(f[b"alert"]) for _, f in entries]
    return {
        "model": model,
        "versions": registry.versions(model),
        "aliases": aliases,
        "routing": load_routing(registry, model).model_dump(),
        "stage": orjson.loads(raw_stage) if raw_stage else None,
        "health": orjson.loads(raw_health) if raw_health else None,
        "last_alerts": [a for a in alerts if a.get("model") == model][:5],
    }


def status_command(args: Args) -> int:
    """Show the state of one model, or of every model in the registry."""
    settings = load_settings()
    names = [args.model] if args.model else Registry(settings.registry).names()
    client = _client(settings)
    try:
        report = [model_status(settings, client, name) for name in names]
    finally:
        client.close()
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    console = Console()
    for entry in report:
        _show(console, entry)
    return 0


def _show(console: Console, entry: dict[str, Any]) -> None:
    health = entry["health"] or {}
    stage = entry["stage"] or {}
    console.print(
        f"[bold]{entry['model']}[/bold] champion {entry['aliases'].get('champion', '-')}, "
        f"challenger {entry['aliases'].get('challenger', '-')}, "
        f"routing {entry['routing']['mode']}, "
        f"stage {stage.get('phase', '-')}; status {health.get('status', 'no data')}, "
        f"{health.get('events', 0)} events, {health.get('labels', 0)} labels"
    )
    head = ("scope", "labels", "accuracy", "F1", "ROC AUC", "rolling acc.", "rolling F1")
    metrics = Table(*head, "est. acc.", "est. F1")
    for scope, m in (health.get("metrics") or {}).items():
        cum, roll = m.get("cumulative", {}), m.get("rolling", {})
        est = m.get("estimated") or {}
        metrics.add_row(
            scope,
            str(m.get("labels", 0)),
            _f(cum.get("accuracy")),
            _f(cum.get("f1")),
            _f(cum.get("roc_auc")),
            _f(roll.get("accuracy")),
            _f(roll.get("f1")),
            _band(est.get("accuracy")),
            _band(est.get("f1")),
        )
    console.print(metrics)
    _show_slices(console, health)
    if health.get("sensitive"):
        none = health.get("ungrouped") or {}
        console.print(
            f"  fairness by {health['sensitive']}: {none.get('events', 0)} events and "
            f"{none.get('labels', 0)} labels had no group",
            markup=False,
        )
    for finding in health.get("active") or []:
        console.print(
            f"  active: {finding['kind']} {finding.get('feature') or ''} "
            f"{finding['detector']}={finding['statistic']:.4g}"
        )
    for alert in entry["last_alerts"]:
        console.print(f"  alert: {alert['kind']} {alert.get('feature') or ''} {alert['detector']}")


def _show_slices(console: Console, health: dict[str, Any]) -> None:
    """Labels, accuracy and F1 per slice and scope, when the monitors slice."""
    info = health.get("slices")
    if not info:
        return
    head = ("scope", "slice", "labels", "accuracy", "F1", "rolling labels", "rolling acc.")
    table = Table(
        *head,
        "rolling F1",
        title=f"slices by {escape(str(info.get('by')))} (top {info.get('top')}; "
        f"{info.get('candidates', 0)} values tracked)",
    )
    for scope, m in (health.get("metrics") or {}).items():
        for name, windows in ((m.get("slices") or {}).get("values") or {}).items():
            table.add_row(scope, escape(str(name)), *slice_cells(windows, _f))
    console.print(table)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _band(band: dict[str, float] | None) -> str:
    """A label-free estimate as ``value [low–high]``."""
    if not band:
        return "-"
    return f"{band['value']:.3f} [{band['low']:.3f}–{band['high']:.3f}]"


def register(root: click.Group) -> None:
    """Add ``alerts`` and ``status``."""
    root.add_command(
        command(
            "alerts",
            alerts_command,
            help="recent drift, performance and fairness alerts (Redis)",
            description="Print recent alerts from the Redis stream, oldest first; with "
            "--follow, keep printing new ones until stopped.",
            params=[
                option("--follow", flag=True, help="keep printing alerts as they fire"),
                option("--model", metavar="NAME", help="only this model's alerts"),
                option(
                    "--kind",
                    choices=FINDING_KINDS,
                    metavar="KIND",
                    help=f"only this kind: {', '.join(FINDING_KINDS)}",
                ),
                option(
                    "--count",
                    type=POSITIVE_INT,
                    default=20,
                    metavar="N",
                    help="how many recent alerts",
                ),
                option("--json", flag=True, help="one JSON alert a line"),
            ],
        )
    )
    root.add_command(
        command(
            "status",
            status_command,
            help="health, versions, metrics, detectors and last alerts",
            description="Show the live state of MODEL, or of every model in the registry "
            f"({env_name('registry')}).",
            params=[
                argument("model", metavar="[MODEL]", optional=True),
                option("--json", flag=True, help="print as JSON"),
            ],
        )
    )


__all__ = ["alerts_command", "model_status", "register", "status_command"]
