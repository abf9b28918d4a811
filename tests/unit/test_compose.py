"""docker-compose.yml is valid compose YAML and speaks the settings' language."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

from streams.config.settings import ENV_PREFIX, Settings, env_name

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_the_services_with_healthchecks() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "worker", "retrainer"} <= set(services)
    for name in ("kafka", "redis", "worker", "retrainer"):
        assert "test" in services[name]["healthcheck"], name
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "--appendonly" in services["redis"]["command"]
    for name in ("worker", "retrainer"):
        assert services[name]["command"][0] == "driftline"
        assert any(v.endswith(":/registry") for v in services[name]["volumes"])
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_env_vars_are_settings() -> None:
    known = {env_name(field) for field in Settings.model_fields}
    used: set[str] = set()
    for service in _compose()["services"].values():
        env = service.get("environment", {})
        used.update(k for k in env if k.startswith(ENV_PREFIX))
    assert used, "the driftline services are configured through DRIFTLINE_ variables"
    assert used <= known, f"unknown settings: {sorted(used - known)}"
    assert {"DRIFTLINE_KAFKA_BOOTSTRAP", "DRIFTLINE_REDIS_URL", "DRIFTLINE_REGISTRY"} <= used


# -- Prometheus and Grafana ------------------------------------------------------------------
DEPLOY = COMPOSE.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "driftline.json"
# a selector: metric name, then its label matchers
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"[^"]*"')
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])
    return out


def _queries(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    return exprs


def _exported() -> dict[str, set[str]]:
    """Series name -> label names, from a worker registry with every source populated."""
    from prometheus_client.parser import text_string_to_metric_families

    from streams.ops.observability import Probe, WorkerMetrics, series_names
    from streams.ops.quality_metrics import monitor_families
    from streams.scoring.inflight import BatchStats

    rates = {"selection_rate": 0.5, "tpr": 0.6, "fpr": 0.1}
    summary = {"groups": {"a": rates, "b": rates}, "dp_gap": 0.1, "eo_gap": 0.2}
    scores = {"accuracy": 0.9, "f1": 0.8, "roc_auc": 0.95, "log_loss": 0.3, "count": 9}
    health = {
        "metrics": {
            "v1/champion": {
                "labels": 10,
                "cumulative": scores,
                "rolling": scores,
                "groups": {"cumulative": summary, "rolling": summary},
                "estimated": {"events": 9, "f1": {"value": 0.8, "low": 0.7, "high": 0.9}},
            }
        },
        "scopes": {"v1/champion": 10},
        "counts": {"data_drift": 1},
        "active": [{"kind": "data_drift"}],
        "status": "alerting",
        "retrain_requests": 1,
        "challenger": {"kind": "logreg", "cumulative": scores, "rolling": scores},
    }
    stats = {"psi": 0.3, "ks_pvalue": 0.01, "missing_rate": 0.0}
    drift = {"features": {"champion": {"x0": stats}}, "scores": {"v1/champion": stats}}
    probe = Probe(
        versions={"champion": "v1", "challenger": "v2"},
        lag={0: 3},
        last_batch_at=1.0,
        ready=True,
        monitor_owner=True,
        monitor=monitor_families("credit", health, drift),
    )
    metrics = WorkerMetrics("credit", lambda: probe)
    metrics.on_batch(BatchStats(2, 2, 0, 0.01, [1.0, 2.0]), 1.0)
    metrics.on_alerts(["data_drift"])
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            labels.setdefault(s.name, set()).update(s.labels)
    assert {n for n in labels if n.startswith("driftline_")} >= series_names()
    return labels


def test_dashboard_queries_only_name_exported_series_and_labels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported()
    queries = _queries(dashboard)
    assert queries and all(q.strip() for q in queries)
    used: set[str] = set()
    for query in queries:
        named = set(re.findall(r"\bdriftline_[a-z0-9_]+", query))
        selectors = _SELECTOR.findall(query)
        assert named <= {name for name, _ in selectors}, f"give every series a selector: {query}"
        for name, matchers in selectors:
            if name.startswith("process_") and sys.platform != "linux":
                continue  # prometheus_client reads them from /proc
            assert name in exported, f"{name} is not exported by a worker ({query})"
            unknown = set(_MATCHER.findall(matchers)) - exported[name] - TARGET_LABELS
            assert not unknown, f"{name} has no label {sorted(unknown)} ({query})"
            used.add(name)
        for grouped in re.findall(r"\bby \(([^)]*)\)", query):
            labels = {label.strip() for label in grouped.split(",")}
            known = set().union(*(exported.get(n, set()) for n, _ in selectors)) | TARGET_LABELS
            assert labels <= known, f"grouping by unknown labels {sorted(labels - known)}: {query}"
    # the sections the dashboard promises: throughput, latency, versions, quality, drift, alerts
    for name in (
        "driftline_events_consumed_total",
        "driftline_event_latency_seconds_bucket",
        "driftline_consumer_lag_events",
        "driftline_model_version_info",
        "driftline_model_swaps_total",
        "driftline_model_metric",
        "driftline_feature_drift",
        "driftline_prediction_drift",
        "driftline_alerts_total",
    ):
        assert name in used, name


def test_dashboard_is_well_formed_and_uses_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "Driftline"
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    uids = {d["uid"] for d in provisioned if d["type"] == "prometheus"}
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] in uids
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] in uids | {"${datasource}"}, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    for query in _queries(dashboard):
        for var in re.findall(r"\$(\w+)", query):
            assert var in variables or var.startswith("__"), f"unknown variable ${var}"


def test_compose_runs_prometheus_and_grafana_with_files_that_exist() -> None:
    services = _compose()["services"]
    assert {"prometheus", "grafana"} <= set(services)
    for name in ("prometheus", "grafana"):
        assert "test" in services[name]["healthcheck"], name
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"
    mounts = {v.split(":")[1] for v in services["grafana"]["volumes"]}
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "driftline.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] in mounts
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['providers'][0]['options']['path']}/{DASHBOARD.name}"
    assert "/etc/grafana/provisioning" in mounts


def test_prometheus_scrapes_the_workers_metrics_port() -> None:
    worker = _compose()["services"]["worker"]
    port = int(worker["environment"][env_name("metrics_port")])
    assert str(port) in {str(p) for p in worker["expose"]}
    assert f"{port}/health" in " ".join(worker["healthcheck"]["test"])
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["driftline-worker"]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    assert job["dns_sd_configs"][0]["port"] == port
    dashboard = DASHBOARD.read_text()
    assert 'job=\\"driftline-worker\\"' in dashboard  # the process panels select this job
