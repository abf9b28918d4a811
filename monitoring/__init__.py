"""Monitoring as a pure library: River drift detectors, online metrics, alert policy.

Nothing here imports Faust, Kafka or Redis clients; functions take and return plain values
(numpy arrays, dicts, dataclasses) and every state is a JSON snapshot.

- :class:`ModelMonitor` — all monitors of one model, built from its card;
- :class:`MonitorConfig` — their settings; :class:`Finding` — what they report;
- :class:`LabelJoin` — late-label join; :class:`AlertPolicy` — dedupe and cooldown;
- :class:`Slices`, :class:`SliceCounter` — metrics per slice of one context attribute, over
  a bounded set of its values;
- :class:`StateStore`, :class:`AlertSink`, :class:`DriftMonitor` — extension points, with
  in-memory implementations for tests;
- :func:`history_point` — one compact point of a model's monitoring timeline;
- :class:`PerformanceEstimator`, :func:`expected_confusion` — performance estimated from
  calibrated scores, before any label (:mod:`monitoring.estimation`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from monitoring.alerts import AlertPolicy
from monitoring.config import MonitorConfig
from monitoring.errors import BatchError, MonitorConfigError, MonitoringError, SnapshotError
from monitoring.findings import FINDING_KINDS, Finding
from monitoring.join import LabelJoin
from monitoring.monitor_snapshot import SNAPSHOT_SCHEMA_VERSION
from monitoring.timeline import history_point

if TYPE_CHECKING:
    from monitoring.challenger import OnlineChallenger
    from monitoring.detectors import ChangeDetector
    from monitoring.estimation import ExpectedConfusion, expected_confusion
    from monitoring.estimator import PerformanceEstimator
    from monitoring.model_monitor import ModelMonitor
    from monitoring.retrain_policy import RetrainPolicy, RetrainRequestDecision
    from monitoring.sequential import PairedMSPRT
    from monitoring.slice_candidates import SliceCounter
    from monitoring.slices import Slices
    from monitoring.state import (
        AlertSink,
        DriftMonitor,
        InMemoryAlertSink,
        InMemoryStateStore,
        StateStore,
        load_state,
        save_state,
    )

# Loaded on first use: the modules imported above need the standard library only, these load
# numpy, scipy, River, orjson or the model card (about a second), which the wire contract and
# the command line must not pay for when they import `monitoring.findings` or `.config`.
_LAZY = {
    "OnlineChallenger": "monitoring.challenger",
    "ChangeDetector": "monitoring.detectors",
    "ExpectedConfusion": "monitoring.estimation",
    "expected_confusion": "monitoring.estimation",
    "PerformanceEstimator": "monitoring.estimator",
    "ModelMonitor": "monitoring.model_monitor",
    "RetrainPolicy": "monitoring.retrain_policy",
    "RetrainRequestDecision": "monitoring.retrain_policy",
    "PairedMSPRT": "monitoring.sequential",
    "SliceCounter": "monitoring.slice_candidates",
    "Slices": "monitoring.slices",
    "AlertSink": "monitoring.state",
    "DriftMonitor": "monitoring.state",
    "InMemoryAlertSink": "monitoring.state",
    "InMemoryStateStore": "monitoring.state",
    "StateStore": "monitoring.state",
    "load_state": "monitoring.state",
    "save_state": "monitoring.state",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'monitoring' has no attribute {name!r}")
    globals()[name] = value = getattr(importlib.import_module(_LAZY[name]), name)
    return value  # kept in the globals: __getattr__ runs once per name


__all__ = [
    "FINDING_KINDS",
    "SNAPSHOT_SCHEMA_VERSION",
    "AlertPolicy",
    "AlertSink",
    "BatchError",
    "ChangeDetector",
    "DriftMonitor",
    "ExpectedConfusion",
    "Finding",
    "InMemoryAlertSink",
    "InMemoryStateStore",
    "LabelJoin",
    "ModelMonitor",
    "MonitorConfig",
    "MonitorConfigError",
    "MonitoringError",
    "OnlineChallenger",
    "PairedMSPRT",
    "PerformanceEstimator",
    "RetrainPolicy",
    "RetrainRequestDecision",
    "SliceCounter",
    "Slices",
    "SnapshotError",
    "StateStore",
    "expected_confusion",
    "history_point",
    "load_state",
    "save_state",
]
