"""``driftline train`` and ``driftline models …``: thin commands over :mod:`models`.

Handlers return an exit code: 0 on success, 2 on a user mistake (bad data, unknown option
value, missing model, tampered file), reported as one line on stderr. Progress goes to stderr;
``--json`` output is the only thing written to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from models.card import FairnessSnapshot, ModelCard
from models.csvio import load_csv
from models.data import DATASETS, Dataset, synthetic
from models.errors import ConfigError, ModelError
from models.gates import GateConfig, run_gates
from models.history import History
from models.registry import ALIASES, Registry
from models.training import ESTIMATORS
from models.workflow import MITIGATIONS, TrainOptions, train
from streams.cli.options import (
    add_option,
    exclusive_group,
    non_negative_int,
    percent,
    positive_int,
)
from streams.config.settings import Settings, env_name, load_settings
from streams.contracts.messages import ModelUpdate
from streams.control.updates import announce
from streams.local.services import LocalServices
from streams.scoring.routing import Routing, save_routing

EXIT_USAGE = 2
REGISTRY_ENV = env_name("registry")
DEFAULT_REGISTRY = str(Settings.model_fields["registry"].default)
Handler = Callable[[argparse.Namespace], int]


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(Path(args.registry) if args.registry else load_settings().registry)


def _announce(update: ModelUpdate) -> None:
    """Tell running workers now (they would also notice by themselves within seconds)."""
    settings = load_settings()

    def broker() -> str:  # the configured broker, else the one `services up` started
        return LocalServices(settings).kafka_bootstrap()

    print(announce(settings, update, broker), file=sys.stderr)


def _print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _guard(handler: Handler) -> Handler:
    """Turn a :class:`ModelError` into one line on stderr and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ModelError as exc:
            print(f"driftline: {exc}", file=sys.stderr)
            return EXIT_USAGE

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


@contextmanager
def _progress(command: str, *, lines: bool) -> Iterator[Callable[[str], None]]:
    """Say what a long command is doing: a spinner on a terminal, else a line per step.

    Without a terminal (CI logs, pipes) steps are printed on stderr unless ``lines`` is false
    (``--json`` callers parse output and want quiet).
    """
    console = Console(stderr=True)
    if console.is_terminal:
        with console.status("starting") as status:
            yield lambda msg: status.update(msg)
        return
    if not lines:
        yield lambda _msg: None
        return
    started = time.perf_counter()

    def note(msg: str) -> None:
        elapsed = time.perf_counter() - started
        print(f"{command}: {msg} [{elapsed:.1f}s]", file=sys.stderr, flush=True)

    yield note


def _load_data(args: argparse.Namespace) -> Dataset:
    features = None if args.features is None else [f for f in args.features.split(",") if f.strip()]
    if args.csv is not None:
        if not args.target:
            raise ConfigError(
                "--csv needs --target COL (the binary label column)", option="target", value=None
            )
        return load_csv(args.csv, target=args.target, sensitive=args.sensitive, features=features)
    if args.target or args.sensitive or features:
        raise ConfigError(
            "--target, --sensitive and --features apply to --csv data only",
            option="csv",
            value=None,
        )
    return synthetic(args.dataset, rows=args.rows, seed=args.seed, features=args.n_features)


def _stdout() -> Console:
    # Card text holds brackets (confusion matrices, user-named columns): never parse markup.
    return Console(soft_wrap=True, markup=False, highlight=False)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fairness_line(label: str, snap: FairnessSnapshot) -> str:
    return (
        f"{label}: DP diff {snap.demographic_parity_difference:.3f}, "
        f"EO diff {snap.equalized_odds_difference:.3f}, "
        f"DI ratio {_fmt(snap.disparate_impact_ratio)}"
    )


