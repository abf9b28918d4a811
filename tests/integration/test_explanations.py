"""Why it drifted, live: a shifted feature that moves the score is named first in the
prediction-drift alert a real worker raises (real Kafka and Redis)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.adapters.redis_client import sync_redis
from streams.contracts import names
from streams.contracts.messages import Alert
from tests.conftest import Endpoints
from tests.kit import Deployment, agrawal_events
from tests.waiting import wait_until


@pytest.fixture
def deployment(services: Endpoints, unique: str, tmp_path: Path) -> Deployment:
    return Deployment.up(
        services,
        unique,
        tmp_path,
        champion="gbdt",
        monitor={"window": 1000, "min_labels": 100},
        DRIFTLINE_WORKER_ID=f"w-{unique}",
    )


def _alerts(dep: Deployment) -> list[dict[str, Any]]:
    client = sync_redis(dep.services.redis, None)
    try:
        entries: Any = client.xrange(names.ALERTS_KEY)
    finally:
        client.close()
    alerts = (orjson.loads(fields[b"alert"]) for _, fields in entries)
    return [a for a in alerts if a["model"] == dep.model]


def test_a_prediction_drift_alert_names_the_shifted_feature_first(deployment: Deployment) -> None:
    dep = deployment
    card = dep.registry.card(f"{dep.model}@champion")
    assert card.importance is not None and card.pca is not None
    importance = card.importance.values
    # the numeric feature the score depends on most: shifting it moves the score
    shifted = max((f.name for f in card.features if f.kind == "numeric"), key=importance.get)
    normal = agrawal_events(3000, prefix="n", seed=11)
    drifted = agrawal_events(5000, prefix="d", seed=12)
    for e in drifted:
        e["features"][shifted] = e["features"][shifted] * 1.25 + 40_000.0
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", normal + drifted))
        preds = asyncio.run(dep.collect("predictions", 8000, timeout_s=120, worker=worker))
        assert len(preds) == 8000, dep.log()
        found = wait_until(
            "a prediction-drift alert in the alerts stream",
            lambda: [a for a in _alerts(dep) if a["kind"] == "prediction_drift"],
            60,
            0.25,
            detail=lambda: (_alerts(dep), dep.log()),
        )
    for alert in found:
        Alert.model_validate(alert)
        ranked = alert["details"]["explained_by"]
        assert ranked[0][0] == shifted, ranked
        assert 0 < ranked[0][1] <= 1 and len(ranked) <= 5
    # the shifted feature also left its training correlations: the PCA's detector names it
    multi = [a for a in _alerts(dep) if a["details"].get("test") == "multivariate"]
    assert multi and multi[0]["feature"] is None
    assert shifted in {name for name, _ in multi[0]["details"]["columns"]}

    shown = subprocess.run(
        [sys.executable, "-m", "streams.cli", "alerts", "--model", dep.model],
        env=dep.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if " prediction_drift " in line]
    assert lines and all(f"; explained by {shifted} " in line for line in lines), shown.stdout
