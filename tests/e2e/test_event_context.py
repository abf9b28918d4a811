"""Fairness for a model that never reads the sensitive attribute: events carry it as context.

As a user would: a CSV model trained with ``driftline train --csv ... --sensitive segment``
(so ``segment`` is not a model input), then JSON events from a plain Kafka client that carry
``segment`` in ``context``, or among the ``features``, or not at all. Every event is scored,
none is dead-lettered; labels flipped for one segment raise a ``fairness`` alert that names
the segment's gap; ``driftline status`` counts the events and labels that had no group.
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis

from models.data import synthetic
from streams.contracts import names
from tests.conftest import Endpoints
from tests.kit import Deployment, nothing_pending
from tests.waiting import wait_until

ROWS, EVENTS = 4000, 4000
SEGMENTS = ("a", "b", "c")


def _rows(n: int) -> list[dict[str, Any]]:
    """Hyperplane rows with a ``segment`` column that the label does not depend on."""
    ds = synthetic("hyperplane", rows=n, seed=1, features=6)
    segment = np.random.default_rng(2).integers(len(SEGMENTS), size=n)
    return [
        {
            **{name: float(ds.numeric[i, j]) for j, name in enumerate(ds.numeric_names)},
            "segment": SEGMENTS[segment[i]],
            "y": int(ds.y[i]),
        }
        for i in range(n)
    ]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_events_with_the_sensitive_attribute_in_context_or_features_are_watched_for_fairness(
    services: Endpoints, unique: str, tmp_path: Path
) -> None:
    dep = Deployment.up(
        services,
        unique,
        tmp_path,
        monitor={"window": 1000, "min_labels": 200},
        DRIFTLINE_CHALLENGER_KIND="off",
    )
    rows = _rows(ROWS + EVENTS)
    _write_csv(tmp_path / "train.csv", rows[:ROWS])
    trained = dep.cli(
        "train", "--csv", str(tmp_path / "train.csv"), "--target", "y",
        "--sensitive", "segment", "--name", dep.model, "--model", "logreg", "--promote",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr

    live = rows[ROWS:]
    events, labels, where = [], [], {}
    for i, row in enumerate(live):
        features = {k: v for k, v in row.items() if k not in ("segment", "y")}
        event: dict[str, Any] = {"event_id": f"ctx-{i}", "features": features}
        kind = ("context", "features", "none", "context")[i % 4]
        if kind == "context":
            event["context"] = {"segment": row["segment"], "region": "north"}
        elif kind == "features":
            features["segment"] = row["segment"]
        events.append(event)
        where[event["event_id"]] = kind
        # Labels flipped for segment b: the model is right as often for b as for the others,
        # and the labels now say it is almost always wrong there (an equalized-odds gap).
        truth = 1 - row["y"] if row["segment"] == "b" else row["y"]
        labels.append({"event_id": event["event_id"], "label": truth})
    ungrouped = [e["event_id"] for e in events if where[e["event_id"]] == "none"]

    client = redis.Redis.from_url(services.redis)
    try:
        with dep.worker() as worker:
            preds = dep.score(events, worker)
            asyncio.run(dep.produce("labels", labels))

            def settled() -> dict[str, Any] | None:
                raw = client.hget(names.health_key(dep.model), names.HEALTH_FIELD)
                health = orjson.loads(raw) if raw else {}
                return health if health.get("labels", 0) >= EVENTS else None

            health = wait_until("the monitors to count every label", settled, 120, 0.25)
            fairness = wait_until(
                "a fairness alert",
                lambda: [
                    a
                    for a in _alerts(services.redis)
                    if a["model"] == dep.model and a["kind"] == "fairness"
                ],
                30,
                detail=lambda: [(a["kind"], a["detector"]) for a in _alerts(services.redis)],
            )
            assert worker.poll() is None, dep.log()
        dead = asyncio.run(dep.collect("dlq", 0, timeout_s=5, complete=nothing_pending))
    finally:
        client.close()

    assert dead == [], f"no event may be dead-lettered: {dead[:1]}"
    assert {p["event_id"] for p in preds} == set(where), "every event is predicted"
    by_id = {p["event_id"]: p for p in preds}
    assert by_id["ctx-0"]["context"] == {"segment": live[0]["segment"], "region": "north"}
    assert by_id["ctx-1"]["context"] == {"segment": live[1]["segment"]}  # moved from features
    assert "context" not in by_id["ctx-2"]

    assert health["sensitive"] == "segment"
    assert health["ungrouped"] == {"events": len(ungrouped), "labels": len(ungrouped)}
    alert = fairness[0]
    assert alert["feature"] == "segment" and alert["detector"] == "eo_gap"
    assert alert["statistic"] > alert["threshold"]
    groups = alert["details"]["groups"]
    assert set(groups) == set(SEGMENTS), groups
    tpr = {g: groups[g]["tpr"] for g in SEGMENTS}
    assert tpr["b"] < min(tpr["a"], tpr["c"]), tpr

    status = dep.cli("status", dep.model, "--json")
    assert status.returncode == 0, status.stderr
    [report] = orjson.loads(status.stdout)
    assert report["health"]["ungrouped"]["events"] == len(ungrouped)
    text = dep.cli("status", dep.model)
    assert f"fairness by segment: {len(ungrouped)} events and {len(ungrouped)} labels" in (
        text.stdout.replace("\n", " ")
    ), text.stdout
    print(
        f"\ncontext: {EVENTS} events predicted, 0 dead letters, {len(ungrouped)} without a "
        f"group; fairness eo_gap={alert['statistic']:.2f} > {alert['threshold']} (tpr {tpr})"
    )


def _alerts(url: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url)
    try:
        entries: Any = client.xrange(names.ALERTS_KEY)
    finally:
        client.close()
    return [orjson.loads(f[b"alert"]) for _, f in entries]
