"""The Grafana dashboard, proven: a real Prometheus scrapes a real worker under load, and every
PromQL query of the provisioned dashboard returns data through Prometheus's HTTP API.

Prometheus runs on the compose file's own configuration (``deploy/prometheus/prometheus.yml``),
only the worker job's DNS discovery replaced by the test worker's address
(:func:`streams.local.prometheus_process.with_targets`). The dashboard's variables are
substituted as Grafana does: ``$model`` by the dashboard's default (All: its ``allValue``) and
by the model its own variable query finds, ``$metric`` and ``$window`` by each of their options,
``$__rate_interval`` by Grafana's floor of four scrape intervals of the data source.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen
from typing import Any

import orjson
import pytest
import yaml

from models.data import synthetic
from streams.contracts.messages import ModelUpdate
from streams.errors import ServiceError
from streams.local.processes import ServiceRecord, stop, tail
from streams.local.prometheus_process import (
    find_prometheus,
    prometheus_ready,
    start_prometheus,
)
from tests.conftest import SERVICE_MISSING, Endpoints
from tests.kit import Background, Deployment, Value, agrawal_events
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "driftline.json"
DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
JOB = "driftline-worker"
RATE = 300  # events (and labels) per second while the queries run
POOL = 60_000  # events in the pool: more than the test streams at RATE


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """The system's ``prometheus``; its absence ends the run, saying how to get it."""
    try:
        return find_prometheus().line()
    except ServiceError as exc:
        pytest.exit(f"the dashboard test needs a real Prometheus: {exc}", SERVICE_MISSING)


@pytest.fixture
def deployment(services: Endpoints, unique: str, tmp_path: Path) -> Deployment:
    return Deployment.up(
        services,
        unique,
        tmp_path,
        monitor={"window": 200, "min_labels": 50, "rolling_window": 500},
        DRIFTLINE_METRICS_HOST="127.0.0.1",
        DRIFTLINE_WORKER_ID=f"w-{unique}",
    )


# -- the dashboard ---------------------------------------------------------------------------
def _dashboard() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text())
    assert isinstance(doc, dict)
    return doc


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) of every panel target and every Prometheus annotation."""
    out = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                out.append((f"panel {inner['title']!r} {target['refId']}", target["expr"]))
    for note in dashboard["annotations"]["list"]:
        if "expr" in note:
            out.append((f"annotation {note['name']!r}", note["expr"]))
    return out


def _options(dashboard: dict[str, Any], name: str) -> list[str]:
    (variable,) = (v for v in dashboard["templating"]["list"] if v["name"] == name)
    return [o["value"] for o in variable["options"]]


def _rate_interval() -> str:
    """Grafana's ``$__rate_interval``: max($__interval + scrape interval, 4 x scrape
    interval), the scrape interval being the data source's ``timeInterval``. On the default
    hour of the dashboard ``$__interval`` is at most a few seconds, so the floor rules."""
    source = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape, "Grafana must know the scrape interval"
    seconds = re.fullmatch(r"(\d+)s", scrape)
    assert seconds, f"a scrape interval in seconds: {scrape}"
    return f"{4 * int(seconds[1])}s"


def _regex_escape(value: str) -> str:
    """A value of a multi-value variable in a regex matcher, escaped as Grafana does."""
    return re.sub(r"([\\^$*+?.()|{}\[\]'])", r"\\\1", value)


def _expand(expr: str, values: dict[str, str]) -> str:
    out = expr.replace("$__rate_interval", values["__rate_interval"])
    for name, value in values.items():
        out = out.replace(f"${name}", value)
    assert "$" not in out, f"a variable left in {out}"
    return out


# -- Prometheus's HTTP API -------------------------------------------------------------------
def _api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            doc = orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:  # 400 for a bad query: the body says why
        doc = orjson.loads(exc.read())
    assert doc["status"] == "success", (path, params, doc)
    return doc["data"]


def _query(base: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    data = _api(base, "query", **params)
    assert data["resultType"] == "vector", (expr, data)
    result: list[dict[str, Any]] = data["result"]
    return result


def _has_data(result: list[dict[str, Any]]) -> bool:
    """At least one series with a number (Grafana draws NaN as nothing)."""
    return any(math.isfinite(float(s["value"][1])) for s in result)


@pytest.fixture
def prometheus_of(prometheus_binary: str) -> Iterator[list[ServiceRecord]]:
    """Started servers, stopped at the end (the test starts one, once its worker's port is
    known)."""
    started: list[ServiceRecord] = []
    yield started
    for record in started:
        stop(record)


# -- the load --------------------------------------------------------------------------------
class Load:
    """Events and their labels at ``RATE`` per second each until stopped; a malformed event
    every 500th; from :meth:`drift` on, every event's ``car`` the same (a data drift that the
    label does not depend on: the model keeps predicting both classes, so that precision and
    the groups' rates stay defined on the rolling window)."""

    def __init__(self, dep: Deployment, bg: Background) -> None:
        self.dep, self.bg = dep, bg
        self.events = agrawal_events(POOL, prefix="dash", entities=500, seed=21)
        self.truth = synthetic("agrawal", rows=POOL, seed=21).y.tolist()
        self.stopped, self.drifting = threading.Event(), threading.Event()

    def _events(self) -> Iterator[Value]:
        for i, event in enumerate(self.events):
            if self.stopped.is_set():
                return
            if self.drifting.is_set():
                event = {**event, "features": {**event["features"], "car": "1"}}
            yield event
            if i % 500 == 499:
                yield b"not json"

    def _labels(self) -> Iterator[Value]:
        for event, label in zip(self.events, self.truth, strict=True):
            if self.stopped.is_set():
                return
            yield {"event_id": event["event_id"], "label": label}

    def start(self) -> None:
        self.running = [
            self.bg.spawn(self.dep.produce("events", self._events(), rate=RATE)),
            self.bg.spawn(self.dep.produce("labels", self._labels(), rate=RATE)),
        ]

    def drift(self) -> None:
        self.drifting.set()

    def alive(self) -> bool:
        return not any(f.done() for f in self.running)


