"""LabelJoin: either order, TTL expiry, bounded memory."""

from __future__ import annotations

import pytest

from monitoring import LabelJoin, MonitoringError


def test_label_after_prediction_and_prediction_after_label() -> None:
    join = LabelJoin()
    assert join.add_predictions([("a", "pa"), ("b", "pb")], now=0.0) == []
    assert join.add_labels([("a", 1)], now=1.0) == [("pa", 1)]
    assert join.add_labels([("c", 0)], now=2.0) == []
    assert join.add_predictions([("c", "pc")], now=3.0) == [("pc", 0)]
    assert join.stats() == {
        "pending_predictions": 1,
        "pending_labels": 0,
        "joined": 2,
        "expired_predictions": 0,
        "expired_labels": 0,
        "evicted": 0,
    }


def test_out_of_order_labels_join_every_pair_once() -> None:
    join = LabelJoin()
    ids = [f"e{i}" for i in range(1000)]
    joined = join.add_labels([(e, i % 2) for i, e in enumerate(ids[::2])], now=0.0)
    joined += join.add_predictions([(e, e) for e in ids], now=1.0)
    joined += join.add_labels([(e, 1) for e in reversed(ids[1::2])], now=2.0)
    assert sorted(p for p, _ in joined) == sorted(ids)
    assert join.stats()["pending_predictions"] == join.stats()["pending_labels"] == 0


def test_several_predictions_of_one_event_all_get_its_label() -> None:
    join = LabelJoin()
    join.add_predictions([("e", "champion"), ("e", "shadow")], now=0.0)
    assert join.add_labels([("e", 1)], now=1.0) == [("champion", 1), ("shadow", 1)]


def test_entries_older_than_the_ttl_expire_and_are_counted() -> None:
    join = LabelJoin(ttl_s=10.0)
    join.add_predictions([("p1", 1), ("p2", 2)], now=0.0)
    join.add_labels([("l1", 1)], now=5.0)
    join.add_predictions([("p3", 3)], now=8.0)
    assert join.expire(now=12.0) == 2
    assert join.expire(now=12.0) == 0
    assert join.expire(now=15.0) == 1
    stats = join.stats()
    assert (stats["expired_predictions"], stats["expired_labels"]) == (2, 1)
    assert stats["pending_predictions"] == 1
    assert join.add_labels([("p1", 1)], now=16.0) == []  # too late: its prediction expired


def test_memory_is_bounded_by_evicting_the_oldest() -> None:
    join = LabelJoin(max_items=100)
    join.add_predictions([(f"p{i}", i) for i in range(80)], now=0.0)
    join.add_labels([(f"l{i}", 1) for i in range(50)], now=1.0)
    stats = join.stats()
    assert stats["pending_predictions"] + stats["pending_labels"] == 100
    assert stats["evicted"] == 30
    assert stats["pending_labels"] == 50  # the oldest (predictions at t=0) went first
    assert join.add_labels([("p0", 1)], now=2.0) == []
    assert join.add_labels([("p79", 1)], now=2.0) == [(79, 1)]


def test_bad_parameters() -> None:
    with pytest.raises(MonitoringError):
        LabelJoin(max_items=0)
    with pytest.raises(MonitoringError):
        LabelJoin(ttl_s=0)
