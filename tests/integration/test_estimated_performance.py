"""Performance estimated without labels in a real worker: the alert comes before the labels.

A logistic model on three Gaussian features (its labels a logistic of them, so its scores are
calibrated where the events fall) is served by a worker (real Kafka and Redis). Its events
come with every feature scaled by 0.15: the scores crowd the decision boundary, the labels
stay as random as the scores say. With no label sent, the monitors must put a ``performance``
alert marked estimated on the alerts stream and the estimate in the health hash; the labels
sent afterwards must show the drop too, in the realized figures.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from scipy.special import expit

from models.data import Dataset
from models.workflow import TrainOptions, train
from streams.adapters.redis_client import SyncClient, sync_redis
from streams.contracts import names
from streams.contracts.messages import Alert
from streams.local.producer import dataset_events
from tests.conftest import Endpoints
from tests.kit import Deployment
from tests.waiting import wait_until

WEIGHTS = np.array([3.0, -2.0, 1.6])
EVENTS = 1500
MARGIN = 0.1


def _dataset(rng: np.random.Generator, n: int, scale: float) -> Dataset:
    x = rng.normal(size=(n, 3)) * scale
    y = (rng.random(n) < expit(x @ WEIGHTS)).astype(np.int64)
    return Dataset(
        source="estimated-performance-test",
        numeric_names=("x0", "x1", "x2"),
        categorical_names=(),
        numeric=x,
        categorical=np.empty((n, 0), dtype=object),
        y=y,
        classes=("0", "1"),
        target="label",
    )


@pytest.fixture
def deployment(services: Endpoints, unique: str, tmp_path: Path) -> Deployment:
    dep = Deployment.up(
        services,
        unique,
        tmp_path,
        monitor={"window": 1000, "min_labels": 200, "performance_margin": MARGIN},
        DRIFTLINE_WORKER_ID=f"w-{unique}",
    )
    ds = _dataset(np.random.default_rng(0), 6000, 1.0)
    result = train(ds, TrainOptions(name=dep.model, estimator="logreg", folds=2, seed=0))
    assert result.card.calibrator is not None
    dep.registry.promote(dep.model, dep.registry.register(result.payload, result.card).version)
    return dep


def _health(client: SyncClient, dep: Deployment) -> dict[str, Any]:
    raw = client.hget(names.health_key(dep.model), names.HEALTH_FIELD)
    return orjson.loads(raw) if raw else {}


def _alerts(client: SyncClient, model: str) -> list[dict[str, Any]]:
    entries: Any = client.xrange(names.ALERTS_KEY)
    alerts = (orjson.loads(fields[b"alert"]) for _, fields in entries)
    return [a for a in alerts if a["model"] == model]


def _estimated(client: SyncClient, dep: Deployment) -> list[dict[str, Any]]:
    return [
        a
        for a in _alerts(client, dep.model)
        if a["kind"] == "performance" and (a.get("details") or {}).get("estimated") is True
    ]


def test_an_estimated_performance_alert_comes_before_any_label(deployment: Deployment) -> None:
    dep = deployment
    client = sync_redis(dep.services.redis, None)
    card = dep.registry.card(dep.model)
    reference = (card.metrics.holdout_served or card.metrics.holdout).f1
    pairs = list(
        dataset_events(_dataset(np.random.default_rng(1), EVENTS, 0.15), prefix="b", entities=0)
    )
    events = [event for event, _ in pairs]
    with dep.worker() as worker:
        preds = dep.score(events, worker)
        assert len({p["event_id"] for p in preds}) == EVENTS, dep.log()
        alerts = wait_until(
            "an estimated performance alert on the alerts stream",
            lambda: _estimated(client, dep),
            30,
            0.25,
            detail=lambda: (_alerts(client, dep.model), _health(client, dep), dep.log()),
        )
        health = wait_until(  # then it stays: no more events come until the labels
            "the health to count every event",
            lambda: (h := _health(client, dep)).get("events", 0) >= EVENTS and h,
            30,
            0.25,
            detail=lambda: (_health(client, dep), dep.log()),
        )
        assert health["labels"] == 0, "no label was sent"
        (alert,) = alerts  # one condition, one alert
        Alert.model_validate(alert)
        scope = f"{card.version}/champion"
        assert alert["version"] == card.version and alert["detector"] == "estimated_f1_drop"
        details = alert["details"]
        assert details["variant"] == "champion" and details["reference"] == pytest.approx(reference)
        assert details["high"] < reference - MARGIN == pytest.approx(alert["threshold"])
        # every feature shrank alike: the one the model leans on most explains most
        ranked = [name for name, _ in details["explained_by"]]
        assert sorted(ranked) == ["x0", "x1", "x2"] and ranked[0] == "x0", details
        estimated = health["metrics"][scope]["estimated"]
        assert estimated["events"] >= 1000 and estimated["f1"]["high"] < reference - MARGIN
        assert "rolling" not in health["metrics"][scope]  # no realized figure yet

        dep.env["COLUMNS"] = "240"  # the table's every column on one line
        shown = dep.cli("status", dep.model)
        assert shown.returncode == 0, shown.stderr
        f1 = estimated["f1"]
        assert "est. F1" in shown.stdout and f"[{f1['low']:.3f}–" in shown.stdout, shown.stdout

        labels = [{"event_id": e["event_id"], "label": y} for e, y in pairs]
        asyncio.run(dep.produce("labels", labels))
        labelled = wait_until(
            "the monitors to count every label",
            lambda: (h := _health(client, dep)).get("labels", 0) >= EVENTS and h,
            60,
            0.25,
            detail=lambda: dep.log(),
        )
    realized = labelled["metrics"][scope]["rolling"]["f1"]
    assert realized < reference - MARGIN, (realized, reference)
    band = labelled["metrics"][scope]["estimated"]["f1"]
    print(f"\nholdout F1 {reference:.3f}; estimated {band}; realized {realized:.3f}")
    assert band["low"] - 0.05 <= realized <= band["high"] + 0.05
    assert any(
        a["kind"] == "performance" and a["detector"] == "f1_drop"
        for a in _alerts(client, dep.model)
    ) or any(f["detector"] == "f1_drop" for f in labelled["active"])
    client.close()
