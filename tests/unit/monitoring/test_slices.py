"""Slices: the bounded top-N table, per-slice metrics, and what the monitors show of them."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from models.report import render_report
from monitoring import (
    BatchError,
    ModelMonitor,
    MonitorConfig,
    MonitorConfigError,
    SliceCounter,
    Slices,
)
from monitoring.slices import MAX_VALUE_CHARS, NONE, OTHER, slice_values
from streams.monitors.runtime import entry_lines
from streams.ops.quality_metrics import monitor_families
from streams.scoring.batch import Scored
from tests.unit.monitoring.conftest import Stream

HEAVY = {"north": 0.3, "south": 0.2, "east": 0.1}  # shares of the events; the rest is a tail


def _stream(n: int, seed: int = 0, tail: str = "user") -> list[str | None]:
    """Three heavy values, a tail of (almost) all-distinct values, and 5 % missing."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    out: list[str | None] = []
    edges = np.cumsum(list(HEAVY.values()))
    for i, x in enumerate(u.tolist()):
        k = int(np.searchsorted(edges, x, side="right"))
        if k < len(HEAVY):
            out.append(list(HEAVY)[k])
        elif x > 0.95:
            out.append(None if i % 2 else "")
        else:
            out.append(f"{tail}-{seed}-{i}")
    return out


def _labels(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int64)
    y_pred = np.where(rng.random(n) < 0.8, y, 1 - y).astype(np.int64)
    return y, y_pred


def _rates(y: np.ndarray, y_pred: np.ndarray) -> tuple[int, float | None, float | None]:
    tp = int(np.sum((y == 1) & (y_pred == 1)))
    den = int(y.sum() + y_pred.sum())
    acc = float(np.mean(y == y_pred)) if y.size else None
    return int(y.size), acc, (2 * tp / den if den else None)


# ------------------------------------------------------------------ the table
def test_the_table_stays_bounded_and_finds_the_heavy_values_among_a_million_distinct() -> None:
    counter = SliceCounter(top=3)
    truth: dict[str, int] = {}
    present = 0
    for b in range(250):  # 1,000,000 events, about 350,000 distinct values
        batch = _stream(4000, seed=b)
        counter.assign(batch)
        assert len(counter.values) <= counter.capacity == 12
        present += sum(1 for v in batch if v)
        for v in batch:
            if v in HEAVY:
                truth[v] = truth.get(v, 0) + 1
    assert [counter.values[s] for s in counter.ranked()] == list(HEAVY)
    bound = counter.seen / counter.capacity  # space-saving: over-estimated by at most this
    for slot in counter.ranked():
        value = counter.values[slot]
        assert truth[value] <= counter.counts[slot] <= truth[value] + bound
        assert counter.counts[slot] - counter.errors[slot] <= truth[value]
    assert counter.seen == present
    snap = counter.snapshot()
    assert len(orjson.dumps(snap)) < 2000  # a few dozen values, whatever the attribute holds


def test_a_value_that_grows_late_gets_its_own_slice() -> None:
    counter = SliceCounter(top=2)
    for b in range(20):  # eight values fill the table first
        counter.assign([f"early-{i % 8}" for i in range(b, b + 400)])
    assert len(counter.values) == counter.capacity == 8
    for _ in range(10):  # a new one takes over
        counter.assign(["late"] * 800 + [f"early-{i % 8}" for i in range(200)])
    shown = [counter.values[s] for s in counter.ranked()]
    assert shown[0] == "late"


def test_missing_reserved_and_untracked_values_have_their_columns() -> None:
    counter = SliceCounter(top=1, capacity=1)
    where = counter.assign(["a", "a", None, "", NONE, OTHER, "b"])
    assert where.columns.tolist() == [2, 2, 1, 1, 1, 0, 0]  # a, a, none x3, other x2
    assert counter.values == ["a"]  # "(other)" is never a candidate, "b" lost to "a"
    assert counter.seen == 4  # present values: a, a, (other), b
    assert where.evicted == []
    assert counter.assign([], count=True).ids.size == 0


def test_slice_values_are_text_cut_short() -> None:
    context = [
        {"r": "x" * 500},
        {"r": False},
        {"r": 2.5},
        {"r": None},
        {},
        None,
        {"r": "north"},
    ]
    got = slice_values(context, "r")
    assert got == ["x" * MAX_VALUE_CHARS, "false", "2.5", "", "", "", "north"]
    assert slice_values(None, "r") is None


