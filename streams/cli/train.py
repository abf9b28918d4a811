"""``driftline train``: train, cross-validate, check fairness, export and register a model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from models.csvio import load_csv
from models.data import DATASETS, Dataset, synthetic
from models.errors import ConfigError
from models.table import dataset_from_table
from models.training import ESTIMATORS
from models.workflow import MITIGATIONS, TrainOptions, train
from streams.adapters.sql import read_query, sql_url
from streams.cli.models import registry_of
from streams.cli.options import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    Args,
    command,
    option,
    registry_option,
)
from streams.cli.output import print_card, print_json, progress, stdout_console


def _load_data(args: Args) -> Dataset:
    features = None if args.features is None else [f for f in args.features.split(",") if f.strip()]
    given = "--csv" if args.csv is not None else "--sql" if args.sql is not None else None
    if given and not args.target:
        raise ConfigError(
            f"{given} needs --target COL (the binary label column)", option="target", value=None
        )
    if args.db is not None and args.sql is None:
        raise ConfigError("--db applies to --sql only", option="db", value=args.db)
    if args.csv is not None:
        return load_csv(args.csv, target=args.target, sensitive=args.sensitive, features=features)
    if args.sql is not None:
        if not args.db:
            raise ConfigError(
                "--sql needs --db URL: a SQLAlchemy URL (postgresql://user@host/db) "
                "or a SQLite file path",
                option="db",
                value=None,
            )
        table, query = read_query(args.db, args.sql)
        ds = dataset_from_table(
            table,
            target=args.target,
            source=query.database,
            sensitive=args.sensitive,
            features=features,
        )
        return replace(ds, query=query)
    if args.target or args.sensitive or features:
        raise ConfigError(
            "--target, --sensitive and --features apply to --csv or --sql data only",
            option="csv",
            value=None,
        )
    return synthetic(args.dataset, rows=args.rows, seed=args.seed, features=args.n_features)


def _default_name(args: Args) -> str:
    if args.csv:
        return Path(args.csv).stem
    if args.sql:
        # the database's name: a SQLite file's stem, a server's database
        return Path(make_url(sql_url(args.db)).database or "sql").stem or "sql"
    return str(args.dataset)


def train_command(args: Args) -> int:
    """Train, validate, export and register one model."""
    dataset = _load_data(args)
    name = args.name or _default_name(args)
    opts = TrainOptions(
        name=name,
        estimator=args.model,
        class_weight=args.class_weight,
        mitigate=args.mitigate,
        threshold_objective=args.threshold_objective,
        folds=args.folds,
        seed=args.seed,
    )
    registry = registry_of(args)
    with progress("train", lines=not args.json) as note:
        # No note before train(): it checks the options first, and a mistake stays one line.
        result = train(dataset, opts, progress=note)
        note("registering")
        card = registry.register(result.payload, result.card)
        if args.promote:
            registry.promote(card.name, card.version, "champion")
    if args.json:
        print_json({**card.summary(), "promoted": bool(args.promote)})
    else:
        out = stdout_console()
        print_card(card, out)
        out.print(
            f"registered {card.name}@{card.version} in {registry.root}"
            + (" and promoted to champion" if args.promote else "")
        )
    return 0


def n_features_option() -> click.Option:
    """``--n-features N``: the width of the hyperplane dataset (``train`` and ``produce``)."""
    return option(
        "--n-features",
        type=POSITIVE_INT,
        default=10,
        metavar="N",
        help="features of the hyperplane dataset",
    )


def register(root: click.Group) -> None:
    """Add ``train``."""
    root.add_command(
        command(
            "train",
            train_command,
            help="train, cross-validate, check fairness, export to ONNX and register a model",
            description="Train one scikit-learn pipeline, prove ONNX parity and register a "
            "version. Progress goes to stderr, the result to stdout.",
            exclusive=("dataset", "csv", "sql"),
            params=[
                option(
                    "--dataset",
                    default="agrawal",
                    choices=DATASETS,
                    metavar="KIND",
                    help=f"built-in synthetic data: {', '.join(DATASETS)} (agrawal carries the "
                    "sensitive attribute age_band)",
                ),
                option("--csv", metavar="PATH", help="train on a CSV file with a header row"),
                option(
                    "--sql",
                    metavar="QUERY",
                    help="train on the rows of a SELECT query (its text and result "
                    "fingerprint go to the model card)",
                ),
                option(
                    "--db",
                    metavar="URL",
                    help="database of --sql: a SQLAlchemy URL (postgresql://user@host/db) or a "
                    "SQLite file path",
                ),
                option("--target", metavar="COL", help="binary label column (with --csv or --sql)"),
                option(
                    "--sensitive",
                    metavar="COL",
                    help="sensitive-group column for fairness (with --csv or --sql)",
                ),
                option(
                    "--features",
                    metavar="A,B,C",
                    default_text="all but target and sensitive",
                    help="comma-separated feature columns (with --csv or --sql)",
                ),
                option(
                    "--rows", type=POSITIVE_INT, default=5000, metavar="N", help="synthetic rows"
                ),
                n_features_option(),
                option(
                    "--seed",
                    type=NON_NEGATIVE_INT,
                    default=42,
                    metavar="N",
                    help="seed of data, split, folds and model",
                ),
                option(
                    "--model",
                    default="logreg",
                    choices=ESTIMATORS,
                    metavar="KIND",
                    help=f"estimator: {', '.join(ESTIMATORS)}",
                ),
                option(
                    "--name",
                    default_text="the dataset, CSV file or database name",
                    metavar="NAME",
                    help="model name",
                ),
                option(
                    "--class-weight",
                    default="none",
                    choices=("none", "balanced"),
                    metavar="MODE",
                    help="none or balanced (weight rows by inverse class frequency)",
                ),
                option(
                    "--mitigate",
                    default="none",
                    choices=MITIGATIONS,
                    metavar="HOW",
                    help=f"fairness mitigation: {', '.join(MITIGATIONS)}",
                ),
                option(
                    "--threshold-objective",
                    default="tpr",
                    choices=("tpr", "selection_rate"),
                    metavar="RATE",
                    help="what --mitigate threshold equalises across groups: tpr or selection_rate",
                ),
                option(
                    "--folds",
                    type=POSITIVE_INT,
                    default=5,
                    metavar="K",
                    help="stratified cross-validation folds (2 to 20)",
                ),
                registry_option(),
                option("--promote", flag=True, help="make the new version the champion"),
                option(
                    "--json", flag=True, help="print the card summary as JSON (no progress lines)"
                ),
            ],
        )
    )


__all__ = ["n_features_option", "register", "train_command"]
