"""Compact points of a model's monitoring timeline, made from what the monitors report.

The streams shell appends one point per ``history_interval_s`` to a capped Redis stream; the
report (:mod:`models.report`) plots them. A point is a JSON object (``v`` 1)::

    v          1
    at         UNIX time (s) of the point
    worker     the worker that wrote it; champion: the version it served as champion
    status     ok, degraded or alerting; events, labels: counters since the monitors began
    metrics    {"<version>/<variant>": {labels, count, accuracy, precision, recall, f1,
                roc_auc, log_loss, estimated}}: rolling-window metrics (``count`` labels in
                the window); ``estimated`` (absent without it): the label-free estimate over
                the last scored events, {events, accuracy, accuracy_low, accuracy_high, ...}
                for accuracy, precision, recall and F1 (:mod:`monitoring.scope_estimates`)
    groups     {"<version>/<variant>": {dp_gap, eo_gap, groups: {group: {count,
                selection_rate, tpr, fpr}}}}: rolling-window fairness (models with groups)
    drift      {features: {variant: {feature: {psi, ks_pvalue, missing_rate}}},
                scores: {"<version>/<variant>": {psi, ks_pvalue, missing_rate}},
                active: [{kind, detector, feature, statistic, threshold, version}],
                counts: {kind: findings so far}}

``features`` and ``scores`` hold the last closed window of each monitor; ``active`` the
conditions standing at that time (at most :data:`MAX_ACTIVE`). Floats keep four significant
digits: enough for a plot, and a point stays around a kilobyte.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

POINT_VERSION = 1
MAX_ACTIVE = 20
_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
_GROUP_RATES = ("count", "selection_rate", "tpr", "fpr")
_ESTIMATED = ("accuracy", "precision", "recall", "f1")


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    x = float(value)
    return None if math.isnan(x) or math.isinf(x) else float(f"{x:.4g}")


def _rounded(values: Mapping[str, Any]) -> dict[str, float | None]:
    return {k: _num(v) for k, v in values.items()}


def _estimated(estimate: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"events": int(estimate.get("events") or 0)}
    for name in _ESTIMATED:
        band = estimate.get(name) or {}
        out[name] = _num(band.get("value"))
        out[f"{name}_low"], out[f"{name}_high"] = _num(band.get("low")), _num(band.get("high"))
    return out


def history_point(
    health: Mapping[str, Any], drift: Mapping[str, Any], champion: str
) -> dict[str, Any]:
    """One timeline point from a monitor's health and its drift statistics.

    Parameters
    ----------
    health : mapping
        :meth:`monitoring.model_monitor.ModelMonitor.health`, plus ``worker`` and ``at`` as
        the streams runtime adds them.
    drift : mapping
        :meth:`monitoring.model_monitor.ModelMonitor.drift_statistics`.
    champion : str
        The version served as champion when the point was taken.

    Returns
    -------
    dict
        The point (format in the module docstring), JSON-able.

    Examples
    --------
    >>> health = {"at": 1700000000.0, "worker": "w1", "status": "ok", "events": 500,
    ...           "labels": 200, "active": [], "counts": {"data_drift": 1},
    ...           "metrics": {"3/champion": {"labels": 200, "rolling": {"count": 200,
    ...               "accuracy": 0.912345, "f1": 0.8}, "groups": {"rolling": {}}},
    ...           "4/shadow": {"estimated": {"events": 900, "f1": {"value": 0.61234,
    ...               "low": 0.58, "high": 0.64}, "accuracy": None}}}}
    >>> drift = {"features": {"champion": {"age": {"psi": 0.0312345}}}, "scores": {}}
    >>> point = history_point(health, drift, "3")
    >>> point["metrics"]["3/champion"]["accuracy"], point["drift"]["features"]
    (0.9123, {'champion': {'age': {'psi': 0.03123}}})
    >>> est = point["metrics"]["4/shadow"]["estimated"]
    >>> est["f1"], est["f1_low"], est["accuracy"], point["metrics"]["4/shadow"]["labels"]
    (0.6123, 0.58, None, 0)
    """
    metrics: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    for scope, m in (health.get("metrics") or {}).items():
        rolling = m.get("rolling") or {}
        metrics[scope] = {
            "labels": int(m.get("labels") or 0),
            "count": int(rolling.get("count") or 0),
            **{k: _num(rolling.get(k)) for k in _METRICS},
        }
        if m.get("estimated"):
            metrics[scope]["estimated"] = _estimated(m["estimated"])
        fair = (m.get("groups") or {}).get("rolling") or {}
        if fair.get("groups"):
            groups[scope] = {
                "dp_gap": _num(fair.get("dp_gap")),
                "eo_gap": _num(fair.get("eo_gap")),
                "groups": {
                    g: {k: _num(r.get(k)) for k in _GROUP_RATES} for g, r in fair["groups"].items()
                },
            }
    active = [
        {
            "kind": f.get("kind"),
            "detector": f.get("detector"),
            "feature": f.get("feature"),
            "statistic": _num(f.get("statistic")),
            "threshold": _num(f.get("threshold")),
            "version": str((f.get("details") or {}).get("version", "")),
        }
        for f in list(health.get("active") or [])[:MAX_ACTIVE]
    ]
    return {
        "v": POINT_VERSION,
        "at": float(health.get("at") or 0.0),
        "worker": str(health.get("worker") or ""),
        "champion": champion,
        "status": str(health.get("status") or ""),
        "events": int(health.get("events") or 0),
        "labels": int(health.get("labels") or 0),
        "metrics": metrics,
        "groups": groups,
        "drift": {
            "features": {
                variant: {name: _rounded(s) for name, s in feats.items()}
                for variant, feats in (drift.get("features") or {}).items()
            },
            "scores": {scope: _rounded(s) for scope, s in (drift.get("scores") or {}).items()},
            "active": active,
            "counts": {k: int(v) for k, v in (health.get("counts") or {}).items()},
        },
    }


__all__ = ["MAX_ACTIVE", "POINT_VERSION", "history_point"]
