"""``driftline models …``: the registry's versions, aliases, gates, routing and history.

Thin commands over :mod:`models`. Handlers return an exit code: 0 on success, 2 on a user
mistake (a :class:`~models.errors.ModelError`: bad data, unknown option value, missing model,
tampered file), which :func:`streams.cli.main.main` reports as one line on stderr. ``--json``
output is the only thing written to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from models.csvio import load_csv
from models.data import DATASETS, synthetic
from models.errors import ConfigError
from models.gates import run_gates
from models.history import History
from models.registry import ALIASES, Registry
from streams.cli.options import (
    PERCENT,
    POSITIVE_INT,
    Args,
    argument,
    command,
    group,
    option,
    registry_option,
)
from streams.cli.output import print_card, print_json, stdout_console
from streams.config.settings import load_settings
from streams.contracts.messages import ModelUpdate
from streams.control.updates import announce
from streams.local.services import LocalServices
from streams.scoring.routing import Routing, save_routing


def registry_of(args: Args) -> Registry:
    """The registry that ``--registry`` (or its setting) names."""
    return Registry(Path(args.registry) if args.registry else load_settings().registry)


def _json(what: str = "as JSON") -> click.Option:
    return option("--json", flag=True, help=f"print {what}")


def _announce(update: ModelUpdate) -> None:
    """Tell running workers now (they would also notice by themselves within seconds)."""
    settings = load_settings()

    def broker() -> str:  # the configured broker, else the one `services up` started
        return LocalServices(settings).kafka_bootstrap()

    print(announce(settings, update, broker), file=sys.stderr)


def list_command(args: Args) -> int:
    """List models, versions and aliases."""
    registry = registry_of(args)
    rows: list[dict[str, object]] = []
    table = Table("name", "versions", "latest", *ALIASES)
    for name in registry.names():
        versions = registry.versions(name)
        aliases = registry.aliases(name)
        held = [aliases[a].version if a in aliases else None for a in ALIASES]
        rows.append(
            {"name": name, "versions": versions, "latest": versions[-1]}
            | dict(zip(ALIASES, held, strict=True))
        )
        table.add_row(name, str(len(versions)), versions[-1], *[v or "-" for v in held])
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no models in {registry.root}")
        return 0
    stdout_console().print(table)
    return 0


def show_command(args: Args) -> int:
    """Show one version's card, after verifying its model file's sha256."""
    registry = registry_of(args)
    card = registry.load(args.ref).card
    aliases = {k: v.model_dump() for k, v in registry.aliases(card.name).items()}
    if args.json:
        print_json({"card": card.model_dump(mode="json"), "aliases": aliases})
    else:
        console = stdout_console()
        print_card(card, console)
        held = [a for a, s in aliases.items() if s["version"] == card.version]
        console.print(
            "aliases: " + (", ".join(held) if held else "-") + "; integrity: sha256 verified"
        )
    return 0


def promote_command(args: Args) -> int:
    """Point an alias at a version."""
    registry = registry_of(args)
    registry.promote(args.name, args.version, args.alias)
    print(f"{args.name}@{args.alias} -> {args.version}")
    _announce(
        ModelUpdate(model=args.name, action="promote", version=args.version, alias=args.alias)
    )
    return 0


def rollback_command(args: Args) -> int:
    """Point an alias back to its previous version."""
    registry = registry_of(args)
    version = registry.rollback(args.name, args.alias)
    print(f"{args.name}@{args.alias} rolled back to {version}")
    _announce(ModelUpdate(model=args.name, action="rollback", version=version, alias=args.alias))
    return 0


def history_command(args: Args) -> int:
    """Every request, gate result, stage change, test, promotion, rejection and rollback."""
    registry = registry_of(args)
    registry.resolve(args.name)
    entries = History(registry.root).read(args.name, limit=args.limit)
    if args.json:
        print_json(entries)
        return 0
    table = Table(title=f"history of {args.name}")
    for column in ("at", "kind", "version", "what"):
        table.add_column(column)
    for e in entries:
        what = e.get("reason") or e.get("stage") or e.get("decision") or ""
        if e["kind"] == "gates":
            what = "passed" if e.get("passed") else "failed"
        table.add_row(str(e.get("at", "")), e["kind"], str(e.get("version") or ""), str(what))
    stdout_console().print(table)
    return 0


def validate_command(args: Args) -> int:
    """Run the promotion gates offline; exit 1 naming the failed gate."""
    registry = registry_of(args)
    candidate = registry.load(f"{args.name}@{args.version}")
    champion = None
    if args.against and args.against.lower() != "none":
        ref = registry.load(f"{args.name}@{args.against}")
        if ref.card.version != candidate.card.version:
            champion = (ref.card, ref.payload)
    card = candidate.card
    if args.data is not None:
        holdout = load_csv(
            args.data,
            target=card.target,
            sensitive=card.sensitive.column
            if card.sensitive and card.sensitive.kind == "column"
            else None,
            features=[f.name for f in card.features],
        )
    elif card.data.source in DATASETS:
        holdout = synthetic(
            card.data.source,
            rows=2000,
            seed=card.data.seed + 1,
            features=sum(f.kind == "numeric" for f in card.features),
        )
    else:
        raise ConfigError(
            f"{args.name}@{args.version} was trained on {card.data.source}: pass --data CSV",
            option="data",
            value=None,
        )
    config = load_settings().gates
    report = run_gates(card, candidate.payload, champion, holdout, config)
    if args.json:
        print_json(report.to_dict())
    else:
        for gate in report.results:
            mark = "pass" if gate.passed else "FAIL"
            print(f"{mark}  {gate.name:<18} {gate.detail}")
        print(report.summary())
    return 0 if report.passed else 1


def route_command(args: Args) -> int:
    """Set how traffic is split between the champion and the challenger."""
    registry = registry_of(args)
    if args.canary is not None:
        if not 0 < args.canary <= 100:
            raise ConfigError(
                f"--canary takes a percentage in (0, 100], got {args.canary:g}",
                option="canary",
                value=args.canary,
            )
        routing = Routing(mode="canary", percent=args.canary)
    else:
        routing = Routing(mode="shadow" if args.shadow else "off")
    if routing.mode != "off" and "challenger" not in registry.aliases(args.name):
        raise ConfigError(
            f"{routing.mode} routing needs a challenger: run `driftline models promote "
            f"{args.name} VERSION --alias challenger` first",
            option=routing.mode,
            value=args.name,
        )
    save_routing(registry, args.name, routing)
    detail = f" {routing.percent:g}%" if routing.mode == "canary" else ""
    print(f"{args.name}: routing {routing.mode}{detail}")
    _announce(ModelUpdate(model=args.name, action="route", routing=routing.model_dump()))
    return 0


def register(root: click.Group) -> None:
    """Add ``models`` (list, show, promote, rollback, history, validate, route)."""
    models = group(
        "models",
        help="list, inspect, promote and roll back model versions",
        description="The model registry: versions, aliases, gates, routing and history.",
    )
    name = argument("name", metavar="NAME")
    models.add_command(
        command(
            "list",
            list_command,
            help="models with their versions and aliases",
            params=[registry_option(), _json()],
        )
    )
    models.add_command(
        command(
            "show",
            show_command,
            help="a version's card (the sha256 of its model file is verified)",
            description="Show the card of NAME[@VERSION|@ALIAS] (a bare name is the champion, "
            "else the latest version), after verifying its model file's sha256.",
            params=[
                argument("ref", metavar="NAME[@VERSION|@ALIAS]"),
                registry_option(),
                _json("the full card as JSON"),
            ],
        )
    )
    for verb, summary, handler, params in (
        (
            "promote",
            "point an alias (default champion) at a version",
            promote_command,
            [name, argument("version", metavar="VERSION")],
        ),
        ("rollback", "point an alias back to its previous version", rollback_command, [name]),
    ):
        alias = option(
            "--alias",
            default="champion",
            choices=ALIASES,
            metavar="ALIAS",
            help=f"alias to move: {', '.join(ALIASES)}",
        )
        models.add_command(
            command(verb, handler, help=summary, params=[*params, alias, registry_option()])
        )
    models.add_command(
        command(
            "history",
            history_command,
            help="what happened to a model, and why",
            params=[
                name,
                option(
                    "--limit",
                    type=POSITIVE_INT,
                    metavar="N",
                    default_text="all",
                    help="only the last N entries",
                ),
                _json(),
                registry_option(),
            ],
        )
    )
    models.add_command(
        command(
            "validate",
            validate_command,
            help="run the promotion gates offline (exit 1 naming the failed gate)",
            description="Run the promotion gates on VERSION of NAME offline; exit 1 naming the "
            "failed gate.",
            params=[
                name,
                argument("version", metavar="VERSION"),
                option(
                    "--against",
                    default="champion",
                    metavar="ALIAS|VERSION",
                    help="compare with this version (none: with nothing)",
                ),
                option(
                    "--data",
                    type=Path,
                    metavar="CSV",
                    default_text="fresh rows of the synthetic dataset it was trained on",
                    help="labelled data to gate on",
                ),
                _json("the gate report as JSON"),
                registry_option(),
            ],
        )
    )
    models.add_command(
        command(
            "route",
            route_command,
            help="split traffic: shadow, canary P % (sticky per entity) or off",
            description="Set how traffic is split between champion and challenger: give one "
            "of --shadow, --canary P or --off (or set its variable). Running workers apply it "
            "at once.",
            exclusive=("shadow", "canary", "off"),
            require_one=True,
            params=[
                name,
                option("--shadow", flag=True, help="the challenger also scores every event"),
                option(
                    "--canary",
                    type=PERCENT,
                    metavar="P",
                    help="P % of entities get the challenger's answer",
                ),
                option("--off", flag=True, help="the champion answers everything"),
                registry_option(),
            ],
        )
    )
    root.add_command(models)


__all__ = [
    "history_command",
    "list_command",
    "promote_command",
    "register",
    "registry_of",
    "rollback_command",
    "route_command",
    "show_command",
    "validate_command",
]
