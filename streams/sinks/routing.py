"""Which alerts a sink takes, how severe an alert is, and which condition it is about.

An alert's severity is ``details["severity"]`` when a monitor set one of
:data:`~streams.config.sinks.SEVERITIES`, else its kind's (:data:`KIND_SEVERITY`): a drop of
quality or fairness is an ``error``, a change of distribution or data quality a ``warning``.
A sink takes an alert when its ``models`` and ``kinds`` (empty: all) hold the alert's and the
severity is at least its ``min_severity``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.config.sinks import SEVERITIES, Severity, SinkConfig

KIND_SEVERITY: dict[str, Severity] = {
    "data_drift": "warning",
    "prediction_drift": "warning",
    "data_quality": "warning",
    "concept_drift": "error",
    "performance": "error",
    "fairness": "error",
}


def severity(alert: Mapping[str, Any]) -> Severity:
    """The severity of ``alert``.

    >>> severity({"kind": "performance"}), severity({"kind": "data_drift"})
    ('error', 'warning')
    >>> severity({"kind": "data_drift", "details": {"severity": "critical"}})
    'critical'
    """
    given = (alert.get("details") or {}).get("severity")
    for s in SEVERITIES:
        if given == s:
            return s
    return KIND_SEVERITY.get(str(alert.get("kind")), "warning")


def routed(sink: SinkConfig, alert: Mapping[str, Any]) -> bool:
    """Whether ``sink`` takes ``alert`` (its models, kinds and minimum severity)."""
    if sink.models and alert.get("model") not in sink.models:
        return False
    if sink.kinds and alert.get("kind") not in sink.kinds:
        return False
    return SEVERITIES.index(severity(alert)) >= SEVERITIES.index(sink.min_severity)


def condition_key(alert: Mapping[str, Any]) -> str:
    """What an alert is about, across versions and repeats: PagerDuty's dedup key.

    >>> condition_key({"model": "sea", "kind": "data_drift", "feature": "x1"})
    'driftline:sea:data_drift:x1'
    >>> condition_key({"model": "sea", "kind": "performance", "feature": None})
    'driftline:sea:performance:-'
    """
    return f"driftline:{alert['model']}:{alert['kind']}:{alert.get('feature') or '-'}"


def summary(alert: Mapping[str, Any]) -> str:
    """One line for a human: model, version, what drifted, the test and its threshold.

    >>> summary({"model": "sea", "version": "3", "kind": "data_drift", "feature": "x1",
    ...          "detector": "psi", "statistic": 0.4123, "threshold": 0.2})
    'sea v3: data drift of x1 (psi 0.4123, threshold 0.2)'
    >>> summary({"model": "sea", "version": "3", "kind": "performance", "feature": None,
    ...          "detector": "estimated_f1_drop", "statistic": 0.61, "threshold": 0.77,
    ...          "details": {"estimated": True}})
    'sea v3: performance, estimated without labels (estimated_f1_drop 0.61, threshold 0.77)'
    """
    what = str(alert["kind"]).replace("_", " ")
    if alert.get("feature"):
        what += f" of {alert['feature']}"
    if (alert.get("details") or {}).get("estimated"):
        what += ", estimated without labels"
    version = f" v{alert['version']}" if alert.get("version") else ""
    test = f"{alert['detector']} {float(alert['statistic']):.4g}"
    return f"{alert['model']}{version}: {what} ({test}, threshold {float(alert['threshold']):.4g})"


def explanation(alert: Mapping[str, Any]) -> str | None:
    """What explains an alert, for a human; None when its details say nothing of it.

    A prediction-drift or performance alert names the features that explain it with their
    shares (``details.explained_by``; none drifted: a concept drift, probably); a multivariate
    drift alert the columns whose correlation broke (``details.columns``).

    >>> explanation({"details": {"explained_by": [["x0", 0.8213], ["x3", 0.1204]]}})
    'x0 0.82, x3 0.12'
    >>> explanation({"details": {"explained_by": []}})
    'no feature drifted (concept drift?)'
    >>> explanation({"details": {"test": "multivariate", "columns": [["x4", 0.5], ["x7", 0.5]]}})
    'columns x4 0.5, x7 0.5'
    """
    details = alert.get("details") or {}
    ranked = details.get("explained_by")
    if ranked is not None:
        return _shares(ranked) or "no feature drifted (concept drift?)"
    if details.get("test") == "multivariate" and details.get("columns"):
        return f"columns {_shares(details['columns'])}"
    return None


def _shares(ranked: Any) -> str:
    return ", ".join(f"{name} {float(share):.2g}" for name, share in ranked)


__all__ = ["KIND_SEVERITY", "condition_key", "explanation", "routed", "severity", "summary"]
