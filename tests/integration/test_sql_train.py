"""``driftline train --sql`` on a real SQLite file and a real PostgreSQL server.

Each test loads its own table into its own database (a SQLite file in its temporary folder, a
database of its own on the session's PostgreSQL) and runs the command line as a user would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from models.card import ModelCard
from models.registry import Registry
from streams.adapters.sql import read_query, sql_url
from streams.cli.main import main

QUERY = "SELECT income, region, sex, approved FROM loans ORDER BY id"


def load_loans(url: str, rows: int = 400, seed: int = 3) -> None:
    """A table ``loans`` whose ``approved`` follows ``income``, ``region`` a categorical."""
    rng = np.random.default_rng(seed)
    engine = sa.create_engine(sql_url(url))
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE loans (id INTEGER PRIMARY KEY, income DOUBLE PRECISION, "
            "region VARCHAR(8), sex VARCHAR(8), approved INTEGER)"
        )
        values = []
        for i in range(rows):
            income = round(float(rng.normal(50, 10)), 3)
            values.append(
                {
                    "id": i,
                    "income": income,
                    "region": str(rng.choice(["north", "south", "east"])),
                    "sex": str(rng.choice(["f", "m"])),
                    "approved": int(income + rng.normal(0, 5) > 50),
                }
            )
        conn.execute(
            sa.text("INSERT INTO loans VALUES (:id, :income, :region, :sex, :approved)"), values
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database holding ``loans``: a SQLite file (a bare path), then a PostgreSQL database."""
    if request.param == "sqlite":
        url = str(tmp_path / "loans.sqlite")
    else:
        url = str(request.getfixturevalue("pg_database"))
    load_loans(url)
    return url


def train(db: str, query: str, registry: Path, *extra: str) -> int:
    argv = ["train", "--sql", query, "--db", db, "--registry", str(registry), "--json", *extra]
    return main(argv)


def test_a_model_trains_from_a_query_and_its_card_records_it(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "registry"
    code = train(database, QUERY, registry, "--target", "approved", "--sensitive", "sex")
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = orjson.loads(out.out)
    card: ModelCard = Registry(registry).load(f"{summary['name']}@{summary['version']}").card
    assert card.data.rows == 400 and card.target == "approved"
    assert [f.name for f in card.features] == ["income", "region"]
    assert card.fairness is not None and card.fairness.sensitive == "sex"
    query = card.data.query
    assert query is not None and query.query == QUERY and query.rows == 400
    assert "loans" in query.database or "t_" in query.database
    table, again = read_query(database, QUERY)
    assert query.sha256 == again.sha256 == table.sha256()


def test_the_fingerprint_is_the_results_not_the_databases(tmp_path: Path, pg_database: str) -> None:
    lite = str(tmp_path / "loans.sqlite")
    for url in (lite, pg_database):
        load_loans(url)
    _, from_sqlite = read_query(lite, QUERY)
    _, from_postgres = read_query(pg_database, QUERY)
    assert from_sqlite.sha256 == from_postgres.sha256  # same rows, same bytes
    _, fewer = read_query(lite, QUERY.replace("ORDER BY id", "WHERE id > 0 ORDER BY id"))
    assert fewer.sha256 != from_sqlite.sha256 and fewer.rows == 399


@pytest.mark.parametrize(
    ("query", "target", "said"),
    [
        ("SELEC income FROM loans", "approved", "the query failed"),
        ("SELECT income FROM no_such_table", "approved", "the query failed"),
        ("SELECT income, region FROM loans", "approved", "unknown target column 'approved'"),
        ("SELECT income, id % 3 AS approved FROM loans", "approved", "must be binary"),
        ("SELECT income, approved FROM loans WHERE id < 0", "approved", "returned no rows"),
    ],
    ids=["bad-syntax", "no-table", "missing-target", "non-binary-target", "empty-result"],
)
def test_bad_data_from_sql_is_one_clear_line(
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    query: str,
    target: str,
    said: str,
) -> None:
    registry = tmp_path / "registry"
    assert train(database, query, registry, "--target", target) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and err.startswith("driftline: ") and len(err.splitlines()) == 1
    assert not registry.exists() or not any(registry.iterdir())


def test_sql_options_that_cannot_work_say_what_is_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.sqlite"
    assert train(str(missing), QUERY, tmp_path, "--target", "approved") == 2
    assert "no such SQLite file" in capsys.readouterr().err and not missing.exists()
    assert main(["train", "--sql", QUERY, "--target", "approved"]) == 2
    assert "--sql needs --db URL" in capsys.readouterr().err
    assert main(["train", "--sql", QUERY, "--db", str(missing)]) == 2
    assert "--sql needs --target COL" in capsys.readouterr().err
    assert main(["train", "--sql", QUERY, "--db", "nosuch://x", "--target", "y"]) == 2
    assert "knows no such database kind" in capsys.readouterr().err
    assert main(["train", "--sql", QUERY, "--db", "mysql://me@db/x", "--target", "y"]) == 2
    assert "no driver for this database" in capsys.readouterr().err


def test_a_query_that_cannot_reach_its_server_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from streams.local.processes import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    assert train(url, QUERY, tmp_path, "--target", "approved") == 2
    err = capsys.readouterr().err
    assert "cannot connect" in err and "postgresql+psycopg://postgres@127.0.0.1" in err
