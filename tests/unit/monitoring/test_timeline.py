"""Drift statistics of the last closed windows and the compact timeline point built from them."""

from __future__ import annotations

import numpy as np
import orjson

from monitoring import ModelMonitor, MonitorConfig, history_point
from tests.unit.monitoring.conftest import BATCH, Stream

ROWS = 6 * BATCH


def _feed(mon: ModelMonitor, stream: Stream, shift: float) -> None:
    x, p, pred = stream.scored()
    x = x[:ROWS].copy()
    x[:, 0] += shift  # the first numeric feature moves
    version = stream.card.version
    groups = np.array(["<40", "40-59", "60+"], dtype=object)[np.arange(ROWS) % 3]
    for s, num, cat in stream.batches(x, stream.live.categorical[:ROWS]):
        sl = slice(s, s + BATCH)
        mon.observe_batch(num, cat, p[sl], version, "champion")
        mon.observe_labels(stream.live.y[sl], pred[sl], p[sl], groups[sl], version, "champion")


def test_drift_statistics_hold_the_last_closed_window(agrawal_stream: Stream) -> None:
    card = agrawal_stream.card
    first = agrawal_stream.live.numeric_names[0]
    mon = ModelMonitor(card, MonitorConfig(window=500))
    assert mon.drift_statistics() == {"features": {}, "scores": {}}
    _feed(mon, agrawal_stream, shift=0.0)
    calm = mon.drift_statistics()
    assert set(calm["features"]["champion"]) == {f.name for f in card.features}
    assert calm["features"]["champion"][first]["psi"] < 0.1
    assert f"{card.version}/champion" in calm["scores"]

    drifted = ModelMonitor(card, MonitorConfig(window=500))
    spread = float(np.nanstd(agrawal_stream.live.numeric[:, 0]))
    _feed(drifted, agrawal_stream, shift=3 * spread)
    stats = drifted.drift_statistics()["features"]["champion"][first]
    assert stats["psi"] > 0.5 and stats["ks_pvalue"] < 1e-6

    # not part of the snapshot: a restored monitor waits for its next window
    again = ModelMonitor(card, MonitorConfig(window=500))
    again.restore(drifted.snapshot())
    assert again.drift_statistics() == {"features": {}, "scores": {}}
    assert again.health() == drifted.health()


def test_history_point_is_compact_and_keeps_metrics_groups_and_drift(
    agrawal_stream: Stream,
) -> None:
    mon = ModelMonitor(agrawal_stream.card, MonitorConfig(window=500, fairness_min_group=10))
    _feed(mon, agrawal_stream, shift=0.0)
    health = {**mon.health(), "worker": "w1", "at": 1_790_000_000.5}
    point = history_point(health, mon.drift_statistics(), champion="7")
    raw = orjson.dumps(point)
    assert len(raw) < 4096, len(raw)
    assert orjson.loads(raw) == point
    scope = f"{agrawal_stream.card.version}/champion"
    assert (point["v"], point["at"], point["worker"], point["champion"]) == (
        1,
        1_790_000_000.5,
        "w1",
        "7",
    )
    m = point["metrics"][scope]
    assert m["labels"] == ROWS and 0.5 < m["accuracy"] <= 1.0
    assert m["accuracy"] == float(f"{m['accuracy']:.4g}"), "floats are rounded"
    assert set(point["groups"][scope]["groups"]) == {"<40", "40-59", "60+"}
    assert point["drift"]["features"]["champion"], "feature drift statistics are kept"
    assert point["drift"]["counts"] == health["counts"]
