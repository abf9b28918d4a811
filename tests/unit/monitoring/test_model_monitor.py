"""ModelMonitor on seeded synthetic streams: silent when stationary, loud on each kind of change."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from models.card import ModelCard
from monitoring import BatchError, Finding, ModelMonitor, MonitorConfig
from tests.unit.monitoring.conftest import BATCH, Stream

CHANGE = 20_000


def _run(
    mon: ModelMonitor,
    stream: Stream,
    x: np.ndarray,
    p: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    pred: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    cats: np.ndarray | None = None,
    variant: str = "champion",
) -> list[tuple[int, Finding]]:
    """Feed every batch (and its labels, when given); return (batch start, finding)."""
    out: list[tuple[int, Finding]] = []
    version = stream.card.version
    for s, num, cat in stream.batches(x, cats):
        sl = slice(s, s + BATCH)
        out += [(s, f) for f in mon.observe_batch(num, cat, p[sl], version, variant)]
        if labels is not None and pred is not None:
            g = None if groups is None else groups[sl]
            found = mon.observe_labels(labels[sl], pred[sl], p[sl], g, version, variant)
            out += [(s, f) for f in found]
    return out


def test_a_stationary_stream_raises_nothing(hyperplane: Stream) -> None:
    x, p, pred = hyperplane.scored()
    mon = ModelMonitor(hyperplane.card)
    found = _run(mon, hyperplane, x, p, labels=hyperplane.live.y, pred=pred)
    assert found == []
    health = mon.health()
    assert health["status"] == "ok"
    assert health["events"] == health["labels"] == 40_000
    m = mon.metrics()[f"{hyperplane.card.version}/champion"]
    assert m["labels"] == 40_000
    assert m["cumulative"]["f1"] > 0.9


def test_a_shift_in_one_feature_is_data_drift_for_that_feature_only(hyperplane: Stream) -> None:
    x = hyperplane.live.numeric.copy()
    x[CHANGE:, 3] += 0.15  # about half a standard deviation of a uniform feature
    _, p, _ = hyperplane.scored(x)
    mon = ModelMonitor(hyperplane.card)
    found = _run(mon, hyperplane, x, p)
    drift = [(s, f) for s, f in found if f.kind == "data_drift"]
    assert {f.feature for _, f in drift} == {"x3"}
    assert {f.detector for _, f in drift} >= {"psi", "ks", "cusum"}
    first = min(s for s, _ in drift) + BATCH - CHANGE
    assert 0 < first <= 2 * mon.config.window  # within two windows of the change
    cusum = min(s for s, f in drift if f.detector == "cusum") + BATCH - CHANGE
    assert 0 < cusum <= mon.config.window  # before the first window closes
    assert all(s >= CHANGE - BATCH for s, _ in found)
    assert mon.health()["status"] == "alerting"
    assert mon.health()["last"]["data_drift"]["feature"] == "x3"


def test_river_detectors_remain_available(hyperplane: Stream) -> None:
    x = hyperplane.live.numeric.copy()
    x[CHANGE:, 3] += 0.15
    y = hyperplane.live.y.copy()
    w = np.random.default_rng(9).random(x.shape[1])
    y[CHANGE:] = (x[CHANGE:] @ w > 0.5 * w.sum()).astype(np.int64)
    _, p, pred = hyperplane.scored(x)
    config = MonitorConfig(stream_detector="adwin", concept_detectors=("adwin", "ddm"))
    found = _run(ModelMonitor(hyperplane.card, config), hyperplane, x, p, labels=y, pred=pred)
    assert {(f.kind, f.detector) for _, f in found} >= {
        ("data_drift", "adwin"),
        ("concept_drift", "adwin"),
        ("concept_drift", "ddm"),
    }


def test_page_hinkley_can_replace_adwin(hyperplane: Stream) -> None:
    x = hyperplane.live.numeric.copy()
    x[CHANGE:, 7] -= 0.1
    _, p, _ = hyperplane.scored(x)
    mon = ModelMonitor(hyperplane.card, MonitorConfig(stream_detector="pagehinkley"))
    found = _run(mon, hyperplane, x, p)
    assert {(f.detector, f.feature) for _, f in found if f.kind == "data_drift"} >= {
        ("pagehinkley", "x7")
    }
    assert {f.feature for _, f in found if f.kind == "data_drift"} == {"x7"}


def test_shifted_scores_are_prediction_drift(hyperplane: Stream) -> None:
    x, p, _ = hyperplane.scored()
    p = p.copy()
    p[CHANGE:] = np.clip(p[CHANGE:] * 0.6 + 0.35, 0.0, 1.0)  # scores squeezed toward 0.5
    mon = ModelMonitor(hyperplane.card)
    found = _run(mon, hyperplane, x, p)
    kinds = Counter((f.kind, f.detector) for _, f in found)
    assert set(k for k, _ in kinds) == {"prediction_drift"}
    assert ("prediction_drift", "psi") in kinds
    assert min(s for s, _ in found) >= CHANGE - BATCH


def test_drift_is_reported_for_the_champion_only_by_default(hyperplane: Stream) -> None:
    x, p, _ = hyperplane.scored()
    p = p.copy()
    p[CHANGE:] = 1.0 - p[CHANGE:] * 0.5
    quiet = ModelMonitor(hyperplane.card)
    assert _run(quiet, hyperplane, x, p, variant="shadow") == []
    assert quiet.health()["scopes"] == {f"{hyperplane.card.version}/shadow": 40_000}
    loud = ModelMonitor(hyperplane.card, MonitorConfig(drift_all_variants=True))
    found = _run(loud, hyperplane, x, p, variant="shadow")
    assert {f.kind for _, f in found} == {"prediction_drift"}
    assert {f.details["variant"] for _, f in found} == {"shadow"}


def test_a_new_labelling_function_is_concept_drift_and_a_performance_drop(
    hyperplane: Stream,
) -> None:
    x, p, pred = hyperplane.scored()
    y = hyperplane.live.y.copy()
    w = np.random.default_rng(9).random(x.shape[1])
    y[CHANGE:] = (x[CHANGE:] @ w > 0.5 * w.sum()).astype(np.int64)
    mon = ModelMonitor(hyperplane.card)
    found = _run(mon, hyperplane, x, p, labels=y, pred=pred)
    by_kind = {(f.kind, f.detector): s for s, f in reversed(found)}
    assert ("concept_drift", "cusum") in by_kind
    assert ("performance", "f1_drop") in by_kind
    assert all(s >= CHANGE - BATCH for s in by_kind.values())
    assert by_kind[("concept_drift", "cusum")] - CHANGE < 1_000
    perf = next(f for _, f in found if f.kind == "performance")
    assert (
        perf.statistic < perf.threshold == pytest.approx(hyperplane.card.metrics.holdout.f1 - 0.1)
    )
    m = mon.metrics()[f"{hyperplane.card.version}/champion"]
    assert m["rolling"]["f1"] < m["cumulative"]["f1"]


def test_no_performance_verdict_before_min_labels(hyperplane: Stream) -> None:
    _, p, pred = hyperplane.scored()
    mon = ModelMonitor(hyperplane.card, MonitorConfig(min_labels=500))
    wrong = 1 - hyperplane.live.y[:256]
    found = mon.observe_labels(wrong, pred[:256], p[:256], None, "v", "champion")
    assert not [f for f in found if f.kind == "performance"]
    found = mon.observe_labels(wrong, pred[:256], p[:256], None, "v", "champion")
    assert [f.detector for f in found if f.kind == "performance"] == ["f1_drop"]


def test_a_gap_introduced_for_one_group_is_a_fairness_finding(
    hyperplane: Stream, grouped_card: ModelCard
) -> None:
    x, p, pred = hyperplane.scored()
    groups = np.where(np.random.default_rng(4).random(x.shape[0]) < 0.5, "a", "b").astype(object)
    pred = pred.copy()
    hit = (np.arange(x.shape[0]) >= CHANGE) & (groups == "b") & (pred == 1)
    pred[hit & (np.random.default_rng(5).random(x.shape[0]) < 0.6)] = 0
    mon = ModelMonitor(grouped_card)
    found = _run(mon, hyperplane, x, p, labels=hyperplane.live.y, pred=pred, groups=groups)
    fair = [(s, f) for s, f in found if f.kind == "fairness"]
    assert fair
    assert min(s for s, _ in fair) >= CHANGE - BATCH
    assert {f.detector for _, f in fair} == {"dp_gap", "eo_gap"}
    assert {f.feature for _, f in fair} == {"grp"}
    groups_now = mon.metrics()[f"{grouped_card.version}/champion"]["groups"]["rolling"]
    assert groups_now["groups"]["b"]["selection_rate"] < groups_now["groups"]["a"]["selection_rate"]


def test_data_quality_missing_out_of_range_and_unseen(agrawal_stream: Stream) -> None:
    st = agrawal_stream
    x = st.live.numeric.copy()
    cats = st.live.categorical.copy()
    rng = np.random.default_rng(6)
    n = x.shape[0]
    late = np.arange(n) >= 8_000
    names = list(st.live.numeric_names)
    x[late & (rng.random(n) < 0.3), names.index("salary")] = np.nan
    x[late & (rng.random(n) < 0.1), names.index("loan")] *= 10.0
    cats[late & (rng.random(n) < 0.1), list(st.live.categorical_names).index("car")] = "car99"
    _, p, _ = st.scored()
    mon = ModelMonitor(st.card)
    found = _run(mon, st, x, p, cats=cats)
    quality = {(f.detector, f.feature) for s, f in found if f.kind == "data_quality"}
    assert quality == {
        ("missing_rate", "salary"),
        ("out_of_range", "loan"),
        ("out_of_range", "car"),
    }
    assert all(s >= 8_000 - BATCH for s, f in found)
    unseen = next(f for _, f in found if f.feature == "car" and f.kind == "data_quality")
    assert unseen.details["unseen"] == ["car99"]


def test_an_agrawal_stream_with_categorical_and_discrete_features_is_quiet(
    agrawal_stream: Stream,
) -> None:
    x, p, _ = agrawal_stream.scored()
    mon = ModelMonitor(agrawal_stream.card)
    groups = mon.groups_of(
        {n: x[:, j] for j, n in enumerate(agrawal_stream.live.numeric_names)}, {}
    )
    assert groups is not None and set(groups.tolist()) == {"<40", "40-59", "60+"}
    found = _run(mon, agrawal_stream, x, p)
    assert found == []


def test_groups_of_follows_the_sensitive_spec(
    agrawal_stream: Stream, hyperplane: Stream, grouped_card: ModelCard
) -> None:
    mon = ModelMonitor(agrawal_stream.card)
    got = mon.groups_of({"age": np.array([25.0, 45.0, 70.0, np.nan])}, {})
    assert got is not None and got.tolist() == ["<40", "40-59", "60+", ""]
    assert ModelMonitor(hyperplane.card).groups_of({"x0": np.zeros(3)}, {}) is None
    by_column = ModelMonitor(grouped_card).groups_of(
        {}, {"grp": np.array(["a", None, "b"], dtype=object)}
    )
    assert by_column is not None and by_column.tolist() == ["a", "", "b"]


def test_groups_come_from_the_context_and_events_without_one_are_counted(
    hyperplane: Stream, grouped_card: ModelCard
) -> None:
    mon = ModelMonitor(grouped_card)
    x, p, pred = hyperplane.scored()
    num = {n: x[:4, j] for j, n in enumerate(hyperplane.live.numeric_names)}
    context = [{"grp": "a", "region": "n"}, None, {"region": "s"}, {"grp": "b"}]
    groups = mon.groups_of(num, {}, context)
    assert groups is not None and groups.tolist() == ["a", "", "", "b"]
    mon.observe_batch(num, {}, p[:4], "v", "champion", groups)
    mon.observe_batch(num, {}, p[:4], "w", "shadow", groups)  # the same events again
    mon.observe_labels(hyperplane.live.y[:4], pred[:4], p[:4], groups, "v", "champion")
    mon.observe_labels(hyperplane.live.y[:4], pred[:4], p[:4], groups, "w", "shadow")
    assert mon.health()["ungrouped"] == {"events": 2, "labels": 2}
    assert mon.health()["sensitive"] == "grp"
    again = ModelMonitor(grouped_card)
    again.restore(mon.snapshot())
    assert again.health()["ungrouped"] == {"events": 2, "labels": 2}
    plain = ModelMonitor(hyperplane.card)
    assert plain.groups_of(num, {}, context) is None
    assert plain.health()["sensitive"] is None


def test_inconsistent_batches_are_refused(hyperplane: Stream) -> None:
    mon = ModelMonitor(hyperplane.card)
    with pytest.raises(BatchError, match="x0"):
        mon.observe_batch({"x0": np.zeros(3)}, {}, np.zeros(4), "v", "champion")
    with pytest.raises(BatchError, match="length"):
        mon.observe_labels(np.zeros(3, int), np.zeros(2, int), np.zeros(3), None, "v", "c")
    with pytest.raises(BatchError, match="0 or 1"):
        mon.observe_labels(np.full(2, 2), np.zeros(2, int), np.zeros(2), None, "v", "c")


def test_health_is_degraded_on_data_quality_alone(hyperplane: Stream) -> None:
    mon = ModelMonitor(hyperplane.card, MonitorConfig(window=500))
    x, p, _ = hyperplane.scored()
    num = {n: x[:500, j].copy() for j, n in enumerate(hyperplane.live.numeric_names)}
    num["x5"][:200] = np.nan
    found = mon.observe_batch(num, {}, p[:500], "v", "champion")
    assert {(f.kind, f.feature) for f in found} == {("data_quality", "x5")}
    assert mon.health()["status"] == "degraded"
    num["x5"] = x[500:1000, 5]
    clean = {n: x[500:1000, j] for j, n in enumerate(hyperplane.live.numeric_names)}
    assert mon.observe_batch(clean, {}, p[500:1000], "v", "champion") == []
    assert mon.health()["status"] == "ok"
