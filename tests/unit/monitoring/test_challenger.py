"""The online challenger: learns a stream, progressive metrics, exact snapshots.

Its cost per labelled event is a benchmark figure (``bench/components.py``), not a test's.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from models.card import ModelCard
from models.data import Dataset, synthetic
from models.gates import dataset_rows
from models.workflow import TrainOptions, train
from monitoring.challenger import OnlineChallenger
from monitoring.errors import BatchError, MonitorConfigError, SnapshotError
from tests.unit.monitoring.conftest import BATCH, Stream


@pytest.fixture(scope="module")
def sea_card() -> ModelCard:
    return train(synthetic("sea", rows=300, seed=1), TrainOptions(name="sea", folds=3)).card


def _feed(ch: OnlineChallenger, rows: list[dict[str, object]], y: np.ndarray) -> np.ndarray:
    out = [ch.learn(rows[s : s + BATCH], y[s : s + BATCH]) for s in range(0, len(rows), BATCH)]
    return np.concatenate(out)


def test_logreg_learns_a_stationary_stream(hyperplane: Stream) -> None:
    live = hyperplane.live.subset(np.arange(8000))
    rows = dataset_rows(live)
    ch = OnlineChallenger(hyperplane.card, "logreg")
    correct = _feed(ch, rows, live.y)
    m = ch.metrics()
    assert m["labels"] == 8000 and m["kind"] == "logreg"
    assert m["cumulative"]["count"] == 8000 and m["rolling"]["count"] == 1000
    assert m["rolling"]["accuracy"] > 0.88  # hyperplane with 5% label noise
    assert m["cumulative"]["accuracy"] == pytest.approx(correct.mean())
    # progressive validation: early predictions are worse than late ones
    assert correct[:300].mean() < correct[-2000:].mean()
    assert 0 < m["rolling"]["log_loss"] < 0.4 and m["rolling"]["f1"] > 0.85


def test_categorical_and_missing_values(agrawal_stream: Stream) -> None:
    live = agrawal_stream.live.subset(np.arange(4000))
    rows = dataset_rows(live)
    for r in rows[::7]:
        r["salary"] = None
        r["car"] = None
    rows[3].pop("zipcode")  # an absent key is a missing value too
    for kind in ("logreg", "hoeffding"):
        ch = OnlineChallenger(agrawal_stream.card, kind)
        _feed(ch, rows, live.y)
        assert ch.metrics()["rolling"]["accuracy"] > 0.65, kind
        p = ch.predict_proba(rows[:50])
        assert p.shape == (50,) and ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("kind", ["logreg", "hoeffding"])
def test_snapshot_orjson_restore_predicts_identically(hyperplane: Stream, kind: str) -> None:
    live = hyperplane.live.subset(np.arange(1500))
    rows = dataset_rows(live)
    ch = OnlineChallenger(hyperplane.card, kind, seed=3)  # type: ignore[arg-type]
    _feed(ch, rows[:1200], live.y[:1200])
    twin = OnlineChallenger(hyperplane.card, kind)  # type: ignore[arg-type]
    twin.restore(orjson.loads(orjson.dumps(ch.snapshot())))
    probe = rows[1200:]
    assert np.array_equal(twin.predict_proba(probe), ch.predict_proba(probe))
    assert twin.metrics() == ch.metrics()
    # and they keep learning in step
    a = ch.learn(probe, live.y[1200:])
    b = twin.learn(probe, live.y[1200:])
    assert np.array_equal(a, b)
    assert np.array_equal(twin.predict_proba(rows[:100]), ch.predict_proba(rows[:100]))


def test_hoeffding_restore_replays_a_bounded_window(hyperplane: Stream) -> None:
    live = hyperplane.live.subset(np.arange(1500))
    rows = dataset_rows(live)
    ch = OnlineChallenger(hyperplane.card, "hoeffding", replay_limit=500)
    _feed(ch, rows, live.y)
    snap = ch.snapshot()
    assert len(snap["replay"]) == 500
    twin = OnlineChallenger(hyperplane.card, "hoeffding", replay_limit=500)
    twin.restore(orjson.loads(orjson.dumps(snap)))
    assert twin.metrics() == ch.metrics()  # metrics are exact; the tree is younger


def test_restore_refuses_a_foreign_snapshot(hyperplane: Stream, sea_card: ModelCard) -> None:
    ch = OnlineChallenger(hyperplane.card, "logreg")
    with pytest.raises(SnapshotError, match="schema_version"):
        ch.restore({"schema_version": 99})
    with pytest.raises(SnapshotError, match=r"features|model"):
        ch.restore(OnlineChallenger(sea_card, "logreg").snapshot())
    with pytest.raises(SnapshotError, match="kind"):
        ch.restore(OnlineChallenger(hyperplane.card, "hoeffding").snapshot())
    broken = ch.snapshot()
    del broken["weights"]
    with pytest.raises(SnapshotError, match="malformed"):
        ch.restore(broken)


def test_bad_batches_and_settings(sea_card: ModelCard) -> None:
    ch = OnlineChallenger(sea_card)
    with pytest.raises(BatchError):
        ch.learn([{"x0": 1.0, "x1": 1.0, "x2": 1.0}], [1, 0])
    with pytest.raises(BatchError):
        ch.learn([{"x0": 1.0, "x1": 1.0, "x2": 1.0}], [2])
    with pytest.raises(MonitorConfigError):
        OnlineChallenger(sea_card, "forest")  # type: ignore[arg-type]
    with pytest.raises(MonitorConfigError):
        OnlineChallenger(sea_card, window=0)
    assert ch.learn([], []).shape == (0,)
    assert ch.metrics()["labels"] == 0


def test_restored_challenger_follows_a_concept_drift(sea_card: ModelCard) -> None:
    """After a drift the rolling accuracy recovers: the learner keeps learning."""
    ds: Dataset = synthetic("hyperplane", rows=10_000, seed=1, features=3)
    before, after = ds.subset(np.arange(4000)), ds.subset(np.arange(4000, 10_000))
    flipped = 1 - after.y  # same features, the opposite rule: an abrupt concept drift
    card = train(before, TrainOptions(name="hp3", folds=3)).card
    ch = OnlineChallenger(card, "logreg")
    _feed(ch, dataset_rows(before), before.y)
    settled = ch.metrics()["rolling"]["accuracy"]
    twin = OnlineChallenger(card, "logreg")
    twin.restore(orjson.loads(orjson.dumps(ch.snapshot())))
    correct = _feed(twin, dataset_rows(after), flipped)
    assert correct[:50].mean() < 0.4  # the drift hurts
    assert twin.metrics()["rolling"]["accuracy"] > settled - 0.05  # and it has recovered
