"""Mergeable batch summaries: merge equals concatenation, JSON round trips, and a monitor fed
by summaries (however the stream was split among workers) finds what it found from batches."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from monitoring import BatchError, Finding, ModelMonitor, MonitorConfig
from monitoring.summariser import Summariser
from monitoring.summary import BatchSummary, FeatureCounts, merge_summaries
from tests.unit.monitoring.conftest import BATCH, Stream

CHANGE = 20_000


def _columns(st: Stream, x: np.ndarray, cats: np.ndarray, sl: slice) -> tuple[dict, dict]:
    num = {n: x[sl, j] for j, n in enumerate(st.live.numeric_names)}
    cat = {n: cats[sl, j] for j, n in enumerate(st.live.categorical_names)}
    return num, cat


def _dirty(st: Stream) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agrawal rows with missing values, values beyond the training range, unseen and
    missing categories."""
    x = st.live.numeric.copy()
    cats = st.live.categorical.copy()
    rng = np.random.default_rng(11)
    n = x.shape[0]
    x[rng.random(n) < 0.05, 0] = np.nan
    x[rng.random(n) < 0.05, 1] *= 50.0
    cats[rng.random(n) < 0.05, 0] = "never-seen"
    cats[rng.random(n) < 0.05, 0] = None
    _, p, _ = st.scored()
    return x, cats, p


def _counts_equal(a: FeatureCounts, b: FeatureCounts) -> None:
    for name in ("missing", "out_of_range", "ks", "psi"):
        assert np.array_equal(getattr(a.numeric, name), getattr(b.numeric, name)), name
    assert a.numeric.rows == b.numeric.rows
    assert a.categorical == b.categorical
    assert np.allclose(a.numeric.sums, b.numeric.sums)
    assert np.allclose(a.numeric.squares, b.numeric.squares)
    assert np.allclose(a.normal, b.normal)


def test_the_merge_of_two_summaries_is_the_summary_of_both_batches(agrawal_stream: Stream) -> None:
    st = agrawal_stream
    x, cats, p = _dirty(st)
    make = Summariser(st.card)
    v = st.card.version
    whole = make.summarise(*_columns(st, x, cats, slice(0, 3000)), p[:3000], v, "champion")
    first = make.summarise(*_columns(st, x, cats, slice(0, 1234)), p[:1234], v, "champion")
    rest = make.summarise(*_columns(st, x, cats, slice(1234, 3000)), p[1234:3000], v, "champion")
    merged = first.merge(rest)
    assert merged.rows == whole.rows == 3000
    _counts_equal(merged.features, whole.features)
    _counts_equal(merged.score, whole.score)
    assert whole.features.numeric.missing[0] > 0 and whole.features.numeric.out_of_range[1] > 0
    assert whole.features.categorical[0]["never-seen"] > 0
    assert whole.features.categorical[0][""] > 0  # missing


def test_a_summary_round_trips_through_json_exactly(agrawal_stream: Stream) -> None:
    st = agrawal_stream
    x, cats, p = _dirty(st)
    made = Summariser(st.card).summarise(
        *_columns(st, x, cats, slice(0, 700)), p[:700], "7", "canary"
    )
    back = BatchSummary.from_json(orjson.loads(orjson.dumps(made.to_json())))
    assert back.key == made.key and back.rows == made.rows
    _counts_equal(back.features, made.features)
    assert np.array_equal(back.features.normal, made.features.normal)  # floats exactly
    assert np.array_equal(back.score.numeric.sums, made.score.numeric.sums)


def test_summaries_of_another_version_or_variant_do_not_merge(hyperplane: Stream) -> None:
    st = hyperplane
    x, p, _ = st.scored()
    make = Summariser(st.card)
    num = {n: x[:10, j] for j, n in enumerate(st.live.numeric_names)}
    a = make.summarise(num, {}, p[:10], "1", "champion")
    b = make.summarise(num, {}, p[:10], "1", "shadow")
    with pytest.raises(BatchError, match="cannot merge"):
        a.merge(b)
    assert [s.key for s in merge_summaries([a, b, a])] == [a.key, b.key]
    assert merge_summaries([a, b, a])[0].rows == 20


def _found(found: list[tuple[int, Finding]]) -> dict[tuple[str, str | None, str], int]:
    """The events observed when each (kind, feature, detector) was first found."""
    first: dict[tuple[str, str | None, str], int] = {}
    for events, f in found:
        first.setdefault((f.kind, f.feature, f.detector), events)
    return first


