"""The monitoring input a worker sends per scored batch: summaries and join columns
(streams.monitors.summaries, streams.monitors.agents)."""

from __future__ import annotations

import numpy as np
import orjson

from models.workflow import TrainResult
from monitoring.config import MonitorConfig
from streams.monitors.agents import scored_parts, scored_records
from streams.monitors.entries import FeatureBudget
from streams.monitors.summaries import Reducer, merge_reduced, split_scored
from streams.scoring.batch import Scored


def _part(variant: str, version: str, ids: list[str], *, columns: bool = False) -> Scored:
    n = len(ids)
    rng = np.random.default_rng(len(ids))
    x = rng.uniform(0, 10, (n, 3))
    return Scored(
        variant,
        version,
        ids,
        [{"x0": a, "x1": b, "x2": c} for a, b, c in x.tolist()],
        np.arange(n, dtype=np.int64) % 2,
        np.linspace(0, 1, n, dtype=np.float32),
        {f"x{j}": x[:, j] for j in range(3)} if columns else None,
    )


def _reducer(result: TrainResult, budget: float = 1e-9, **config: object) -> Reducer:
    card = result.card
    keep = FeatureBudget(budget, 100)
    keep.tokens = 0.0 if budget < 1 else keep.tokens  # nothing keeps its features
    return Reducer(card, MonitorConfig.from_mapping(config), keep)


def test_a_record_carries_summaries_and_join_columns_not_features(sea_result: TrainResult) -> None:
    version = sea_result.card.version
    ids = [f"e{i}" for i in range(600)]
    parts = [_part("champion", version, ids), _part("shadow", version, ids)]
    reduced = _reducer(sea_result).reduce(parts)
    (raw,) = scored_records(reduced)
    assert b'"x0"' not in raw, "no event's features travel"
    record = orjson.loads(raw)
    assert record["kind"] == "summary"
    decoded = scored_parts(record)
    assert [r.part.variant for r in decoded] == ["champion", "shadow"]
    assert decoded[0].part.event_ids == decoded[1].part.event_ids == ids
    assert np.array_equal(decoded[0].part.scores, parts[0].scores)
    assert decoded[0].part.labels.tolist() == parts[0].labels.tolist()
    for got, sent in zip(decoded, reduced, strict=True):
        assert got.summary.rows == 600
        assert np.array_equal(got.summary.features.numeric.ks, sent.summary.features.numeric.ks)
        assert np.array_equal(got.summary.score.numeric.ks, sent.summary.score.numeric.ks)
        assert np.allclose(got.summary.features.normal, sent.summary.features.normal)


def test_the_budget_keeps_the_features_of_the_first_events(sea_result: TrainResult) -> None:
    version = sea_result.card.version
    reducer = _reducer(sea_result, budget=1.0)
    reducer.budget.tokens = 7.0
    part = _part("champion", version, [f"e{i}" for i in range(20)])
    (reduced,) = reducer.reduce([part])
    assert reduced.part.features == part.features[:7]
    (back,) = scored_parts(orjson.loads(scored_records([reduced])[0]))
    assert back.part.features == part.features[:7]


def test_large_batches_split_with_champion_and_shadow_together(sea_result: TrainResult) -> None:
    ids = [f"e{i}" for i in range(600)]
    parts = [_part("champion", "1", ids, columns=True), _part("shadow", "2", ids)]
    chunks = split_scored(parts, 256)
    assert [len(c[0].event_ids) for c in chunks] == [256, 256, 88]
    for chunk in chunks:
        assert chunk[0].event_ids == chunk[1].event_ids
        assert chunk[0].numeric is not None
        assert chunk[0].numeric["x0"].size == len(chunk[0].event_ids)
    assert split_scored(parts, 1000) == [parts]


def test_merged_reductions_equal_the_reduction_of_the_whole(sea_result: TrainResult) -> None:
    version = sea_result.card.version
    reducer = _reducer(sea_result)
    whole = _part("champion", version, [f"e{i}" for i in range(500)], columns=True)
    (one,) = reducer.reduce([whole])
    pieces = split_scored([whole], 128)
    (merged,) = merge_reduced([reducer.reduce(p) for p in pieces])
    assert merged.part.event_ids == whole.event_ids
    a, b = merged.summary, one.summary
    assert a.rows == b.rows == 500
    for x, y in ((a.features, b.features), (a.score, b.score)):
        assert np.array_equal(x.numeric.ks, y.numeric.ks)
        assert np.array_equal(x.numeric.psi, y.numeric.psi)
        assert np.array_equal(x.numeric.missing, y.numeric.missing)
        assert np.array_equal(x.numeric.out_of_range, y.numeric.out_of_range)
        assert np.allclose(x.numeric.sums, y.numeric.sums)
        assert np.allclose(x.normal, y.normal)


def test_a_record_from_before_summaries_is_reduced_by_the_owner(sea_result: TrainResult) -> None:
    version = sea_result.card.version
    part = _part("champion", version, ["a", "b", "c"])
    old = {
        "kind": "scored",
        "parts": [
            {
                "variant": "champion",
                "version": version,
                "ids": part.event_ids,
                "features": part.features,
                "labels": part.labels.tolist(),
                "scores": part.scores.tolist(),
                "context": None,
            }
        ],
    }
    (got,) = scored_parts(old, _reducer(sea_result))
    assert got.summary.rows == 3 and got.part.event_ids == ["a", "b", "c"]
    assert got.part.features == []
