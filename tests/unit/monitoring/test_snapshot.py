"""A monitor restored from its JSON snapshot continues exactly where the original was."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest

from models.card import ModelCard
from monitoring import SNAPSHOT_SCHEMA_VERSION, ModelMonitor, MonitorConfig, SnapshotError
from monitoring.state import InMemoryStateStore, load_state, save_state
from tests.unit.monitoring.conftest import BATCH, Stream


def _feed(mon: ModelMonitor, stream: Stream, x, p, pred, y, groups, lo: int, hi: int) -> list:
    out = []
    for s, num, cat in stream.batches(x[lo:hi]):
        sl = slice(lo + s, lo + s + BATCH)
        v = stream.card.version
        out += [f.to_dict() for f in mon.observe_batch(num, cat, p[sl], v, "champion")]
        out += [f.to_dict() for f in mon.observe_batch(num, cat, p[sl], v, "shadow")]
        out += [
            f.to_dict()
            for f in mon.observe_labels(y[sl], pred[sl], p[sl], groups[sl], v, "champion")
        ]
    return out


def test_round_trip_through_json_continues_identically(
    hyperplane: Stream, grouped_card: ModelCard
) -> None:
    x = hyperplane.live.numeric.copy()
    x[6_000:, 2] += 0.2  # a drift alerted before the snapshot
    x[16_000:, 9] -= 0.2  # and one after
    _, p, pred = hyperplane.scored(x)
    y = hyperplane.live.y.copy()
    y[14_000:] = 1 - y[14_000:]  # concept drift after the snapshot
    groups = np.where(np.arange(x.shape[0]) % 3 == 0, "a", "b").astype(object)
    cfg = MonitorConfig(window=1000)
    original = ModelMonitor(grouped_card, cfg)
    before = _feed(original, hyperplane, x, p, pred, y, groups, 0, 10_240)
    assert any(f["kind"] == "data_drift" and f["feature"] == "x2" for f in before)

    raw = orjson.dumps(original.snapshot())
    state = orjson.loads(raw)
    assert state["schema_version"] == SNAPSHOT_SCHEMA_VERSION
    restored = ModelMonitor(grouped_card, cfg)
    restored.restore(state)
    assert restored.metrics() == original.metrics()
    assert restored.health() == original.health()
    assert restored.health()["last"]["data_drift"]["feature"] == "x2"
    assert restored.health()["status"] == "alerting"
    assert orjson.dumps(restored.snapshot()) == raw

    after_original = _feed(original, hyperplane, x, p, pred, y, groups, 10_240, 30_208)
    after_restored = _feed(restored, hyperplane, x, p, pred, y, groups, 10_240, 30_208)
    assert after_restored == after_original
    kinds = {(f["kind"], f["feature"]) for f in after_original}
    assert {("data_drift", "x9"), ("concept_drift", None)} <= kinds
    assert restored.metrics() == original.metrics()
    assert restored.health() == original.health()


def test_snapshot_goes_through_a_state_store(hyperplane: Stream) -> None:
    mon = ModelMonitor(hyperplane.card)
    x, p, pred = hyperplane.scored()
    for s, num, cat in hyperplane.batches(x[:3072]):
        mon.observe_batch(num, cat, p[s : s + BATCH], "v1", "champion")
    mon.observe_labels(hyperplane.live.y[:500], pred[:500], p[:500], None, "v1", "champion")
    store = InMemoryStateStore()
    asyncio.run(save_state(store, "driftline:{hp}:state", mon.snapshot()))
    state = asyncio.run(load_state(store, "driftline:{hp}:state"))
    assert state is not None
    twin = ModelMonitor(hyperplane.card)
    twin.restore(state)
    assert twin.health() == mon.health()


def test_a_changed_detector_setting_restarts_only_that_detector(hyperplane: Stream) -> None:
    mon = ModelMonitor(hyperplane.card)
    x, p, _ = hyperplane.scored()
    for s, num, cat in hyperplane.batches(x[:3072]):
        mon.observe_batch(num, cat, p[s : s + BATCH], "v1", "champion")
    twin = ModelMonitor(hyperplane.card, MonitorConfig(stream_detector="pagehinkley"))
    twin.restore(orjson.loads(orjson.dumps(mon.snapshot())))
    assert twin.health()["events"] == 3072


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"schema_version": 99}, "schema_version"),
        ({"model": "other"}, "model"),
        ({"features": {"numeric": ["a"], "categorical": []}}, "feature schema"),
        ({"label_state": {"v/champion": {"labels": 1}}}, "malformed"),
        ({"config": {"ks_bins": 50}}, "bins"),
    ],
)
def test_incompatible_snapshots_are_refused_and_leave_the_monitor_alone(
    hyperplane: Stream, change: dict[str, object], words: str
) -> None:
    mon = ModelMonitor(hyperplane.card)
    x, p, _ = hyperplane.scored()
    for s, num, cat in hyperplane.batches(x[:1024]):
        mon.observe_batch(num, cat, p[s : s + BATCH], "v1", "champion")
    state = {**mon.snapshot(), **change}
    before = mon.health()
    with pytest.raises(SnapshotError, match=words):
        mon.restore(state)
    assert mon.health() == before