def test_a_monitor_fed_by_four_workers_summaries_finds_what_batches_found(
    hyperplane: Stream,
) -> None:
    """The stream's batches shared out among four workers, each summary merged by the owner
    in another order: the same counts, and the same findings on the same feature."""
    st = hyperplane
    x = st.live.numeric.copy()
    x[CHANGE:, 3] += 0.15
    _, p, _ = st.scored(x)
    v = st.card.version
    direct = ModelMonitor(st.card)
    by_batches: list[tuple[int, Finding]] = []
    for s, num, cat in st.batches(x):
        found = direct.observe_batch(num, cat, p[s : s + BATCH], v, "champion")
        by_batches += [(direct.events, f) for f in found]

    owner = ModelMonitor(st.card)
    workers = [Summariser(st.card) for _ in range(4)]
    by_summaries: list[tuple[int, Finding]] = []
    pending: list[BatchSummary] = []
    for k, (s, num, cat) in enumerate(st.batches(x)):
        worker = workers[k % 4]
        pending.append(worker.summarise(num, cat, p[s : s + BATCH], v, "champion"))
        if len(pending) == 4:  # one round: the partitions' summaries in reverse order
            for summary in reversed(pending):
                by_summaries += [(owner.events, f) for f in owner.observe_summary(summary)]
            pending = []
    for summary in pending:
        by_summaries += [(owner.events, f) for f in owner.observe_summary(summary)]

    assert owner.events == direct.events == x.shape[0]
    assert owner.health()["scopes"] == direct.health()["scopes"]
    got, want = _found(by_summaries), _found(by_batches)
    assert got.keys() == want.keys()
    assert {feature for kind, feature, _ in got if kind == "data_drift"} == {"x3"}
    for key, events in got.items():  # within one window (the order within a round differs)
        assert events > CHANGE - 4 * BATCH, key  # a round holds the change in any order
        assert abs(events - want[key]) <= owner.config.window, key


def test_merged_summaries_update_the_windows_like_their_batches(hyperplane: Stream) -> None:
    st = hyperplane
    x, p, _ = st.scored()
    v = st.card.version
    one, merged = ModelMonitor(st.card), ModelMonitor(st.card)
    make = Summariser(st.card)
    summaries = []
    for s, num, cat in st.batches(x[:8192]):
        one.observe_batch(num, cat, p[s : s + BATCH], v, "champion")
        summaries.append(make.summarise(num, cat, p[s : s + BATCH], v, "champion"))
    for s in range(0, len(summaries), 8):  # 2,048 events per merged summary
        merged.observe_summary(merge_summaries(summaries[s : s + 8])[0])
    a, b = one.snapshot(), merged.snapshot()
    assert a["events"] == b["events"] == 8192
    fa, fb = a["feature_state"]["champion"], b["feature_state"]["champion"]
    assert fa["windows"] == fb["windows"] == 4  # windows of 2,000 events: closed alike
    assert fa["cusum"][0]["bank"]["updates"] == 32 and fb["cusum"][0]["bank"]["updates"] == 4


def test_a_promoted_versions_summaries_restart_the_variants_feature_monitor(
    hyperplane: Stream,
) -> None:
    st = hyperplane
    x, p, _ = st.scored()
    new = st.card.model_copy(update={"version": "new"})
    mon = ModelMonitor(st.card)
    mon.add_card(new)
    make = Summariser(st.card)
    make.add_card(new)
    num = {n: x[:BATCH, j] for j, n in enumerate(st.live.numeric_names)}
    old_summary = make.summarise(num, {}, p[:BATCH], st.card.version, "champion")
    new_summary = make.summarise(num, {}, p[:BATCH], "new", "champion")
    assert new_summary.ref == "new"
    mon.observe_summary(old_summary)
    mon.observe_summary(new_summary)  # the promotion: on the new card's bins from now on
    mon.observe_summary(old_summary)  # a worker that has not swapped yet
    assert mon.events == 3 * BATCH and mon.unreferenced == BATCH
    state = mon.snapshot()["feature_state"]["champion"]
    assert state["ref"] == "new" and state["retired"] == [st.card.version]
    unknown = ModelMonitor(st.card)
    with pytest.raises(BatchError, match="unknown here"):
        unknown.observe_summary(new_summary)


def test_a_snapshot_from_before_summaries_restores_rebinned(hyperplane: Stream) -> None:
    """Schema 1, KS on 200 bins: restored into 20 bins, the windows read what a monitor on
    20 bins counted from the start."""
    st = hyperplane
    x, p, _ = st.scored()
    v = st.card.version
    fine = ModelMonitor(st.card, MonitorConfig(ks_bins=200))
    coarse = ModelMonitor(st.card, MonitorConfig(ks_bins=20))
    x, p = x[:3000], p[:3000]
    for s, num, cat in st.batches(x):
        for mon in (fine, coarse):
            mon.observe_batch(num, cat, p[s : s + BATCH], v, "champion")
    old = fine.snapshot()
    old["schema_version"] = 1
    del old["unreferenced"]
    for state in old["feature_state"].values():
        del state["ref"], state["retired"]
    restored = ModelMonitor(st.card, MonitorConfig(ks_bins=20))
    restored.restore(orjson.loads(orjson.dumps(old)))
    got, want = restored.snapshot(), coarse.snapshot()
    assert (
        got["feature_state"]["champion"]["numeric"]
        == (want["feature_state"]["champion"]["numeric"])
    )
    scope = f"{v}/champion"
    assert got["score_state"][scope]["window"] == want["score_state"][scope]["window"]
    assert restored.events == 3000
