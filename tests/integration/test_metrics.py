"""A real worker's /metrics and /health over HTTP, and its watchdog restarting a stuck loop."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from pathlib import Path
from subprocess import Popen
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models.data import synthetic
from streams.ops.liveness import WATCHDOG_EXIT_CODE
from tests.conftest import Endpoints
from tests.kit import Deployment, agrawal_events
from tests.waiting import wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def deployment(services: Endpoints, unique: str, tmp_path: Path) -> Deployment:
    return Deployment.up(  # the kit's workers bind any free port: tests may run side by side
        services,
        unique,
        tmp_path,
        monitor={"window": 200, "min_labels": 50},
        DRIFTLINE_METRICS_HOST="127.0.0.1",
        DRIFTLINE_WORKER_ID=f"w-{unique}",
    )


def _base_url(dep: Deployment, worker: Popen[bytes]) -> str:
    """The worker wrote its bound port under its data dir."""
    path = dep.root / "data" / "metrics" / f"worker-{worker.pid}.json"
    wait_until(
        "the worker's port file", lambda: path.exists() or worker.poll() is not None, 60, 0.25
    )
    assert path.exists(), dep.log()
    doc = orjson.loads(path.read_bytes())
    assert doc["pid"] == worker.pid and doc["model"] == dep.model
    return f"http://127.0.0.1:{doc['port']}"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _health(base: str) -> tuple[int, dict[str, Any]]:
    code, body = _get(f"{base}/health")
    return code, orjson.loads(body)


def _scrape(base: str) -> Samples:
    code, body = _get(f"{base}/metrics")
    assert code == 200
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sum of the series of ``name`` whose labels include ``labels`` (None: no series)."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls)]
    return sum(found) if found else None


def test_metrics_count_what_was_scored_and_health_is_ready(deployment: Deployment) -> None:
    dep = deployment
    version = dep.add_version()
    dep.registry.promote(dep.model, version)
    events = agrawal_events(600, prefix="met", entities=50, seed=31)
    truth = synthetic("agrawal", rows=600, seed=31).y.tolist()
    labels = [{"event_id": e["event_id"], "label": y} for e, y in zip(events, truth, strict=True)]
    bad = [b"not json", b'{"event_id": "x"}', b"[]"]
    with dep.worker() as worker:
        base = _base_url(dep, worker)
        code, doc = wait_until(
            "/health to answer 200",
            lambda: (h := _health(base))[0] == 200 and h,
            90,
            0.25,
            detail=lambda: (_health(base), dep.log()),
        )
        assert doc["ready"] and doc["live"], (doc, dep.log())
        asyncio.run(dep.produce("events", [*events, *bad]))
        preds = asyncio.run(  # all of them: the worker committed every event first
            dep.collect(
                "predictions",
                600,
                timeout_s=90,
                worker=worker,
                complete=dep.scored_all,
            )
        )
        assert len(preds) == 600, dep.log()
        asyncio.run(dep.produce("labels", labels))
        model = {"model": dep.model}
        # the batch counters follow the commit; the monitors follow their own topic
        samples = wait_until(
            "the counters of 603 events and 600 labels",
            lambda: (
                (s := _scrape(base))
                and _value(s, "driftline_events_consumed_total", **model) == 603
                and _value(s, "driftline_monitor_labels_total", **model) == 600
                and s
            ),
            60,
            0.25,
            detail=lambda: {
                name: _value(_scrape(base), name, **model)
                for name in ("driftline_events_consumed_total", "driftline_monitor_labels_total")
            },
        )
        code, doc = _health(base)
        assert _get(f"{base}/health/live")[0] == _get(f"{base}/health/ready")[0] == 200
        assert _get(f"{base}/nothing")[0] == 404
    port_file = dep.root / "data" / "metrics" / f"worker-{worker.pid}.json"
    assert worker.returncode == 0 and not port_file.exists(), "a clean stop removes the port file"

    assert _value(samples, "driftline_events_consumed_total", **model) == 603, dep.log()
    assert _value(samples, "driftline_predictions_total", **model) == 600
    assert _value(samples, "driftline_dead_letters_total", **model) == 3
    assert _value(samples, "driftline_event_latency_seconds_count", **model) == 600
    assert _value(samples, "driftline_event_latency_seconds_bucket", le="+Inf", **model) == 600
    # what the histogram holds is each prediction's own latency_ms, in seconds (not a bound)
    latency_s = sum(p["latency_ms"] for p in preds) / 1000
    assert latency_s > 0
    assert _value(samples, "driftline_event_latency_seconds_sum", **model) == pytest.approx(
        latency_s, rel=1e-9
    )
    assert _value(samples, "driftline_batch_size_events_sum", **model) == 603
    batches = _value(samples, "driftline_batches_total", **model)
    assert batches and batches == _value(samples, "driftline_batch_size_events_count", **model)
    champion = {"role": "champion", "version": version, "routing": "off", **model}
    assert _value(samples, "driftline_model_version_info", **champion) == 1
    assert _value(samples, "driftline_model_version_info", role="challenger") is None
    assert _value(samples, "driftline_model_swaps_total", **model) == 0
    lags = {
        dict(ls)["partition"]: v
        for (n, ls), v in samples.items()
        if n == "driftline_consumer_lag_events"
    }
    assert set(lags) == {"0", "1", "2", "3"} and sum(lags.values()) == 0
    assert _value(samples, "driftline_worker_ready", **model) == 1
    assert _value(samples, "driftline_monitor_owner", **model) == 1
    scope = {"version": version, "variant": "champion", **model}
    assert _value(samples, "driftline_monitor_events_total", **scope) == 600
    accuracy = _value(
        samples, "driftline_model_metric", window="rolling", metric="accuracy", **scope
    )
    assert accuracy is not None and 0.5 < accuracy <= 1.0
    kinds = {dict(ls)["kind"] for (n, ls) in samples if n == "driftline_monitor_findings_total"}
    assert kinds >= {"data_drift", "prediction_drift", "concept_drift", "performance", "fairness"}

    assert code == 200, doc
    assert doc["status"] == "ok" and doc["ready"] and doc["live"]
    assert doc["versions"]["champion"] == version and doc["versions"]["challenger"] is None
    assert doc["scoring"]["partitions"] == [0, 1, 2, 3] and doc["scoring"]["lag_total"] == 0
    assert doc["scoring"]["batches"] == batches and doc["scoring"]["last_batch_at"] > 0
    monitoring = doc["monitoring"]
    assert monitoring["owner"] is True and monitoring["degraded"] is None
    status = {"status": monitoring["status"], **model}
    assert _value(samples, "driftline_monitor_status", **status) == 1  # ok or alerting: data
    assert doc["watchdog"]["state"] == "ok" and doc["watchdog"]["limit_s"] == 60


def test_a_stalled_worker_reports_stuck_then_exits_for_a_restart(deployment: Deployment) -> None:
    dep = deployment
    dep.registry.promote(dep.model, dep.add_version())
    limit = 6.0
    dep.env.update(DRIFTLINE_WATCHDOG_S=str(limit), DRIFTLINE_FAULT_STALL_AFTER_BATCHES="1")
    events = agrawal_events(2000, prefix="stall", entities=100, seed=41)
    with dep.worker("stalled") as worker:
        base = _base_url(dep, worker)
        wait_until(
            "/health to answer 200",
            lambda: _health(base)[0] == 200,
            90,
            0.25,
            detail=lambda: dep.log("stalled"),
        )
        asyncio.run(dep.produce("events", events[:1000]))
        _, doc = wait_until(
            "/health to say stuck (503) while the worker lives",
            lambda: worker.poll() is None and (h := _health(base))[0] == 503 and h,
            30,
            0.25,
            detail=lambda: dep.log("stalled"),
        )
        assert doc["status"] == "stuck" and not doc["live"], doc
        assert doc["watchdog"]["state"] == "stuck"
        assert "no batch committed" in doc["watchdog"]["reason"]
        # stuck is reported from half the limit on (and the worker still answers)
        assert doc["watchdog"]["limit_s"] == limit
        assert doc["watchdog"]["stalled_s"] >= limit / 2, doc
        asyncio.run(dep.produce("events", events[1000:]))
        code = worker.wait(timeout=30)
    # A fresh worker rescoring what a dead one left is test_worker.py's SIGKILL test.
    assert code == WATCHDOG_EXIT_CODE, dep.log("stalled")
    exited = re.search(r"watchdog: scoring is stuck \(.* for (\d+) s.*exiting", dep.log("stalled"))
    assert exited, dep.log("stalled")
    assert int(exited[1]) >= limit, "the watchdog exits once stalled for its limit, not before"
