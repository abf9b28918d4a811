"""Prometheus metrics of a scoring worker, in a registry of its own.

Three sources feed one :class:`prometheus_client.CollectorRegistry` per worker (never the
global one, so a test can build several):

- every committed batch (:meth:`WorkerMetrics.on_batch`): events in, predictions out, dead
  letters, batch size and duration, and the end-to-end latency of every prediction (event
  produced → scored). Latencies are counted into the histogram's buckets with numpy, one
  call per batch, not one ``observe`` per event;
- a :class:`Probe` read at scrape time: the versions served, swaps, consumer lag per
  partition, readiness and the watchdog's view;
- the model's monitors, when this worker owns them (:func:`monitor_families`): rolling and
  cumulative metrics per version and variant, group rates and fairness gaps, drift
  statistics of the last closed window, findings and active conditions by kind, and, with
  ``slice_by`` set, count, accuracy and F1 per slice (``driftline_slice_metric``).

Metric names start with ``driftline_``; :func:`series_names` lists every series a worker
can export (the dashboard test checks its queries against it), but for
``driftline_slice_metric``, which only monitors configured with ``slice_by`` export.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring.findings import FINDING_KINDS
from streams.ops.quality_metrics import counter_family, gauge_family, monitor_families
from streams.scoring.inflight import BatchStats

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_SIZE_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
BATCH_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


@dataclass(frozen=True)
class Probe:
    """The worker's state at scrape time (built by the caller, read once per scrape)."""

    versions: Mapping[str, str | None] = field(default_factory=dict)  # role -> version
    routing: str = "off"
    swaps: int = 0
    topic: str = "events"
    lag: Mapping[int, int | None] = field(default_factory=dict)  # assigned partition -> lag
    last_batch_at: float | None = None
    ready: bool = False
    stalled_s: float = 0.0
    stuck: bool = False
    monitor_owner: bool | None = None  # None: this worker runs no monitors
    monitor_degraded: bool = False
    monitor: Sequence[Metric] = ()  # quality families, when this worker owns the monitors