# ------------------------------------------------------------------ per-slice metrics
def test_slice_counts_add_up_and_match_the_events_of_each_slice() -> None:
    slices = Slices("region", top=3, rolling_window=5000)
    values = _stream(20_000, seed=4)
    y, y_pred = _labels(20_000)
    for s in range(0, 20_000, 500):
        slices.observe("1/champion", values[s : s + 500], y[s : s + 500], y_pred[s : s + 500], True)
    summary = slices.summary("1/champion")
    assert summary["by"] == "region"
    assert list(summary["values"]) == [*HEAVY, OTHER, NONE]
    arr = np.array(values, dtype=object)
    for name in HEAVY:  # candidates from their first batch on: their counts are exact
        mask = arr == name
        got = summary["values"][name]["cumulative"]
        count, acc, f1 = _rates(y[mask], y_pred[mask])
        assert got["count"] == count
        assert got["accuracy"] == pytest.approx(acc) and got["f1"] == pytest.approx(f1)
        last = mask[-5000:]
        roll = summary["values"][name]["rolling"]
        count, acc, f1 = _rates(y[-5000:][last], y_pred[-5000:][last])
        assert roll["count"] == count and roll["accuracy"] == pytest.approx(acc)
    none = np.array([v is None or v == "" for v in values])
    assert summary["values"][NONE]["cumulative"]["count"] == int(none.sum())
    for window, total in (("cumulative", 20_000), ("rolling", 5000)):
        counted = sum(m[window]["count"] for m in summary["values"].values())
        assert counted == total, window


def test_a_replaced_candidate_s_counts_go_to_other() -> None:
    slices = Slices("r", top=1, rolling_window=100)
    slices.counter = SliceCounter(top=1, capacity=1)
    ones = np.ones(10, dtype=np.int64)
    slices.observe("1/champion", ["a"] * 10, ones, ones, True)
    slices.observe("2/shadow", ["a"] * 10, ones, ones, False)  # counted once: a shadow
    assert slices.counter.counts[0] == 10
    slices.observe("1/champion", ["b"] * 30, ones.repeat(3), 1 - ones.repeat(3), True)
    for scope, other in (("1/champion", 40), ("2/shadow", 10)):
        values = slices.summary(scope)["values"]
        assert values[OTHER]["cumulative"]["count"] == other - ("b" in values) * 30
    champion = slices.summary("1/champion")["values"]
    assert list(champion) == ["b", OTHER, NONE]
    assert champion["b"]["cumulative"] == {"count": 30, "accuracy": 0.0, "f1": 0.0}
    assert champion[OTHER]["cumulative"] == {"count": 10, "accuracy": 1.0, "f1": 1.0}
    assert champion[OTHER]["rolling"]["count"] == 10  # a's events, no candidate's now
    assert champion[NONE]["rolling"] == {"count": 0, "accuracy": None, "f1": None}


# ------------------------------------------------------------------ ModelMonitor
def _feed(mon: ModelMonitor, version: str, values: list[str | None], lo: int, hi: int) -> None:
    y, y_pred = _labels(len(values))
    p = np.where(y_pred == 1, 0.8, 0.2)
    for s in range(lo, hi, 400):
        sl = slice(s, min(s + 400, hi))
        for variant in ("champion", "shadow"):
            mon.observe_labels(y[sl], y_pred[sl], p[sl], None, version, variant, values[sl])


def test_the_monitor_shows_slices_in_health_and_metrics(hyperplane: Stream) -> None:
    cfg = MonitorConfig(slice_by="region", slice_top=2, rolling_window=1000)
    mon = ModelMonitor(hyperplane.card, cfg)
    version = hyperplane.card.version
    context = [{"region": v} if v else None for v in _stream(6000, seed=2)]
    _feed(mon, version, mon.slices_of(context) or [], 0, 6000)
    health = mon.health()
    assert health["slices"]["by"] == "region" and health["slices"]["top"] == 2
    assert health["slices"]["seen"] == sum(c is not None for c in context)  # champion only
    assert health["slices"]["candidates"] <= 8
    for variant in ("champion", "shadow"):
        values = health["metrics"][f"{version}/{variant}"]["slices"]["values"]
        assert list(values) == ["north", "south", OTHER, NONE]
        assert sum(v["cumulative"]["count"] for v in values.values()) == 6000
        assert sum(v["rolling"]["count"] for v in values.values()) == 1000
    one = np.ones(2, dtype=np.int64)
    with pytest.raises(BatchError, match="slices"):
        mon.observe_labels(one, one, one * 0.9, None, version, "champion", ["a"])
    plain = ModelMonitor(hyperplane.card)
    assert plain.slices_of(context) is None
    assert plain.health()["slices"] is None


def test_snapshot_round_trip_continues_identically(hyperplane: Stream) -> None:
    cfg = MonitorConfig(slice_by="region", slice_top=3, rolling_window=500)
    version = hyperplane.card.version
    values: list[str | None] = _stream(12_000, seed=7)
    original = ModelMonitor(hyperplane.card, cfg)
    _feed(original, version, values, 0, 6000)
    raw = orjson.dumps(original.snapshot())
    restored = ModelMonitor(hyperplane.card, cfg)
    restored.restore(orjson.loads(raw))
    assert orjson.dumps(restored.snapshot()) == raw
    assert restored.health() == original.health()
    _feed(original, version, values, 6000, 12_000)
    _feed(restored, version, values, 6000, 12_000)
    assert restored.metrics() == original.metrics()
    assert orjson.dumps(restored.snapshot()) == orjson.dumps(original.snapshot())


