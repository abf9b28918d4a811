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
- :func:`history_point` — one compact point of a model's monitoring timeline.
"""

from __future__ import annotations

from monitoring.alerts import AlertPolicy
from monitoring.challenger import OnlineChallenger
from monitoring.config import MonitorConfig
from monitoring.detectors import ChangeDetector
from monitoring.errors import BatchError, MonitorConfigError, MonitoringError, SnapshotError
from monitoring.findings import FINDING_KINDS, Finding
from monitoring.join import LabelJoin
from monitoring.model_monitor import SNAPSHOT_SCHEMA_VERSION, ModelMonitor
from monitoring.retrain_policy import RetrainPolicy, RetrainRequestDecision
from monitoring.sequential import PairedMSPRT
from monitoring.slices import SliceCounter, Slices
from monitoring.state import (
    AlertSink,
    DriftMonitor,
    InMemoryAlertSink,
    InMemoryStateStore,
    StateStore,
    load_state,
    save_state,
)
from monitoring.timeline import history_point

__all__ = [
    "FINDING_KINDS",
    "SNAPSHOT_SCHEMA_VERSION",
    "AlertPolicy",
    "AlertSink",
    "BatchError",
    "ChangeDetector",
    "DriftMonitor",
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
    "RetrainPolicy",
    "RetrainRequestDecision",
    "SliceCounter",
    "Slices",
    "SnapshotError",
    "StateStore",
    "history_point",
    "load_state",
    "save_state",
]