def _print_card(card: ModelCard, console: Console) -> None:
    console.print(
        f"{card.name}@{card.version}  {card.training.estimator}  "
        f"created {card.created_at}  parent {card.parent_version or '-'}"
    )
    console.print(
        f"data: {card.data.source}, {card.data.rows} rows, classes {card.data.class_balance}"
    )
    table = Table("metric", f"CV mean ({card.metrics.folds} folds)", "CV std", "holdout")
    hold = card.metrics.holdout.model_dump()
    for key, summary in card.metrics.cv.items():
        table.add_row(key, f"{summary.mean:.4f}", f"{summary.std:.4f}", _fmt(hold.get(key)))
    console.print(table)
    console.print(
        f"confusion matrix [[tn, fp], [fn, tp]]: {card.metrics.holdout.confusion_matrix}, "
        f"calibration error {card.metrics.holdout.calibration_error:.4f}"
    )
    console.print(
        f"parity: max |p_onnx - p_sklearn| = {card.parity.max_abs_diff:.2e} on "
        f"{card.parity.rows} rows, labels identical; export {card.parity.export_seconds:.2f}s"
    )
    if card.fairness is not None:
        console.print(
            f"fairness by {card.fairness.sensitive} (mitigation {card.fairness.mitigation})"
        )
        console.print("  " + _fairness_line("before", card.fairness.before))
        if card.fairness.after is not None:
            console.print("  " + _fairness_line("after ", card.fairness.after))
    if card.thresholds.per_group:
        shown = {g: round(t, 4) for g, t in card.thresholds.per_group.items()}
        console.print(f"thresholds by {card.thresholds.group_by}: {shown}")
    served = card.metrics.holdout_served
    if served is not None:
        console.print(
            f"holdout with thresholds: F1 {served.f1:.4f}, accuracy {served.accuracy:.4f}, "
            f"confusion matrix {served.confusion_matrix}"
        )
    console.print(f"sha256 {card.onnx.sha256}")


@_guard
def train_command(args: argparse.Namespace) -> int:
    """Train, validate, export and register one model."""
    dataset = _load_data(args)
    name = args.name or (Path(args.csv).stem if args.csv else args.dataset)
    opts = TrainOptions(
        name=name,
        estimator=args.model,
        class_weight=args.class_weight,
        mitigate=args.mitigate,
        threshold_objective=args.threshold_objective,
        folds=args.folds,
        seed=args.seed,
    )
    registry = _registry(args)
    with _progress("train", lines=not args.json) as note:
        # No note before train(): it checks the options first, and a mistake stays one line.
        result = train(dataset, opts, progress=note)
        note("registering")
        card = registry.register(result.payload, result.card)
        if args.promote:
            registry.promote(card.name, card.version, "champion")
    if args.json:
        _print_json({**card.summary(), "promoted": bool(args.promote)})
    else:
        out = _stdout()
        _print_card(card, out)
        out.print(
            f"registered {card.name}@{card.version} in {registry.root}"
            + (" and promoted to champion" if args.promote else "")
        )
    return 0


@_guard
def list_command(args: argparse.Namespace) -> int:
    """List models, versions and aliases."""
    registry = _registry(args)
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
        _print_json(rows)
        return 0
    if not rows:
        print(f"no models in {registry.root}")
        return 0
    _stdout().print(table)
    return 0


@_guard
def show_command(args: argparse.Namespace) -> int:
    """Show one version's card, after verifying its model file's sha256."""
    registry = _registry(args)
    card = registry.load(args.ref).card
    aliases = {k: v.model_dump() for k, v in registry.aliases(card.name).items()}
    if args.json:
        _print_json({"card": card.model_dump(mode="json"), "aliases": aliases})
    else:
        console = _stdout()
        _print_card(card, console)
        held = [a for a, s in aliases.items() if s["version"] == card.version]
        console.print(
            "aliases: " + (", ".join(held) if held else "-") + "; integrity: sha256 verified"
        )
    return 0


@_guard
def promote_command(args: argparse.Namespace) -> int:
    """Point an alias at a version."""
    registry = _registry(args)
    registry.promote(args.name, args.version, args.alias)
    print(f"{args.name}@{args.alias} -> {args.version}")
    _announce(
        ModelUpdate(model=args.name, action="promote", version=args.version, alias=args.alias)
    )
    return 0


@_guard
def rollback_command(args: argparse.Namespace) -> int:
    """Point an alias back to its previous version."""
    registry = _registry(args)
    version = registry.rollback(args.name, args.alias)
    print(f"{args.name}@{args.alias} rolled back to {version}")
    _announce(ModelUpdate(model=args.name, action="rollback", version=version, alias=args.alias))
    return 0


