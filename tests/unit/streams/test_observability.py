"""Worker metrics: rendered, parsed back with Prometheus' own parser, checked value by value."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.card import SensitiveSpec
from models.data import synthetic
from models.workflow import TrainResult
from monitoring import ModelMonitor, MonitorConfig
from monitoring.findings import FINDING_KINDS
from streams.ops.observability import (
    LATENCY_BUCKETS_S,
    BulkHistogram,
    Probe,
    WorkerMetrics,
    series_names,
)
from streams.ops.quality_metrics import monitor_families
from streams.scoring.inflight import BatchStats

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: bytes) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _get(samples: Samples, name: str, **labels: str) -> float:
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def _names(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(ls) for (n, ls) in samples if n == name]


def test_batches_are_counted_and_latencies_bucketed() -> None:
    metrics = WorkerMetrics("credit")
    metrics.on_batch(BatchStats(10, 8, 2, 0.004, [0.5, 3.0, 3.0, 20.0, 20.0, 20.0, 70e3, 7]), 5.0)
    metrics.on_batch(BatchStats(300, 300, 0, 0.2, [2.0] * 300), 9.5)
    s = _parse(metrics.render())
    m = {"model": "credit"}
    assert _get(s, "driftline_events_consumed_total", **m) == 310
    assert _get(s, "driftline_predictions_total", **m) == 308
    assert _get(s, "driftline_dead_letters_total", **m) == 2
    assert _get(s, "driftline_batches_total", **m) == 2
    assert _get(s, "driftline_batch_size_events_count", **m) == 2
    assert _get(s, "driftline_batch_size_events_sum", **m) == 310
    assert _get(s, "driftline_batch_size_events_bucket", le="256.0", **m) == 1
    assert _get(s, "driftline_batch_duration_seconds_sum", **m) == pytest.approx(0.204)
    latency = "driftline_event_latency_seconds"
    assert _get(s, f"{latency}_count", **m) == 308
    assert _get(s, f"{latency}_sum", **m) == pytest.approx((600 + 0.5 + 6 + 60 + 70e3 + 7) / 1e3)
    assert _get(s, f"{latency}_bucket", le="0.001", **m) == 1  # 0.5 ms
    assert _get(s, f"{latency}_bucket", le="0.0025", **m) == 301  # + 300 at 2 ms
    assert _get(s, f"{latency}_bucket", le="0.005", **m) == 303
    assert _get(s, f"{latency}_bucket", le="0.01", **m) == 304
    assert _get(s, f"{latency}_bucket", le="0.025", **m) == 307
    assert _get(s, f"{latency}_bucket", le="60.0", **m) == 307
    assert _get(s, f"{latency}_bucket", le="+Inf", **m) == 308  # 70 s
    assert metrics.last_batch_at == 9.5


def test_the_bulk_histogram_agrees_with_prometheus_own() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.exponential(0.05, 5000), [0.001, 0.005, 1.0, 60.0, 61.0]])
    reference = CollectorRegistry()
    hist = Histogram("h", "h", ["model"], registry=reference, buckets=LATENCY_BUCKETS_S)
    for v in values:
        hist.labels("m").observe(float(v))
    ours = CollectorRegistry()
    bulk = BulkHistogram("h", "h", LATENCY_BUCKETS_S, {"model": "m"})
    ours.register(bulk)
    for chunk in np.array_split(values, 7):
        bulk.observe_many(chunk)
    bulk.observe_many([])
    mine = {k: v for k, v in _parse(generate_latest(ours)).items() if not k[0].endswith("created")}
    theirs = {
        k: v for k, v in _parse(generate_latest(reference)).items() if not k[0].endswith("created")
    }
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        assert mine[key] == pytest.approx(value), key


def test_probe_gauges_versions_lag_and_health() -> None:
    probe = Probe(
        versions={"champion": "v2", "challenger": "v3"},
        routing="canary",
        swaps=4,
        topic="events-x",
        lag={0: 12, 1: 0, 3: None},
        last_batch_at=123.0,
        ready=True,
        stalled_s=2.5,
        monitor_owner=False,
        monitor_degraded=True,
    )
    s = _parse(WorkerMetrics("credit", lambda: probe).render())
    m = {"model": "credit"}
    assert _names(s, "driftline_model_version_info") == [
        {"model": "credit", "role": "champion", "version": "v2", "routing": "canary"},
        {"model": "credit", "role": "challenger", "version": "v3", "routing": "canary"},
    ]
    assert _get(s, "driftline_model_swaps_total", **m) == 4
    assert _get(s, "driftline_consumer_lag_events", partition="0", topic="events-x", **m) == 12
    assert _get(s, "driftline_consumer_lag_events", partition="1", **m) == 0
    assert {d["partition"] for d in _names(s, "driftline_consumer_lag_events")} == {"0", "1"}
    assert _get(s, "driftline_assigned_partitions", **m) == 3
    assert _get(s, "driftline_last_batch_timestamp_seconds", **m) == 123.0
    assert _get(s, "driftline_worker_ready", **m) == 1
    assert _get(s, "driftline_worker_stalled_seconds", **m) == 2.5
    assert _get(s, "driftline_worker_stuck", **m) == 0
    assert _get(s, "driftline_monitor_owner", **m) == 0
    assert _get(s, "driftline_monitor_degraded", **m) == 1
    assert _names(s, "driftline_model_metric") == []  # not the owner: no quality metrics


def test_a_worker_without_monitors_exports_no_monitor_gauges() -> None:
    s = _parse(WorkerMetrics("credit", lambda: Probe(versions={"champion": "v1"})).render())
    assert _names(s, "driftline_monitor_owner") == []
    assert _names(s, "driftline_model_version_info")[0]["role"] == "champion"
    assert _names(s, "driftline_model_version_info")[0]["routing"] == "off"


def test_registries_are_per_worker() -> None:
    a, b = WorkerMetrics("a"), WorkerMetrics("b")
    a.on_batch(BatchStats(5, 5, 0, 0.01, [1.0] * 5), 1.0)
    sa, sb = _parse(a.render()), _parse(b.render())
    assert _get(sa, "driftline_events_consumed_total", model="a") == 5
    assert _get(sb, "driftline_events_consumed_total", model="b") == 0
    assert _names(sb, "driftline_events_consumed_total") == [{"model": "b"}]


def test_alerts_are_counted_by_kind() -> None:
    metrics = WorkerMetrics("credit")
    metrics.on_alerts(["data_drift", "data_drift", "fairness"])
    s = _parse(metrics.render())
    assert _get(s, "driftline_alerts_total", kind="data_drift", model="credit") == 2
    assert _get(s, "driftline_alerts_total", kind="fairness", model="credit") == 1


def test_alerts_of_every_kind_start_at_zero() -> None:
    """A counter first seen at 1 has no increase in Prometheus: the dashboard's alert panels
    would miss the first alert of a kind."""
    s = _parse(WorkerMetrics("credit").render())
    for kind in FINDING_KINDS:
        assert _get(s, "driftline_alerts_total", kind=kind, model="credit") == 0


@pytest.fixture(scope="module")
def fed_monitor(sea_result: TrainResult) -> ModelMonitor:
    """A monitor with a sensitive attribute, fed 1,200 scored and labelled events."""
    spec = SensitiveSpec(name="grp", column="grp", kind="column", groups=["a", "b"])
    card = sea_result.card.model_copy(update={"sensitive": spec})
    mon = ModelMonitor(card, MonitorConfig(window=300, rolling_window=500, min_labels=50))
    live = synthetic("sea", rows=1200, seed=9)
    x = live.numeric.copy()
    x[600:, 0] += 5.0  # x0 drifts half way
    p = sea_result.pipeline.predict_proba(x)[:, 1]
    groups = np.array(["a", "b"] * 600, dtype=object)
    for s in range(0, 1200, 100):
        sl = slice(s, s + 100)
        num = {n: x[sl, j] for j, n in enumerate(live.numeric_names)}
        mon.observe_batch(num, {}, p[sl], card.version, "champion")
        pred = (p[sl] > 0.5).astype(np.int64)
        mon.observe_labels(live.y[sl], pred, p[sl], groups[sl], card.version, "champion")
    return mon


def test_monitor_families_export_what_the_monitors_report(fed_monitor: ModelMonitor) -> None:
    mon = fed_monitor
    health, drift = mon.health(), mon.drift_statistics()
    health.update(retrain_requests=2, challenger=None)
    registry = CollectorRegistry()

    class Families:
        def collect(self) -> list:
            return monitor_families("sea", health, drift)

    registry.register(Families())
    s = _parse(generate_latest(registry))
    version = mon.card.version
    scope = {"model": "sea", "version": version, "variant": "champion"}
    metrics = mon.metrics()[f"{version}/champion"]
    for window in ("cumulative", "rolling"):
        for name in ("accuracy", "f1", "roc_auc", "log_loss"):
            got = _get(s, "driftline_model_metric", window=window, metric=name, **scope)
            assert got == pytest.approx(metrics[window][name])
        for group in ("a", "b"):
            rate = metrics["groups"][window]["groups"][group]["selection_rate"]
            sel = {"window": window, "group": group, "metric": "selection_rate", **scope}
            assert _get(s, "driftline_group_metric", **sel) == pytest.approx(rate)
        gap = metrics["groups"][window]["dp_gap"]
        assert _get(s, "driftline_fairness_gap", window=window, gap="dp", **scope) == gap
    estimated = metrics["estimated"]
    assert estimated["events"] >= mon.config.window  # the last window of scored events
    for name in ("accuracy", "precision", "recall", "f1"):
        got = _get(s, "driftline_model_metric", window="estimated", metric=name, **scope)
        assert got == pytest.approx(estimated[name]["value"])
        for bound in ("low", "high"):
            end = _get(s, "driftline_estimated_metric_band", metric=name, bound=bound, **scope)
            assert end == pytest.approx(estimated[name][bound])
    assert _get(s, "driftline_monitor_labels_total", **scope) == 1200
    assert _get(s, "driftline_monitor_events_total", **scope) == 1200
    psi = drift["features"]["champion"]["x0"]["psi"]
    feature = {"model": "sea", "variant": "champion", "feature": "x0"}
    assert _get(s, "driftline_feature_drift", statistic="psi", **feature) == pytest.approx(psi)
    assert psi > 0.25, "x0 drifted"
    score_psi = drift["scores"][f"{version}/champion"]["psi"]
    assert _get(s, "driftline_prediction_drift", statistic="psi", **scope) == pytest.approx(
        score_psi
    )
    for kind in FINDING_KINDS:
        counted = _get(s, "driftline_monitor_findings_total", kind=kind, model="sea")
        assert counted == health["counts"][kind]
        active = sum(f["kind"] == kind for f in health["active"])
        assert _get(s, "driftline_monitor_active_findings", kind=kind, model="sea") == active
    assert health["counts"]["data_drift"] > 0
    statuses = {
        d["status"]: _get(s, "driftline_monitor_status", **d)
        for d in _names(s, "driftline_monitor_status")
    }
    assert statuses == {st: float(st == health["status"]) for st in ("ok", "degraded", "alerting")}
    assert _get(s, "driftline_retrain_requests_total", model="sea") == 2


def test_empty_monitor_state_gives_empty_families() -> None:
    families = monitor_families("m", {}, {})
    assert families and all(f.samples == [] for f in families)


def test_series_names_cover_every_exported_series(fed_monitor: ModelMonitor) -> None:
    """What the dashboard test trusts: series_names() lists what /metrics can say."""
    online = {"kind": "logreg", "cumulative": {"accuracy": 0.8, "count": 5}, "rolling": {}}
    health = {**fed_monitor.health(), "retrain_requests": 0, "challenger": online}
    families = monitor_families("sea", health, fed_monitor.drift_statistics())
    probe = Probe(
        versions={"champion": "v1"},
        lag={0: 1},
        last_batch_at=1.0,
        monitor_owner=True,
        monitor=families,
    )
    metrics = WorkerMetrics("sea", lambda: probe)
    metrics.on_batch(BatchStats(1, 1, 0, 0.01, [1.0]), 1.0)
    metrics.on_alerts(["performance"])
    exported = {n for (n, _) in _parse(metrics.render()) if n.startswith("driftline_")}
    exported = {n for n in exported if not n.endswith("_created")}
    names = series_names()
    assert exported <= names, sorted(exported - names)
    assert names == exported, sorted(names - exported)
    kinds = _names(_parse(metrics.render()), "driftline_challenger_metric")
    assert kinds == [
        {"model": "sea", "kind": "logreg", "window": "cumulative", "metric": "accuracy"}
    ]
