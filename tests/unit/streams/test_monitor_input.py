"""The monitoring input a worker sends per scored batch (streams.monitors.agents)."""

from __future__ import annotations

import numpy as np
import orjson

from streams.monitors.agents import merge_scored, scored_parts, scored_records
from streams.scoring.batch import BatchResult, Scored


def _part(variant: str, version: str, ids: list[str], *, columns: bool = False) -> Scored:
    n = len(ids)
    return Scored(
        variant,
        version,
        ids,
        [{"x": float(i)} for i in range(n)],
        np.arange(n, dtype=np.int64) % 2,
        np.linspace(0, 1, n, dtype=np.float32),
        {"x": np.arange(n, dtype=np.float64)} if columns else None,
    )


def test_champion_and_shadow_of_an_event_travel_in_the_same_record() -> None:
    ids = [f"e{i}" for i in range(600)]
    result = BatchResult(scored=[_part("champion", "1", ids), _part("shadow", "2", ids)])
    records = scored_records(result, max_events=256)
    assert len(records) == 3
    seen: list[str] = []
    for raw in records:
        parts = scored_parts(orjson.loads(raw))
        assert [p.variant for p in parts] == ["champion", "shadow"]
        assert parts[0].event_ids == parts[1].event_ids  # paired outcomes stay paired
        assert len(parts[0].event_ids) <= 256
        seen += parts[0].event_ids
    assert seen == ids


def test_a_canary_split_keeps_every_event_once() -> None:
    champion = _part("champion", "1", [f"c{i}" for i in range(300)])
    canary = _part("canary", "2", [f"k{i}" for i in range(40)])
    records = scored_records(BatchResult(scored=[champion, canary]), max_events=256)
    parts = [p for raw in records for p in scored_parts(orjson.loads(raw))]
    got = {(p.variant, e) for p in parts for e in p.event_ids}
    assert len(got) == 340
    assert sum(len(p.event_ids) for p in parts) == 340
    restored = [p for p in parts if p.variant == "champion"]
    assert np.allclose(np.concatenate([p.scores for p in restored]), champion.scores)


def test_nothing_scored_sends_nothing() -> None:
    assert scored_records(BatchResult()) == []


def test_merged_batches_keep_one_part_per_variant_and_every_event_in_order() -> None:
    first = [_part("champion", "1", ["a", "b"]), _part("shadow", "2", ["a", "b"])]
    second = [_part("champion", "1", ["c"]), _part("shadow", "2", ["c"])]
    third = [_part("champion", "3", ["d"])]  # a swap between batches: a part of its own
    merged = merge_scored([first, second, third])
    assert [(p.variant, p.version) for p in merged] == [
        ("champion", "1"),
        ("shadow", "2"),
        ("champion", "3"),
    ]
    assert merged[0].event_ids == ["a", "b", "c"]
    assert merged[1].event_ids == ["a", "b", "c"]
    assert [f["x"] for f in merged[0].features] == [0.0, 1.0, 0.0]
    assert merged[0].labels.tolist() == [0, 1, 0]
    assert merged[0].scores.dtype == np.float32 and len(merged[0].scores) == 3
    assert merge_scored([first]) == first


def test_merged_batches_keep_the_scorers_columns_when_every_batch_has_them() -> None:
    first = [_part("champion", "1", ["a", "b"], columns=True)]
    second = [_part("champion", "1", ["c"], columns=True)]
    merged = merge_scored([first, second])
    assert merged[0].numeric is not None
    assert merged[0].numeric["x"].tolist() == [0.0, 1.0, 0.0]  # in event order, like features
    without = [_part("champion", "1", ["d"])]
    assert merge_scored([first, without])[0].numeric is None  # read from features instead


def test_context_travels_with_its_events_across_records_and_merges() -> None:
    ids = [f"e{i}" for i in range(300)]
    part = _part("champion", "1", ids)
    context = [{"segment": "b"} if i % 3 == 0 else None for i in range(300)]
    with_context = Scored(**{**part.__dict__, "context": context})
    records = scored_records(BatchResult(scored=[with_context]), max_events=256)
    parts = [p for raw in records for p in scored_parts(orjson.loads(raw))]
    assert [c for p in parts for c in (p.context or [])] == context
    merged = merge_scored([[with_context], [_part("champion", "1", ["z1", "z2"])]])
    assert merged[0].context == [*context, None, None], "one context (or None) per event"
    assert merge_scored([[part], [part]])[0].context is None
