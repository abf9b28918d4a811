"""The SQL history sink: a real monitor and retrainer write, a SQL query reads back.

Monitoring points, alerts and version events reach SQLite and a real PostgreSQL through the
monitors' runtime and the retrainer's lifecycle, as they do in a worker; each test has its own
model (so its own Redis keys) and its own database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import sqlalchemy as sa

from models.data import synthetic
from models.registry import Registry
from models.scorer import OnnxScorer
from models.workflow import TrainOptions, train
from streams.adapters.sql import sql_url
from streams.adapters.sql_history import SqlHistory
from streams.config.settings import Settings, load_settings
from streams.contracts.names import ALERTS_KEY
from streams.control.retrainer import Retrainer
from streams.local.producer import dataset_events
from streams.monitors.runtime import MonitorRuntime
from streams.scoring.batch import Scored
from tests.conftest import Endpoints

BATCH = 250


def _register(registry: Registry, model: str, seed: int) -> str:
    result = train(synthetic("agrawal", rows=1500, seed=seed), TrainOptions(name=model, folds=3))
    return registry.register(result.payload, result.card).version


async def _serve(
    runtime: MonitorRuntime, scorer: OnnxScorer, n: int, seed: int, drift: bool
) -> None:
    events = list(
        dataset_events(synthetic("agrawal", rows=n, seed=seed), prefix=f"{seed}-", entities=0)
    )
    if drift:
        for event, _ in events:
            event["features"]["salary"] = event["features"]["salary"] * 3 + 100_000.0
    for i in range(0, n, BATCH):
        batch = events[i : i + BATCH]
        rows = [event["features"] for event, _ in batch]
        ids = [event["event_id"] for event, _ in batch]
        labels, proba = scorer.predict_batch(rows)
        await runtime.on_scored(
            runtime.reducer.reduce(
                [Scored("champion", scorer.version, ids, rows, labels, proba[:, 1])]
            )
        )
        await runtime.on_labels([(eid, int(y)) for eid, (_, y) in zip(ids, batch, strict=True)])
        await runtime.tick(force=True)


def _rows(url: str, query: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(sql_url(url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query), params)]
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(sql_url(url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return str(request.getfixturevalue("pg_database"))


async def _life(settings: Settings, registry: Registry, model: str, services: Endpoints) -> None:
    """v1 serves normal then drifted traffic; the retrainer promotes v2; nothing is written to
    SQL before the end (one batch, whose time never comes: only closing writes it)."""
    sent: list[bytes] = []

    async def send(topic: str, payloads: list[bytes]) -> None:
        sent.extend(payloads)

    card = registry.card(f"{model}@champion")
    runtime = MonitorRuntime(settings, model, card, services.redis, send)
    v1 = OnnxScorer.from_registry(registry, f"{model}@champion")
    await _serve(runtime, v1, 1000, 31, drift=False)
    await _serve(runtime, v1, 2000, 32, drift=True)
    retrainer = Retrainer(settings, services.kafka, services.redis)
    version = _register(registry, model, seed=2)
    registry.promote(model, version)
    await retrainer.record(model, "promote", version=version, previous=card.version, reason="test")
    assert runtime.history is not None and runtime.history.pending() > 0
    assert "driftline_points" not in _tables(str(settings.history_db)), "written before due"
    await runtime.close()
    assert retrainer.lifecycle.sql is not None
    await retrainer.lifecycle.sql.aclose()
    await retrainer.redis.aclose()
    assert sent, "no alert was raised"


def test_points_alerts_and_version_events_reach_sql_and_read_back(
    services: Endpoints, database: str, tmp_path: Path, unique: str
) -> None:
    model = f"hist-{unique}"
    registry = Registry(tmp_path / "registry")
    registry.promote(model, _register(registry, model, seed=1))
    settings = load_settings(
        redis_url=services.redis,
        registry=registry.root,
        worker_id=f"w-{unique}",
        monitor={"window": 500, "min_labels": 100, "rolling_window": 500},
        challenger_kind="off",
        history_interval_s=0.0,
        history_db=database,
        history_flush_s=3600.0,
        topic_alerts=f"alerts-{unique}",
    )
    asyncio.run(_life(settings, registry, model, services))

    points = _rows(
        database,
        "SELECT count(*), count(DISTINCT at) FROM driftline_points "
        "WHERE model = :m AND metric = 'accuracy' AND scope = '1/champion'",
        m=model,
    )
    assert points[0][0] >= 10 and points[0][1] > 1  # a point per tick: a time series
    (psi,) = _rows(
        database,
        "SELECT max(value) FROM driftline_points WHERE model = :m AND feature = 'salary' "
        "AND metric = 'psi'",
        m=model,
    )
    assert psi[0] > 0.25, "the drift of salary is charted"
    # every alert in Redis for this model is one row, with its kind and statistic
    client = redis.Redis.from_url(services.redis)
    try:
        entries: Any = client.xrange(ALERTS_KEY)
    finally:
        client.close()
    in_redis = {
        a["alert_id"]: a
        for a in (orjson.loads(f[b"alert"]) for _, f in entries)
        if a["model"] == model
    }
    rows = _rows(
        database, "SELECT alert_id, kind, statistic FROM driftline_alerts WHERE model = :m", m=model
    )
    assert {r[0] for r in rows} == set(in_redis) and len(rows) == len(in_redis) > 0
    assert any(kind == "data_drift" for _, kind, _ in rows)
    for alert_id, kind, statistic in rows:
        assert kind == in_redis[alert_id]["kind"]
        assert statistic == pytest.approx(in_redis[alert_id]["statistic"])
    events = _rows(
        database,
        "SELECT kind, version, reason FROM driftline_version_events WHERE model = :m",
        m=model,
    )
    assert events == [("promote", "2", "test")]


def test_a_database_that_fails_keeps_the_rows_until_it_comes_back(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    db = str(folder / "history.sqlite")  # SQLite cannot open a file in a missing folder
    sink = SqlHistory(db, flush_s=0.0)
    alert = {
        "alert_id": "a1",
        "at": 1_700_000_000.0,
        "model": "m",
        "version": "1",
        "kind": "data_drift",
        "feature": "age",
        "detector": "psi",
        "statistic": 0.4,
        "threshold": 0.25,
        "details": {"window": 500},
    }
    entry = {
        "id": "e1",
        "at": "2026-01-01T00:00:00+00:00",
        "model": "m",
        "kind": "promote",
        "version": "2",
        "reason": "sequential test",
    }

    async def run() -> tuple[int, str | None, int, int]:
        sink.add_alerts([alert])
        sink.add_event(entry)
        failed = await sink.flush()
        failing = sink.failing
        folder.mkdir()
        sink.add_alerts([alert])  # the same alert again: written once
        written = await sink.flush()
        await sink.aclose()
        return failed, failing, written, sink.pending()

    failed, failing, written, pending = asyncio.run(run())
    assert failed == 0 and failing is not None and "unable to open" in failing
    assert written == 3 and pending == 0 and sink.failing is None
    assert _rows(db, "SELECT alert_id, kind, details FROM driftline_alerts") == [
        ("a1", "data_drift", '{"window":500}')
    ]
    assert _rows(db, "SELECT event_id, kind, version FROM driftline_version_events") == [
        ("e1", "promote", "2")
    ]
