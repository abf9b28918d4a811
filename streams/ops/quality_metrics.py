"""Prometheus metric families of a model's monitors, from the plain dicts they report.

:func:`monitor_families` turns ``MonitorRuntime.health()`` (status, counts, active findings,
per-scope metrics with group rates and fairness gaps, challenger metrics) and
``ModelMonitor.drift_statistics()`` (last closed window per feature and per score scope)
into gauges and counters labelled by model, version, variant, window, group, feature, kind.
A scope ``"<version>/<variant>"`` becomes the two labels ``version`` and ``variant``.

The label-free estimate of a scope (:mod:`monitoring.scope_estimates`) is
``driftline_model_metric{window="estimated"}`` beside the realized windows, and its band's
ends ``driftline_estimated_metric_band{bound="low"|"high"}``.

With ``slice_by`` set, ``driftline_slice_metric`` adds the count, accuracy and F1 of each
slice (label ``slice``: at most ``slice_top`` values, ``(other)`` and ``(none)``; label
``attribute``: the context attribute). Only monitors that slice export it, so it is not
among the families a worker describes (nor in ``series_names()``).

The monitors' counts live in their snapshot and resume after a restart or an ownership
move, so the ``*_total`` series here keep counting across processes (never backwards).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitoring.findings import FINDING_KINDS

MONITOR_STATUSES = ("ok", "degraded", "alerting")


def gauge_family(name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def counter_family(name: str, doc: str, labels: Sequence[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _scope(scope: str) -> tuple[str, str]:
    version, _, variant = scope.rpartition("/")
    return version, variant


def monitor_families(
    model: str, health: Mapping[str, Any], drift: Mapping[str, Any]
) -> list[Metric]:
    """Metric families of a model's monitors from ``MonitorRuntime.health()`` and
    ``ModelMonitor.drift_statistics()`` (plain dicts; empty ones give empty families)."""
    scope_l = ["model", "version", "variant"]
    quality = gauge_family(
        "driftline_model_metric",
        "Classification metric of labelled events (window: cumulative, or rolling over the "
        "last rolling_window labels), or estimated from calibrated scores without labels "
        "(window: estimated, over the last window scored events).",
        [*scope_l, "window", "metric"],
    )
    band = gauge_family(
        "driftline_estimated_metric_band",
        "Low and high end of the band of a metric estimated without labels (chance and the "
        "calibrator's error).",
        [*scope_l, "metric", "bound"],
    )
    group = gauge_family(
        "driftline_group_metric",
        "Selection rate, TPR and FPR of labelled events per sensitive group.",
        [*scope_l, "window", "group", "metric"],
    )
    gap = gauge_family(
        "driftline_fairness_gap",
        "Demographic-parity (dp) and equalized-odds (eo) gap across sensitive groups.",
        [*scope_l, "window", "gap"],
    )
    labels = counter_family(
        "driftline_monitor_labels", "Labelled events joined with their predictions.", scope_l
    )
    events = counter_family(
        "driftline_monitor_events", "Scored events seen by the monitors.", scope_l
    )
    for scope, m in health.get("metrics", {}).items():
        key = [model, *_scope(scope)]
        labels.add_metric(key, float(m.get("labels", 0)))
        for window in ("cumulative", "rolling"):
            for name, value in m.get(window, {}).items():
                if name != "count" and value is not None:
                    quality.add_metric([*key, window, name], float(value))
            summary = m.get("groups", {}).get(window, {})
            for g, rates in summary.get("groups", {}).items():
                for name in ("selection_rate", "tpr", "fpr"):
                    if rates.get(name) is not None:
                        group.add_metric([*key, window, str(g), name], float(rates[name]))
            for name in ("dp", "eo"):
                if summary.get(f"{name}_gap") is not None:
                    gap.add_metric([*key, window, name], float(summary[f"{name}_gap"]))
        for name, figure in (m.get("estimated") or {}).items():
            if isinstance(figure, Mapping):  # a metric's band; None without a denominator
                quality.add_metric([*key, "estimated", name], float(figure["value"]))
                for bound in ("low", "high"):
                    band.add_metric([*key, name, bound], float(figure[bound]))
    for scope, n in health.get("scopes", {}).items():
        events.add_metric([model, *_scope(scope)], float(n))
    sliced = _slice_family(model, health)

    feature = gauge_family(
        "driftline_feature_drift",
        "PSI, KS p-value and missing rate of the last closed window, per variant and feature.",
        ["model", "variant", "feature", "statistic"],
    )
    for variant, features in drift.get("features", {}).items():
        for name, stats in features.items():
            for stat, value in stats.items():
                if value is not None:
                    feature.add_metric([model, variant, name, stat], float(value))
    prediction = gauge_family(
        "driftline_prediction_drift",
        "PSI and KS p-value of the positive-class score in the last closed window.",
        [*scope_l, "statistic"],
    )
    for scope, stats in drift.get("scores", {}).items():
        for stat, value in stats.items():
            if value is not None:
                prediction.add_metric([model, *_scope(scope), stat], float(value))

    findings = counter_family(
        "driftline_monitor_findings",
        "Findings the monitors raised, by kind (before alert dedupe and cooldown).",
        ["model", "kind"],
    )
    active = gauge_family(
        "driftline_monitor_active_findings", "Conditions active now, by kind.", ["model", "kind"]
    )
    now_active = [f.get("kind") for f in health.get("active", [])]
    counts = health.get("counts", {})
    for kind in FINDING_KINDS if health else ():
        findings.add_metric([model, kind], float(counts.get(kind, 0)))
        active.add_metric([model, kind], float(now_active.count(kind)))
    status = gauge_family(
        "driftline_monitor_status", "1 for the monitors' status now.", ["model", "status"]
    )
    for s in MONITOR_STATUSES if health else ():
        status.add_metric([model, s], float(health.get("status") == s))
    requests = counter_family(
        "driftline_retrain_requests", "Retrain requests sent by the monitors.", ["model"]
    )
    if health:
        requests.add_metric([model], float(health.get("retrain_requests", 0)))
    online = gauge_family(
        "driftline_challenger_metric",
        "Progressive-validation metric of the online challenger.",
        ["model", "kind", "window", "metric"],
    )
    challenger = health.get("challenger") or {}
    for window in ("cumulative", "rolling"):
        for name, value in challenger.get(window, {}).items():
            if name != "count" and value is not None:
                online.add_metric([model, challenger["kind"], window, name], float(value))
    return [
        quality,
        band,
        group,
        gap,
        labels,
        events,
        feature,
        prediction,
        findings,
        active,
        status,
        requests,
        online,
        *sliced,
    ]


def _slice_family(model: str, health: Mapping[str, Any]) -> list[Metric]:
    """``driftline_slice_metric`` of every scope's slices; none when nothing is sliced."""
    scopes = {s: m["slices"] for s, m in health.get("metrics", {}).items() if m.get("slices")}
    if not scopes:
        return []
    family = gauge_family(
        "driftline_slice_metric",
        "Count, accuracy and F1 of labelled events per slice of a context attribute (the "
        "slice_top most frequent values, (other) and (none)), cumulative or rolling.",
        ["model", "version", "variant", "window", "attribute", "slice", "metric"],
    )
    for scope, summary in scopes.items():
        key = [model, *_scope(scope)]
        by = str(summary.get("by", ""))
        for name, windows in summary.get("values", {}).items():
            for window in ("cumulative", "rolling"):
                for metric, value in windows.get(window, {}).items():
                    if value is not None:
                        family.add_metric([*key, window, by, str(name), metric], float(value))
    return [family]


__all__ = ["MONITOR_STATUSES", "counter_family", "gauge_family", "monitor_families"]