class BulkHistogram(Collector):
    """A histogram fed a whole vector at a time (numpy bucketing, one lock per batch)."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], labels: Mapping[str, str]
    ) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = np.asarray(buckets, dtype=np.float64)
        self.labels = dict(labels)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # last: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: Sequence[float] | np.ndarray[Any, Any]) -> None:
        """Count every value (negative ones, from clock skew, count as 0)."""
        v = np.maximum(np.asarray(values, dtype=np.float64), 0.0)
        if not v.size:
            return
        added = np.bincount(
            np.searchsorted(self.bounds, v, side="left"), minlength=self._counts.size
        )
        with self._lock:
            self._counts += added
            self._sum += float(v.sum())

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=list(self.labels))

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        family = self._family()
        les = [str(b) for b in self.bounds.tolist()] + ["+Inf"]
        family.add_metric(
            list(self.labels.values()), list(zip(les, cumulative, strict=True)), total
        )
        return [family]


class _ProbeCollector(Collector):
    """The gauges read from a :class:`Probe` at scrape time."""

    def __init__(self, model: str, probe: Callable[[], Probe]) -> None:
        self.model = model
        self.probe = probe

    def _families(self, p: Probe | None) -> list[Metric]:
        m = self.model
        info = gauge_family(
            "driftline_model_version_info",
            "1 for each version served now, by role (champion, challenger) and routing.",
            ["model", "role", "version", "routing"],
        )
        swaps = counter_family(
            "driftline_model_swaps", "Model set hot swaps since start.", ["model"]
        )
        lag = gauge_family(
            "driftline_consumer_lag_events",
            "Events not yet consumed per assigned partition (highwater - position).",
            ["model", "topic", "partition"],
        )
        parts = gauge_family(
            "driftline_assigned_partitions", "Events partitions this worker scores.", ["model"]
        )
        last = gauge_family(
            "driftline_last_batch_timestamp_seconds",
            "Unix time of the last committed batch.",
            ["model"],
        )
        ready = gauge_family("driftline_worker_ready", "1 when the worker is ready.", ["model"])
        stalled = gauge_family(
            "driftline_worker_stalled_seconds",
            "How long events have waited without a committed batch.",
            ["model"],
        )
        stuck = gauge_family("driftline_worker_stuck", "1 when the watchdog says stuck.", ["model"])
        owner = gauge_family(
            "driftline_monitor_owner", "1 when this worker runs the model's monitors.", ["model"]
        )
        degraded = gauge_family(
            "driftline_monitor_degraded", "1 when monitoring cannot reach Redis.", ["model"]
        )
        out: list[Metric] = [info, swaps, lag, parts, last, ready, stalled, stuck, owner, degraded]
        if p is None:
            return [*out, *monitor_families(m, {}, {})]
        for role, version in p.versions.items():
            if version is not None:
                info.add_metric([m, role, version, p.routing], 1.0)
        swaps.add_metric([m], float(p.swaps))
        for partition, value in sorted(p.lag.items()):
            if value is not None:
                lag.add_metric([m, p.topic, str(partition)], float(value))
        parts.add_metric([m], float(len(p.lag)))
        if p.last_batch_at is not None:
            last.add_metric([m], p.last_batch_at)
        ready.add_metric([m], float(p.ready))
        stalled.add_metric([m], p.stalled_s)
        stuck.add_metric([m], float(p.stuck))
        if p.monitor_owner is not None:
            owner.add_metric([m], float(p.monitor_owner))
            degraded.add_metric([m], float(p.monitor_degraded))
        return [*out, *p.monitor]

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self.probe())


class WorkerMetrics:
    """The metrics of one scoring worker for ``model`` (see the module docstring)."""

    def __init__(self, model: str, probe: Callable[[], Probe] = Probe) -> None:
        self.model = model
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry

        self._ours: list[Any] = []  # what series_names() describes

        def counter(name: str, doc: str) -> Any:
            self._ours.append(Counter(name, doc, ["model"], registry=reg))
            return self._ours[-1].labels(model)

        def histogram(name: str, doc: str, buckets: Sequence[float]) -> Any:
            self._ours.append(Histogram(name, doc, ["model"], registry=reg, buckets=buckets))
            return self._ours[-1].labels(model)

        self.events = counter("driftline_events_consumed", "Events consumed (valid or not).")
        self.predictions = counter("driftline_predictions", "Predictions produced (all variants).")
        self.dead_letters = counter("driftline_dead_letters", "Events sent to the DLQ.")
        self.batches = counter("driftline_batches", "Batches scored and committed.")
        self.batch_size = histogram(
            "driftline_batch_size_events", "Events per batch.", BATCH_SIZE_BUCKETS
        )
        self.batch_seconds = histogram(
            "driftline_batch_duration_seconds",
            "Time to score, produce and commit one batch.",
            BATCH_SECONDS_BUCKETS,
        )
        self.alerts = Counter(
            "driftline_alerts",
            "Alerts this process sent, by kind.",
            ["model", "kind"],
            registry=reg,
        )
        # Every kind from 0: a counter that appears at 1 with its first alert has no
        # increase in Prometheus (no earlier sample), and the dashboard's alert panels and
        # annotations, built on increase(), would never show that alert.
        for kind in FINDING_KINDS:
            self.alerts.labels(model, kind)
        self.latency = BulkHistogram(
            "driftline_event_latency_seconds",
            "End-to-end latency of each prediction: event produced -> scored.",
            LATENCY_BUCKETS_S,
            {"model": model},
        )
        probed = _ProbeCollector(model, probe)
        reg.register(self.latency)
        reg.register(probed)
        self._ours += [self.alerts, self.latency, probed]
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)
        self.last_batch_at: float | None = None

    def on_batch(self, stats: BatchStats, now: float) -> None:
        """Count one committed batch (``now``: wall-clock time of the commit)."""
        self.events.inc(stats.events)
        self.predictions.inc(stats.predictions)
        self.dead_letters.inc(stats.dead_letters)
        self.batches.inc()
        self.batch_size.observe(stats.events)
        self.batch_seconds.observe(stats.seconds)
        self.latency.observe_many(np.asarray(stats.latencies_ms, dtype=np.float64) / 1000.0)
        self.last_batch_at = now

    def on_alerts(self, kinds: Iterable[str]) -> None:
        """Count alerts sent (one kind per alert)."""
        for kind in kinds:
            self.alerts.labels(self.model, kind).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def series_names(self) -> set[str]:
        """Every ``driftline_*`` series name this worker can export (with sample suffixes)."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        names: set[str] = set()
        for collector in self._ours:
            for family in collector.describe():
                for suffix in suffixes.get(family.type, ("",)):
                    names.add(family.name + suffix)
        return names


class _Merged(Collector):
    """The families of several registries as one: the same family's samples together, and a
    sample that several give (the process's own metrics, in each model's registry) once."""

    def __init__(self, registries: Sequence[CollectorRegistry]) -> None:
        self.registries = registries

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for registry in self.registries:
            for family in registry.collect():
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key not in seen:
                        seen.add(key)
                        into.samples.append(sample)
        return merged.values()


def render_all(metrics: Sequence[WorkerMetrics]) -> bytes:
    """The Prometheus text exposition of the metrics of every model a worker serves.

    Examples
    --------
    >>> text = render_all([WorkerMetrics("a"), WorkerMetrics("b")]).decode()
    >>> [line for line in text.splitlines() if line.startswith("driftline_batches_total")]
    ['driftline_batches_total{model="a"} 0.0', 'driftline_batches_total{model="b"} 0.0']
    >>> text.count("# TYPE driftline_batches_total counter"), text.count("# TYPE process_cpu")
    (1, 1)
    """
    if len(metrics) == 1:
        return metrics[0].render()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged([m.registry for m in metrics]))
    return generate_latest(registry)


def series_names() -> set[str]:
    """Every ``driftline_*`` series name a worker can export."""
    return WorkerMetrics("any").series_names()


__all__ = [
    "LATENCY_BUCKETS_S",
    "BulkHistogram",
    "Probe",
    "WorkerMetrics",
    "render_all",
    "series_names",
]