@_guard
def history_command(args: argparse.Namespace) -> int:
    """Every request, gate result, stage change, test, promotion, rejection and rollback."""
    registry = _registry(args)
    registry.resolve(args.name)
    entries = History(registry.root).read(args.name, limit=args.limit)
    if args.json:
        _print_json(entries)
        return 0
    table = Table(title=f"history of {args.name}")
    for column in ("at", "kind", "version", "what"):
        table.add_column(column)
    for e in entries:
        what = e.get("reason") or e.get("stage") or e.get("decision") or ""
        if e["kind"] == "gates":
            what = "passed" if e.get("passed") else "failed"
        table.add_row(str(e.get("at", "")), e["kind"], str(e.get("version") or ""), str(what))
    _stdout().print(table)
    return 0


@_guard
def validate_command(args: argparse.Namespace) -> int:
    """Run the promotion gates offline; exit 1 naming the failed gate."""
    registry = _registry(args)
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
    config = GateConfig(**load_settings().gates)
    report = run_gates(card, candidate.payload, champion, holdout, config)
    if args.json:
        _print_json(report.to_dict())
    else:
        for gate in report.results:
            mark = "pass" if gate.passed else "FAIL"
            print(f"{mark}  {gate.name:<18} {gate.detail}")
        print(report.summary())
    return 0 if report.passed else 1


@_guard
def route_command(args: argparse.Namespace) -> int:
    """Set how traffic is split between the champion and the challenger."""
    registry = _registry(args)
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


def _registry_option(parser: argparse.ArgumentParser) -> None:
    add_option(
        parser, "--registry", setting="registry", metavar="DIR", help="model registry directory"
    )


