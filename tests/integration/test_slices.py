"""Slices on a real worker, Kafka and Redis: a context attribute's values survive the label join.

A worker scores events that carry ``region`` in their context (two frequent values, a tail of
one-off values, events without it) and stops before any label has come; a second worker
process resumes the monitors and gets the labels. Each label must fall in the slice its event
had when it was scored — the value waited in the join with the prediction — and the health,
``driftline status`` (JSON and text) and ``driftline report`` show the slices' counts,
accuracy and F1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from models.data import synthetic
from streams.contracts import names
from streams.local.producer import dataset_events
from tests.conftest import Endpoints
from tests.kit import Deployment
from tests.waiting import wait_until

EVENTS = 3000


def _region(i: int) -> dict[str, Any] | None:
    """The context of event ``i``: north 45 %, south 30 %, a one-off value 15 %, no region
    5 % (another attribute only), no context 5 %."""
    k = i % 20
    if k < 9:
        return {"region": "north", "tier": "gold"}
    if k < 15:
        return {"region": "south"}
    if k < 18:
        return {"region": f"r-{i}"}
    return {"tier": "silver"} if k == 18 else None


def test_per_slice_metrics_of_a_context_attribute_after_late_labels(
    services: Endpoints, unique: str, tmp_path: Path
) -> None:
    dep = Deployment.up(
        services,
        unique,
        tmp_path,
        champion="logreg",
        monitor={"window": 1000, "min_labels": 200, "slice_by": "region", "slice_top": 2},
        DRIFTLINE_CHALLENGER_KIND="off",
    )
    events, truth = [], {}
    for i, (event, y) in enumerate(
        dataset_events(synthetic("agrawal", rows=EVENTS, seed=11), prefix="slc", entities=0)
    ):
        context = _region(i)
        if context is not None:
            event["context"] = context
        # Labels flipped for the south: the model is as good there, the labels say otherwise.
        truth[event["event_id"]] = 1 - y if context and context.get("region") == "south" else y
        events.append(event)

    client = redis.Redis.from_url(services.redis)
    try:
        with dep.worker("scorer") as worker:
            preds = dep.score(events, worker)

            def stored() -> bool:  # every prediction waits for its label in the join
                raw = client.hget(f"{names.join_prefix(dep.model)}:stats", "pending_p")
                return int(raw or 0) >= EVENTS

            wait_until(
                "the join to hold every prediction", stored, 120, 0.25, lambda: dep.log("scorer")
            )
            assert worker.poll() is None, dep.log("scorer")
        # The labels come late, to another process: the slice values wait in Redis.
        with dep.worker("labeller") as worker:
            labels = [{"event_id": eid, "label": y} for eid, y in truth.items()]
            asyncio.run(dep.produce("labels", labels))

            def settled() -> dict[str, Any] | None:
                raw = client.hget(names.health_key(dep.model), names.HEALTH_FIELD)
                health = orjson.loads(raw) if raw else {}
                return health if health.get("labels", 0) >= EVENTS else None

            health = wait_until(
                "the monitors to count every label", settled, 120, 0.25, lambda: dep.log("labeller")
            )
            assert worker.poll() is None, dep.log("labeller")
    finally:
        client.close()

    assert health["resumed"], "the second process went on from the first one's snapshot"
    assert health["slices"]["by"] == "region" and health["slices"]["top"] == 2
    assert health["slices"]["candidates"] <= 8, "the one-off values stay bounded"
    [scope] = [s for s in health["metrics"] if s.endswith("/champion")]
    values = health["metrics"][scope]["slices"]["values"]
    assert list(values) == ["north", "south", "(other)", "(none)"]

    def of(pred: dict[str, Any]) -> str:
        region = (pred.get("context") or {}).get("region")
        if region is None:
            return "(none)"
        return region if region in ("north", "south") else "(other)"

    by_id = {p["event_id"]: p for p in preds}
    assert set(by_id) == set(truth)
    for name, got in values.items():
        mine = [eid for eid, p in by_id.items() if of(p) == name]
        right = sum(by_id[eid]["label"] == truth[eid] for eid in mine)
        assert got["cumulative"]["count"] == len(mine), name
        assert got["cumulative"]["accuracy"] == pytest.approx(right / len(mine)), name
        assert got["rolling"]["count"] <= 1000
    assert values["south"]["cumulative"]["accuracy"] < values["north"]["cumulative"]["accuracy"]
    assert sum(v["cumulative"]["count"] for v in values.values()) == EVENTS

    status = dep.cli("status", dep.model, "--json")
    assert status.returncode == 0, status.stderr
    [report] = orjson.loads(status.stdout)
    shown = report["health"]["metrics"][scope]["slices"]["values"]
    assert shown["north"]["cumulative"]["count"] == values["north"]["cumulative"]["count"]
    text = dep.cli("status", dep.model)
    assert text.returncode == 0, text.stderr
    assert "slices by region" in text.stdout, text.stdout
    for name in ("north", "south", "(other)", "(none)"):
        assert name in text.stdout, text.stdout
    page = tmp_path / "report.html"
    written = dep.cli("report", dep.model, "--out", str(page))
    assert written.returncode == 0, written.stderr
    html = page.read_text()
    assert "Slices by region" in html and "<td>south</td>" in html
    print(
        "\nslices: "
        + ", ".join(
            f"{k} {v['cumulative']['count']} labels acc {v['cumulative']['accuracy']:.2f}"
            for k, v in values.items()
        )
    )