def _metrics_port(dep: Deployment, worker: Popen[bytes]) -> int:
    path = dep.root / "data" / "metrics" / f"worker-{worker.pid}.json"
    wait_until(
        "the worker's port file", lambda: path.exists() or worker.poll() is not None, 90, 0.25
    )
    assert path.exists(), dep.log()
    return int(orjson.loads(path.read_bytes())["port"])


def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    prometheus_of: list[ServiceRecord], deployment: Deployment, tmp_path: Path
) -> None:
    dep = deployment
    v1, v2 = dep.add_version("logreg", seed=1), dep.add_version("logreg", seed=2)
    dep.registry.promote(dep.model, v1)
    dashboard = _dashboard()
    bg = Background()
    load = Load(dep, bg)
    try:
        with dep.worker() as worker:
            port = _metrics_port(dep, worker)
            config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
            record = start_prometheus(config, tmp_path / "services", {JOB: [f"127.0.0.1:{port}"]})
            prometheus_of.append(record)
            base = record.endpoint

            def log() -> str:
                return f"{tail(record.log, 30)}\n{dep.log()}"

            wait_until("Prometheus ready", lambda: prometheus_ready(base), 60, 0.25, log)
            up = f'up{{job="{JOB}"}} == 1'
            wait_until("a scrape of the worker", lambda: _query(base, up), 60, 0.5, log)

            load.start()

            def served(role: str, version: str) -> bool:
                info = f'driftline_model_version_info{{role="{role}", version="{version}"}}'
                return bool(_query(base, info))

            # a swap after Prometheus saw its counter at 0: the swap annotation needs both
            wait_until("v1 served, as scraped", lambda: served("champion", v1), 60, 0.5, log)
            dep.registry.promote(dep.model, v2)
            update = ModelUpdate(model=dep.model, action="promote", version=v2, alias="champion")
            keyed = (dep.model.encode(), orjson.dumps(update.model_dump(mode="json")))
            asyncio.run(dep.produce("updates", [keyed]))
            wait_until("v2 served, as scraped", lambda: served("champion", v2), 90, 0.5, log)

            # labels joined for the new champion, then a drift and its alert, as scraped
            joined = f'driftline_monitor_labels_total{{version="{v2}"}} > 100'
            wait_until("labels of v2 joined", lambda: _query(base, joined), 90, 0.5, log)
            load.drift()
            alerted = 'driftline_alerts_total{kind="data_drift"} > 0'
            wait_until("a data drift alert", lambda: _query(base, alerted), 90, 0.5, log)
            # one more scrape, so that every query sees the worker as it is after the alert
            scraped = f'timestamp(up{{job="{JOB}"}}) > {time.time():.3f}'
            wait_until("a scrape after the alert", lambda: _query(base, scraped), 30, 0.5, log)
            at = time.time()
            assert load.alive() and worker.poll() is None, "still under load while queried"

            # the dashboard's $model variable: label_values(driftline_model_version_info, model)
            models = _api(base, "label/model/values", **{"match[]": "driftline_model_version_info"})
            assert models == [dep.model], models
            rate_interval = _rate_interval()
            answers: dict[str, list[dict[str, Any]]] = {}  # query -> result, each asked once
            asked: list[tuple[str, str]] = []  # (where, query)
            for (where, expr), model, metric, window in itertools.product(
                _queries(dashboard),
                [".*", _regex_escape(models[0])],
                _options(dashboard, "metric"),
                _options(dashboard, "window"),
            ):
                values = {"model": model, "metric": metric, "window": window}
                query = _expand(expr, {**values, "__rate_interval": rate_interval})
                asked.append((where, query))
                if query not in answers:
                    answers[query] = _query(base, query, at)
            # the data is the test's own, not merely there: events flow at the load's rate
            flow = f'sum(rate(driftline_events_consumed_total{{model="{dep.model}"}}[20s]))'
            consumed = float(_query(base, flow, at)[0]["value"][1])
    finally:
        load.stopped.set()
        bg.close()
    assert {where for where, _ in asked} == {where for where, _ in _queries(dashboard)}
    empty = sorted({f"{where}: {query}" for where, query in asked if not _has_data(answers[query])})
    assert not empty, "queries with no data:\n" + "\n".join(empty)
    assert consumed > RATE / 3, consumed