def _json_option(parser: argparse.ArgumentParser, what: str = "") -> None:
    add_option(parser, "--json", action="store_true", help=f"print {what or 'as JSON'}")


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="train, cross-validate, check fairness, export to ONNX and register a model",
        description="Train one scikit-learn pipeline, prove ONNX parity and register a version. "
        "Progress goes to stderr, the result to stdout.",
    )
    src = exclusive_group(p)
    add_option(
        p,
        "--dataset",
        group=src,
        default="agrawal",
        choices=DATASETS,
        metavar="KIND",
        help=f"built-in synthetic data: {', '.join(DATASETS)} (agrawal carries the sensitive "
        "attribute age_band)",
    )
    add_option(p, "--csv", group=src, metavar="PATH", help="train on a CSV file with a header row")
    add_option(p, "--target", metavar="COL", help="binary label column (with --csv)")
    add_option(
        p, "--sensitive", metavar="COL", help="sensitive-group column for fairness (with --csv)"
    )
    add_option(
        p,
        "--features",
        metavar="A,B,C",
        default_text="all but target and sensitive",
        help="comma-separated feature columns (with --csv)",
    )
    add_option(p, "--rows", type=positive_int, default=5000, metavar="N", help="synthetic rows")
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
        "--seed",
        type=non_negative_int,
        default=42,
        metavar="N",
        help="seed of data, split, folds and model",
    )
    add_option(
        p,
        "--model",
        default="logreg",
        choices=ESTIMATORS,
        metavar="KIND",
        help=f"estimator: {', '.join(ESTIMATORS)}",
    )
    add_option(
        p, "--name", default_text="the dataset or CSV file name", metavar="NAME", help="model name"
    )
    add_option(
        p,
        "--class-weight",
        default="none",
        choices=("none", "balanced"),
        metavar="MODE",
        help="none or balanced (weight rows by inverse class frequency)",
    )
    add_option(
        p,
        "--mitigate",
        default="none",
        choices=MITIGATIONS,
        metavar="HOW",
        help=f"fairness mitigation: {', '.join(MITIGATIONS)}",
    )
    add_option(
        p,
        "--threshold-objective",
        default="tpr",
        choices=("tpr", "selection_rate"),
        metavar="RATE",
        help="what --mitigate threshold equalises across groups: tpr or selection_rate",
    )
    add_option(
        p,
        "--folds",
        type=positive_int,
        default=5,
        metavar="K",
        help="stratified cross-validation folds (2 to 20)",
    )
    _registry_option(p)
    add_option(p, "--promote", action="store_true", help="make the new version the champion")
    _json_option(p, "the card summary as JSON on stdout (and no progress lines)")
    p.set_defaults(func=train_command)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``train`` and ``models`` (list, show, promote, rollback, …) to a ``driftline`` parser."""
    _add_train(subparsers)
    models = subparsers.add_parser(
        "models",
        help="list, inspect, promote and roll back model versions",
        description="The model registry: versions, aliases, gates, routing and history.",
    )
    msub = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = msub.add_parser("list", help="models with their versions and aliases")
    _registry_option(ls)
    _json_option(ls)
    ls.set_defaults(func=list_command)
    show = msub.add_parser(
        "show", help="a version's card (the sha256 of its model file is verified)"
    )
    show.add_argument(
        "ref",
        metavar="NAME[@VERSION|@ALIAS]",
        help="model, version or alias (a bare name is the champion, else the latest)",
    )
    _registry_option(show)
    _json_option(show, "the full card as JSON")
    show.set_defaults(func=show_command)
    promote = msub.add_parser("promote", help="point an alias (default champion) at a version")
    promote.add_argument("name", metavar="NAME", help="model name")
    promote.add_argument("version", metavar="VERSION", help="version to point the alias at")
    add_option(
        promote,
        "--alias",
        default="champion",
        choices=ALIASES,
        metavar="ALIAS",
        help=f"alias to move: {', '.join(ALIASES)}",
    )
    _registry_option(promote)
    promote.set_defaults(func=promote_command)
    rollback = msub.add_parser("rollback", help="point an alias back to its previous version")
    rollback.add_argument("name", metavar="NAME", help="model name")
    add_option(
        rollback,
        "--alias",
        default="champion",
        choices=ALIASES,
        metavar="ALIAS",
        help=f"alias to roll back: {', '.join(ALIASES)}",
    )
    _registry_option(rollback)
    rollback.set_defaults(func=rollback_command)
    history = msub.add_parser("history", help="what happened to a model, and why")
    history.add_argument("name", metavar="NAME", help="model name")
    add_option(
        history,
        "--limit",
        type=positive_int,
        metavar="N",
        default_text="all",
        help="only the last N entries",
    )
    _json_option(history)
    _registry_option(history)
    history.set_defaults(func=history_command)
    validate = msub.add_parser(
        "validate", help="run the promotion gates offline (exit 1 naming the failed gate)"
    )
    validate.add_argument("name", metavar="NAME", help="model name")
    validate.add_argument("version", metavar="VERSION", help="candidate version")
    add_option(
        validate,
        "--against",
        default="champion",
        metavar="ALIAS|VERSION",
        help="compare with this version (none: with nothing)",
    )
    add_option(
        validate,
        "--data",
        type=Path,
        metavar="CSV",
        default_text="fresh rows of the synthetic dataset it was trained on",
        help="labelled data to gate on",
    )
    _json_option(validate, "the gate report as JSON")
    _registry_option(validate)
    validate.set_defaults(func=validate_command)
    route = msub.add_parser(
        "route",
        help="split traffic: shadow, canary P %% (sticky per entity) or off",
        description="Set how traffic is split between champion and challenger: give one of "
        "--shadow, --canary P or --off (or set its variable). Running workers apply it at once.",
    )
    route.add_argument("name", metavar="NAME", help="model name")
    how = exclusive_group(route, required=True)
    add_option(
        route,
        "--shadow",
        group=how,
        action="store_true",
        help="the challenger also scores every event",
    )
    add_option(
        route,
        "--canary",
        group=how,
        type=percent,
        metavar="P",
        help="P %% of entities get the challenger's answer",
    )
    add_option(
        route, "--off", group=how, action="store_true", help="the champion answers everything"
    )
    _registry_option(route)
    route.set_defaults(func=route_command)


__all__ = [
    "DEFAULT_REGISTRY",
    "REGISTRY_ENV",
    "history_command",
    "list_command",
    "promote_command",
    "register",
    "rollback_command",
    "route_command",
    "show_command",
    "train_command",
    "validate_command",
]
