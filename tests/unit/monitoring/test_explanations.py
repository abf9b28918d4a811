"""Why it drifted, in the live path: explained_by on score and performance findings, and the
multivariate detector fed from the summaries (seeded streams, no network)."""

from __future__ import annotations

import numpy as np
import orjson
from numpy.typing import NDArray
from scipy.special import ndtr

from models.card import ModelCard
from models.explain import fit_pca
from monitoring import Finding, ModelMonitor, MonitorConfig
from monitoring.drift import FeatureMonitor
from monitoring.sequential_drift import calibrate
from monitoring.summary import BatchSummary
from tests.unit.monitoring.conftest import BATCH, Stream

CHANGE = 20_000


def _run(
    mon: ModelMonitor,
    stream: Stream,
    x: NDArray[np.float64],
    p: NDArray[np.float64],
    labels: NDArray[np.int64] | None = None,
    pred: NDArray[np.int64] | None = None,
) -> list[tuple[int, Finding]]:
    out: list[tuple[int, Finding]] = []
    version = stream.card.version
    for s, num, cat in stream.batches(x):
        sl = slice(s, s + BATCH)
        out += [(s, f) for f in mon.observe_batch(num, cat, p[sl], version, "champion")]
        if labels is not None and pred is not None:
            found = mon.observe_labels(labels[sl], pred[sl], p[sl], None, version, "champion")
            out += [(s, f) for f in found]
    return out


def _most_important(card: ModelCard) -> str:
    assert card.importance is not None
    return max(card.importance.values.items(), key=lambda kv: kv[1])[0]


def test_the_stationary_stream_is_quiet_with_the_pca_counted(hyperplane: Stream) -> None:
    card = hyperplane.card
    assert card.pca is not None and card.importance is not None
    without = calibrate(card.model_copy(update={"pca": None}), MonitorConfig())
    assert calibrate(card, MonitorConfig()).detectors > without.detectors
    x, p, pred = hyperplane.scored()
    mon = ModelMonitor(card)
    assert _run(mon, hyperplane, x, p, hyperplane.live.y, pred) == []
    state = mon.snapshot()["feature_state"]["champion"]
    assert state["multivariate"]["cusum"]["bank"]["updates"] == 40_000 // BATCH
    assert len(state["evidence"]["moments"]) == 4  # one per half-life


def test_a_shift_that_moves_the_score_is_explained_by_that_feature(hyperplane: Stream) -> None:
    top = _most_important(hyperplane.card)
    j = hyperplane.live.numeric_names.index(top)
    x = hyperplane.live.numeric.copy()
    x[CHANGE:, j] = np.clip(x[CHANGE:, j] + 0.3, 0.0, 1.0)
    _, p, _ = hyperplane.scored(x)
    found = _run(ModelMonitor(hyperplane.card), hyperplane, x, p)
    score = [f for s, f in found if f.kind == "prediction_drift"]
    assert score, "the shift moved the score"
    for f in score:
        ranked = f.details["explained_by"]
        assert ranked[0][0] == top
        assert 0 < ranked[0][1] <= 1 and len(ranked) <= 5
    orjson.dumps([f.to_dict() for f in score])  # JSON as an alert carries it


def test_a_new_labelling_rule_is_explained_by_no_feature(hyperplane: Stream) -> None:
    x, p, pred = hyperplane.scored()
    y = hyperplane.live.y.copy()
    w = np.random.default_rng(9).random(x.shape[1])
    y[CHANGE:] = (x[CHANGE:] @ w > 0.5 * w.sum()).astype(np.int64)
    found = _run(ModelMonitor(hyperplane.card), hyperplane, x, p, y, pred)
    labelled = [f for _, f in found if f.kind in ("performance", "concept_drift")]
    assert labelled
    # nothing moved in the features: no feature takes the blame (points to concept drift)
    assert all(f.details["explained_by"] == [] for f in labelled)


def test_a_card_without_importances_explains_nothing(hyperplane: Stream) -> None:
    card = hyperplane.card.model_copy(update={"importance": None})
    x, p, _ = hyperplane.scored()
    p = np.clip(p[:] * 0.6 + 0.35, 0.0, 1.0)  # scores squeezed toward 0.5
    found = _run(ModelMonitor(card), hyperplane, x, p)
    score = [f for _, f in found if f.kind == "prediction_drift"]
    assert score and all("explained_by" not in f.details for f in score)


