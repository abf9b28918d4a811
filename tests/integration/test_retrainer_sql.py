"""The retrainer takes its training window from a SQL query (real SQLite and PostgreSQL).

Each test registers its own model (a unique name: its own Redis keys) and loads its own table;
the retrainer writes its decisions to the session's real Redis, as in production.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from models.data import synthetic
from models.gate_config import GateConfig
from models.history import History
from models.registry import Registry
from models.workflow import TrainOptions, train
from streams.adapters.sql import sql_url
from streams.config.settings import load_settings
from streams.contracts.messages import RetrainRequest
from streams.control.retrainer import Retrainer
from tests.conftest import Endpoints

# Gates that any sound candidate passes: the test is about where the rows come from.
OPEN_GATES = GateConfig(
    min_cv_f1=0.0, max_cv_f1_std=1.0, min_improvement=-1.0, max_dp_gap=None, max_eo_gap=None
)


def _champion(registry: Registry, model: str) -> list[str]:
    ds = synthetic("agrawal", rows=1200, seed=5)
    result = train(ds, TrainOptions(name=model, folds=3, seed=5))
    card = registry.register(result.payload, result.card)
    registry.promote(model, card.version, "champion")
    return [f.name for f in card.features]


def _load_window(url: str, table: str, model: str, features: list[str], at: float) -> None:
    """200 rows labelled before ``at`` and 900 after, for ``model``; 300 of another model."""
    old = synthetic("agrawal", rows=200, seed=11)
    new = synthetic("agrawal", rows=1200, seed=12, concept=2)  # the concept changed
    engine = sa.create_engine(sql_url(url))
    cols = ", ".join(
        f"{f} {'VARCHAR(16)' if f in ('car', 'zipcode') else 'DOUBLE PRECISION'}" for f in features
    )
    rows = []
    for ds, model_of, t0, n in (
        (old, model, at - 500, 200),
        (new, model, at + 1, 900),
        (new, "someone-else", at + 1, 300),
    ):
        for i in range(n):
            row = dict(zip(ds.numeric_names, ds.numeric[i].tolist(), strict=True))
            row |= dict(zip(ds.categorical_names, ds.categorical[i].tolist(), strict=True))
            rows.append({**row, "label": int(ds.y[i]), "model": model_of, "at": t0 + i * 0.01})
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {table} ({cols}, label INTEGER, model VARCHAR(64), at DOUBLE PRECISION)"
        )
        names = [*features, "label", "model", "at"]
        conn.execute(
            sa.text(
                f"INSERT INTO {table} ({', '.join(names)}) "
                f"VALUES ({', '.join(':' + n for n in names)})"
            ),
            rows,
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "window.sqlite")
    return str(request.getfixturevalue("pg_database"))


def test_a_retrain_request_trains_on_the_rows_of_the_window_query(
    services: Endpoints, database: str, tmp_path: Path, unique: str
) -> None:
    model, table = f"sqlwin-{unique}", f"labelled_{unique}"
    registry = Registry(tmp_path / "registry")
    features = _champion(registry, model)
    at = time.time()
    _load_window(database, table, model, features, at)
    query = (
        f"SELECT {', '.join(features)}, label FROM {table} "
        "WHERE model = :model AND at >= :since ORDER BY at"
    )
    settings = load_settings(
        registry=registry.root,
        retrain_db=database,
        retrain_sql=query,
        gates=OPEN_GATES,
        retrain_min_rows=500,
    )
    retrainer = Retrainer(settings, services.kafka, services.redis)
    request = RetrainRequest(
        request_id=unique, model=model, version="1", reason="concept_drift accuracy fell", at=at
    )

    async def run() -> str:
        try:
            return await retrainer.handle(request)
        finally:
            await retrainer.redis.aclose()

    assert asyncio.run(run()) == "shadow"
    card = registry.card(f"{model}@challenger")
    assert card.data.query is not None
    # after a drift only the rows labelled since the request count, of this model only
    assert card.data.query.rows == 900 and card.data.query.query == query
    assert card.data.rows == 900 - 225  # the most recent quarter held out for the gates
    assert card.data.source == card.data.query.database
    kinds = [e["kind"] for e in History(registry.root).read(model)]
    assert kinds[-3:] == ["request", "gates", "stage"]


def test_a_window_that_cannot_be_read_defers_the_request_and_says_why(
    services: Endpoints, tmp_path: Path, unique: str
) -> None:
    model = f"sqlbad-{unique}"
    registry = Registry(tmp_path / "registry")
    _champion(registry, model)
    lite = tmp_path / "w.sqlite"
    sa.create_engine(sql_url(str(lite))).connect().close()  # an empty database
    settings = load_settings(
        registry=registry.root, retrain_db=str(lite), retrain_sql="SELECT * FROM nowhere"
    )
    retrainer = Retrainer(settings, services.kafka, services.redis)
    request = RetrainRequest(request_id=unique, model=model, version="1", reason="challenger")

    async def run() -> str:
        try:
            return await retrainer.handle(request)
        finally:
            await retrainer.redis.aclose()

    assert asyncio.run(run()) == "deferred"
    last = History(registry.root).read(model)[-1]
    assert last["kind"] == "deferred"
    assert "the training window cannot be read" in last["reason"]
    assert "the query failed" in last["reason"] and "nowhere" in last["reason"]


def test_the_window_query_and_its_database_go_together() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="DRIFTLINE_RETRAIN_SQL and DRIFTLINE_RETRAIN_DB"):
        load_settings(retrain_sql="SELECT 1")