def test_an_old_snapshot_without_slices_restores_with_empty_slices(hyperplane: Stream) -> None:
    version = hyperplane.card.version
    values: list[str | None] = _stream(2000, seed=3)
    old = ModelMonitor(hyperplane.card, MonitorConfig(rolling_window=500))
    _feed(old, version, values, 0, 2000)
    state = orjson.loads(orjson.dumps(old.snapshot()))
    del state["slices"]  # as written before slices existed
    state["config"].pop("slice_by"), state["config"].pop("slice_top")
    mon = ModelMonitor(hyperplane.card, MonitorConfig(slice_by="region", rolling_window=500))
    mon.restore(state)
    assert mon.labels == old.labels == 4000
    champion = mon.metrics()[f"{version}/champion"]
    assert champion["cumulative"] == old.metrics()[f"{version}/champion"]["cumulative"]
    assert all(v["cumulative"]["count"] == 0 for v in champion["slices"]["values"].values())
    assert mon.health()["slices"]["candidates"] == 0
    _feed(mon, version, values, 0, 2000)  # and slices count from now on
    counted = mon.metrics()[f"{version}/champion"]["slices"]["values"]
    assert sum(v["cumulative"]["count"] for v in counted.values()) == 2000


def test_a_snapshot_of_another_attribute_or_size_restores_without_slices(
    hyperplane: Stream,
) -> None:
    version = hyperplane.card.version
    mon = ModelMonitor(hyperplane.card, MonitorConfig(slice_by="region"))
    _feed(mon, version, _stream(2000), 0, 2000)
    state = orjson.loads(orjson.dumps(mon.snapshot()))
    for cfg in (MonitorConfig(slice_by="tier"), MonitorConfig(slice_by="region", slice_top=4)):
        other = ModelMonitor(hyperplane.card, cfg)
        other.restore(state)
        assert other.labels == 4000 and other.health()["slices"]["candidates"] == 0
    unsliced = ModelMonitor(hyperplane.card)
    unsliced.restore(state)
    assert unsliced.snapshot()["slices"] is None


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"slice_by": 3}, "a string or null"),
        ({"slice_by": " "}, "must name a context attribute"),
        ({"slice_top": 0}, "must be >= 1"),
        ({"slice_top": 1000}, "must be <= 100"),
    ],
)
def test_slice_settings_are_validated(values: dict[str, Any], words: str) -> None:
    with pytest.raises(MonitorConfigError, match=words) as info:
        MonitorConfig.from_mapping(values)
    assert info.value.option == next(iter(values))
    cfg = MonitorConfig.from_mapping({"slice_by": "region", "slice_top": 5})
    assert (cfg.slice_by, cfg.slice_top) == ("region", 5)
    assert MonitorConfig.from_mapping(cfg.to_dict()) == cfg
    assert (MonitorConfig().slice_by, MonitorConfig().slice_top) == (None, 10)


# ------------------------------------------------------------------ what shows them
def test_the_slice_value_travels_in_the_join_entry() -> None:
    n = 4
    part = Scored(
        "champion",
        "3",
        [f"e{i}" for i in range(n)],
        [{"x": i} for i in range(n)],
        np.array([1, 0, 1, 0], dtype=np.int64),
        np.array([0.5, 0.25, 0.75, 0.125], dtype=np.float32),
    )
    values = ['he said "a,b"', "", "north", "north"]
    for groups in (None, ["g", "", "g", "h"]):
        got = [orjson.loads(line) for line in entry_lines(part, 1, groups, values)]
        assert [e["p"][0][5] for e in got] == values
        assert [e["p"][0][4] for e in got] == (groups or [None] * n)
        assert got[0]["f"] == {"x": 0} and got[1]["f"] is None
    plain = orjson.loads(entry_lines(part, 0, None)[0])
    assert len(plain["p"][0]) == 5  # without slice_by, entries are as before


def test_prometheus_and_the_report_show_the_slices(hyperplane: Stream) -> None:
    cfg = MonitorConfig(slice_by="region", slice_top=2, rolling_window=1000)
    mon = ModelMonitor(hyperplane.card, cfg)
    version = hyperplane.card.version
    _feed(mon, version, _stream(4000, seed=5), 0, 4000)
    health = mon.health()
    families = {f.name: f for f in monitor_families("m", health, {})}
    samples = families["driftline_slice_metric"].samples
    assert {s.labels["slice"] for s in samples} == {"north", "south", OTHER, NONE}
    assert {s.labels["attribute"] for s in samples} == {"region"}
    north = {
        (s.labels["variant"], s.labels["window"], s.labels["metric"]): s.value
        for s in samples
        if s.labels["slice"] == "north"
    }
    got = health["metrics"][f"{version}/champion"]["slices"]["values"]["north"]
    assert north[("champion", "cumulative", "f1")] == pytest.approx(got["cumulative"]["f1"])
    assert north[("champion", "rolling", "count")] == got["rolling"]["count"]
    unsliced = ModelMonitor(hyperplane.card).health()
    assert "driftline_slice_metric" not in {f.name for f in monitor_families("m", unsliced, {})}

    slices = {s: m["slices"] for s, m in health["metrics"].items()}
    page = render_report([hyperplane.card], None, slices=slices)
    assert "Slices by region" in page and "<td>(other)</td>" in page
    assert "<td>north</td>" in page
    assert "Slices by" not in render_report([hyperplane.card], None)
