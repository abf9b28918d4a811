"""Extension points and the whole path: monitor → policy → sink, with a state store."""

from __future__ import annotations

import asyncio

import pytest

from monitoring import (
    AlertPolicy,
    AlertSink,
    InMemoryAlertSink,
    InMemoryStateStore,
    ModelMonitor,
    MonitorConfig,
    SnapshotError,
    StateStore,
    load_state,
    save_state,
)
from tests.unit.monitoring.conftest import BATCH, Stream


def test_in_memory_helpers_implement_the_protocols() -> None:
    assert isinstance(InMemoryStateStore(), StateStore)
    assert isinstance(InMemoryAlertSink(), AlertSink)


def test_load_state_refuses_bytes_that_are_not_a_json_object() -> None:
    store = InMemoryStateStore()
    assert asyncio.run(load_state(store, "missing")) is None
    asyncio.run(store.save("k", b"\x80not json"))
    with pytest.raises(SnapshotError, match="not valid JSON"):
        asyncio.run(load_state(store, "k"))
    asyncio.run(store.save("k", b"[1, 2]"))
    with pytest.raises(SnapshotError, match="not a JSON object"):
        asyncio.run(load_state(store, "k"))


def test_one_drift_becomes_one_alert_per_feature_end_to_end(hyperplane: Stream) -> None:
    x = hyperplane.live.numeric.copy()
    x[10_000:, 4] += 0.3
    _, p, _ = hyperplane.scored(x)
    mon = ModelMonitor(hyperplane.card, MonitorConfig(window=1000))
    policy, sink, store = AlertPolicy(cooldown_s=3600.0), InMemoryAlertSink(), InMemoryStateStore()
    findings = 0
    for s, num, cat in hyperplane.batches(x):
        now = s / 1000.0  # 1,000 events per second
        found = mon.observe_batch(num, cat, p[s : s + BATCH], "v1", "champion")
        findings += len(found)
        for a in policy.decide("hp", "v1", found, now):
            asyncio.run(sink.emit([{**a.to_dict(), "model": "hp", "version": "v1", "ts": now}]))
        asyncio.run(
            save_state(store, "hp", {"monitor": mon.snapshot(), "policy": policy.snapshot()})
        )
    keys = [(a["kind"], a["feature"]) for a in sink.alerts]
    assert sorted(keys) == sorted(set(keys))  # one alert per (kind, feature)
    assert ("data_drift", "x4") in keys
    assert findings > 3 * len(sink.alerts)
    state = asyncio.run(load_state(store, "hp"))
    assert state is not None
    restored = AlertPolicy(cooldown_s=3600.0)
    restored.restore(state["policy"])
    again = mon.observe_batch(
        {n: x[-BATCH:, j] for j, n in enumerate(hyperplane.live.numeric_names)},
        {},
        p[-BATCH:],
        "v1",
        "champion",
    )
    assert restored.decide("hp", "v1", again, now=41.0) == []
    assert mon.health()["status"] == "alerting"
