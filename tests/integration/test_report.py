"""`driftline report` from a live history written by MonitorRuntime into the real Redis."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from models.data import synthetic
from models.registry import Registry
from models.scorer import OnnxScorer
from models.workflow import TrainOptions, train
from streams.cli.main import main
from streams.config.settings import Settings, env_name, load_settings
from streams.contracts.names import ALERTS_KEY, history_key
from streams.control.retrainer import Retrainer
from streams.local.producer import dataset_events
from streams.monitors.runtime import MonitorRuntime
from streams.scoring.batch import Scored
from tests.conftest import Endpoints

MAX_POINTS = 10
BATCH = 250


def _register(registry: Registry, model: str, seed: int) -> str:
    ds = synthetic("agrawal", rows=1500, seed=seed)
    result = train(ds, TrainOptions(name=model, folds=3, mitigate="threshold", seed=seed))
    return registry.register(result.payload, result.card).version


def _batches(n: int, seed: int, prefix: str, drift: bool) -> list[list[tuple[dict, int]]]:
    pairs = list(dataset_events(synthetic("agrawal", rows=n, seed=seed), prefix=prefix, entities=0))
    if drift:
        for event, _ in pairs:
            event["features"]["salary"] = event["features"]["salary"] * 3 + 100_000.0
    return [pairs[i : i + BATCH] for i in range(0, n, BATCH)]


async def _serve(
    runtime: MonitorRuntime, scorer: OnnxScorer, batches: list[list[tuple[dict, int]]]
) -> None:
    """What a worker does per batch: score, monitor, join the labels, tick."""
    for batch in batches:
        rows = [event["features"] for event, _ in batch]
        ids = [event["event_id"] for event, _ in batch]
        labels, proba = scorer.predict_batch(rows)
        part = Scored("champion", scorer.version, ids, rows, labels, proba[:, 1])
        await runtime.on_scored(runtime.reducer.reduce([part]))
        await runtime.on_labels([(eid, int(y)) for eid, (_, y) in zip(ids, batch, strict=True)])
        await runtime.tick(force=True)


async def _live(settings: Settings, registry: Registry, model: str, services: Endpoints) -> None:
    """v1 serves normal then drifted traffic, then v2 is promoted and serves."""
    redis_url = services.redis
    card = registry.card(f"{model}@champion")
    sent: list[tuple[str, int]] = []

    async def send(topic: str, payloads: list[bytes]) -> None:
        sent.append((topic, len(payloads)))

    runtime = MonitorRuntime(
        settings, model, card, redis_url, send, card_loader=lambda v: registry.card(f"{model}@{v}")
    )
    v1 = OnnxScorer.from_registry(registry, f"{model}@champion")
    await _serve(runtime, v1, _batches(1500, 21, "n", drift=False))
    await _serve(runtime, v1, _batches(2500, 22, "d", drift=True))
    # a promotion as the retrainer makes it: registry alias, then its lifecycle record
    version = _register(registry, model, seed=2)
    registry.promote(model, version)
    retrainer = Retrainer(settings, services.kafka, redis_url)
    try:
        await retrainer.record(
            model, "promote", version=version, previous=card.version, reason="sequential test"
        )
    finally:
        await retrainer.redis.aclose()
    v2 = OnnxScorer.from_registry(registry, f"{model}@champion")
    await _serve(runtime, v2, _batches(1000, 23, "p", drift=True))
    await runtime.close()
    assert any(topic == settings.topic_alerts for topic, _ in sent), "no alert was raised"


@pytest.fixture
def deployment(services: Endpoints, unique: str, tmp_path: Path) -> tuple[Settings, Registry, str]:
    model = f"report-{unique}"
    registry = Registry(tmp_path / "registry")
    registry.promote(model, _register(registry, model, seed=1))
    settings = load_settings(
        redis_url=services.redis,
        registry=registry.root,
        worker_id=f"w-{unique}",
        monitor={"window": 500, "min_labels": 100, "rolling_window": 500},
        challenger_kind="off",
        history_interval_s=0.0,
        history_max_points=MAX_POINTS,
        topic_alerts=f"alerts-{unique}",
    )
    return settings, registry, model


def test_report_plots_training_and_the_bounded_live_history(
    deployment: tuple[Settings, Registry, str],
    services: Endpoints,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, registry, model = deployment
    asyncio.run(_live(settings, registry, model, services))
    client = redis.Redis.from_url(services.redis)
    try:
        entries: Any = client.xrange(history_key(model))
        points = [orjson.loads(f[b"point"]) for _, f in entries]
        alerts: Any = client.xrange(ALERTS_KEY)
        drift_alerts = [
            a
            for a in (orjson.loads(f[b"alert"]) for _, f in alerts)
            if a["model"] == model and a["kind"] == "data_drift"
        ]
    finally:
        client.close()
    # one point per batch (20) and one on close were written; MAXLEN keeps the last 10
    assert len(points) == MAX_POINTS
    assert points[0]["events"] > BATCH, "the oldest points were trimmed"
    assert [p["at"] for p in points] == sorted(p["at"] for p in points)
    assert points[-1]["champion"] == "2" and points[0]["champion"] == "1"
    assert "2/champion" in points[-1]["metrics"]
    assert points[-1]["groups"], "per-group rolling metrics are recorded"
    salary = points[-1]["drift"]["features"]["champion"]["salary"]
    assert salary["psi"] > 0.2, points[-1]["drift"]
    assert drift_alerts, "the drifted salary raised an alert"
    assert len(orjson.dumps(points[-1])) < 4096, "a point stays small"

    # at most one point per history interval: a long interval writes nothing more
    async def ticks() -> None:
        slow = settings.model_copy(update={"history_interval_s": 3600.0})
        card = registry.card(f"{model}@champion")

        async def send(topic: str, payloads: list[bytes]) -> None:
            return None

        runtime = MonitorRuntime(slow, model, card, services.redis, send)
        for _ in range(3):
            await runtime.tick(force=True)
        await runtime.close()

    before = [entry_id for entry_id, _ in entries]
    asyncio.run(ticks())
    again = redis.Redis.from_url(services.redis)
    try:
        after = [entry_id for entry_id, _ in again.xrange(history_key(model))]  # type: ignore[union-attr]
    finally:
        again.close()
    # the first tick of the new runtime wrote one point; the others fell within the interval
    assert after[:-1] == before[1:] and after[-1] not in before

    monkeypatch.setenv(env_name("history_max_points"), str(MAX_POINTS))  # as the workers have it
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    argv = ["report", model, "--registry", str(registry.root), "--redis-url", services.redis]
    assert main([*argv, "--out", str(out), "--versions", "all"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out.resolve()}" in printed and "10 history points" in printed
    page = out.read_text()
    plots = set(
        re.findall(r'<img data-plot="([^"]+)" alt="[^"]*" src="data:image/png;base64,', page)
    )
    assert {"confusion", "roc", "calibration", "fairness-1", "fairness-2", "timeline"} <= plots
    assert "://" not in page
    assert f"{MAX_POINTS} monitoring points (at most {MAX_POINTS} kept)" in page
    assert "sequential test" in page, "the retrainer's record reached the version changes"
    # v1's first promotion, and v2's: recorded by the registry and in Redis, shown once
    assert re.search(r"<h3>Version changes \(2\)</h3>", page), page[-2000:]
    assert page.count("<td>promote</td><td>v2</td>") == 1
    assert re.search(r"<h3>Alerts \([1-9]\d*\)</h3>", page)
    assert "data_drift" in page and "v2 (champion)" in page

    # default output: NAME-report.html in the current directory
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0
    assert (tmp_path / f"{model}-report.html").stat().st_size > 50_000
    assert f"{model}-report.html" in capsys.readouterr().out


def test_report_refuses_unknown_model_and_survives_a_missing_redis(
    deployment: tuple[Settings, Registry, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, registry, model = deployment
    base = ["--registry", str(registry.root), "--out", str(tmp_path / "r.html")]
    assert main(["report", f"{model}-nope", *base, "--no-live"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("driftline: no model named") and "\n" not in err
    assert main(["report", model, *base, "--versions", "9", "--no-live"]) == 2
    assert "has no version '9'" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()

    # Redis down: the training part is still written, with a note and a warning
    assert main(["report", model, *base, "--redis-url", "redis://127.0.0.1:1/0"]) == 0
    captured = capsys.readouterr()
    assert "warning: live history not read from Redis" in captured.err
    page = (tmp_path / "r.html").read_text()
    assert "Live history not read from Redis" in page and 'data-plot="roc"' in page