def _copula(rng: np.random.Generator, n: int, rho: float) -> NDArray[np.float64]:
    """20 uniform columns; x0 and x1 correlated by ``rho`` (a Gaussian copula)."""
    z = rng.normal(size=(n, 20))
    z[:, 1] = rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]
    return np.asarray(ndtr(z), dtype=np.float64)


def test_a_correlation_break_is_multivariate_drift_only(hyperplane: Stream) -> None:
    rng = np.random.default_rng(4)
    names = hyperplane.live.numeric_names
    pca = fit_pca(_copula(rng, 20_000, 0.9), _copula(rng, 5_000, 0.9), names)
    card = hyperplane.card.model_copy(update={"pca": pca})
    x = np.concatenate([_copula(rng, CHANGE, 0.9), _copula(rng, CHANGE, 0.0)])
    found = _run(ModelMonitor(card), hyperplane, x, np.full(x.shape[0], 0.5))
    drift = [(s, f) for s, f in found if f.kind == "data_drift"]
    assert drift, "the correlation break was found"
    assert all(f.feature is None and f.details["test"] == "multivariate" for _, f in drift)
    assert min(s for s, _ in drift) >= CHANGE - BATCH
    columns = drift[0][1].details["columns"]
    assert {columns[0][0], columns[1][0]} == {"x0", "x1"}


def test_summaries_carry_the_reconstruction_block(hyperplane: Stream) -> None:
    mon = ModelMonitor(hyperplane.card)
    x, p, _ = hyperplane.scored()
    version = hyperplane.card.version
    parts = [
        mon.summarise(num, cat, p[s : s + BATCH], version, "champion")
        for s, num, cat in hyperplane.batches(x[:512])
    ]
    block = parts[0].features.reconstruction
    assert block is not None and block.events == BATCH
    merged = BatchSummary.from_json(orjson.loads(orjson.dumps(parts[0].merge(parts[1]).to_json())))
    assert merged.features.reconstruction is not None
    assert merged.features.reconstruction.events == 512
    # a worker that predates the detector sends none: the owner takes the summary as it is
    doc = parts[0].to_json()
    del doc["features"]["pca"]
    assert BatchSummary.from_json(doc).features.reconstruction is None
    assert mon.observe_summary(BatchSummary.from_json(doc)) == []
    # the ADWIN detectors have no multivariate part, and their summaries no block
    river = ModelMonitor(hyperplane.card, MonitorConfig(stream_detector="adwin"))
    _, num, cat = next(hyperplane.batches(x))
    assert river.summarise(num, cat, p[:BATCH], version, "champion").features.reconstruction is None


def test_evidence_and_multivariate_state_survive_a_snapshot(hyperplane: Stream) -> None:
    top = _most_important(hyperplane.card)
    j = hyperplane.live.numeric_names.index(top)
    x = hyperplane.live.numeric.copy()
    x[CHANGE:, j] = np.clip(x[CHANGE:, j] + 0.3, 0.0, 1.0)
    _, p, _ = hyperplane.scored(x)
    half = CHANGE + 2_048
    a = ModelMonitor(hyperplane.card)
    _run(a, hyperplane, x[:half], p[:half])
    b = ModelMonitor(hyperplane.card)
    b.restore(orjson.loads(orjson.dumps(a.snapshot())))
    rest = slice(half, half + 4_096)
    one, two = (_run(m, hyperplane, x[rest], p[rest]) for m in (a, b))
    assert [f.to_dict() for _, f in one] == [f.to_dict() for _, f in two]
    assert a.snapshot() == b.snapshot()


def test_an_older_feature_snapshot_restores_fresh_evidence(hyperplane: Stream) -> None:
    fm = FeatureMonitor(hyperplane.card, MonitorConfig())
    x = hyperplane.live.numeric[:1024]
    fm.observe(x, [], {})
    state = fm.snapshot()
    for key in ("evidence", "multivariate"):
        del state[key]
    fresh = FeatureMonitor(hyperplane.card, MonitorConfig())
    fresh.restore(state)
    assert fresh.rows == fm.rows == 1024
    assert fm.explain.evidence.moments.any()
    assert not fresh.explain.evidence.moments.any()
    assert fresh.explain.multi is not None and fresh.explain.multi.pending.events == 0
