"""Multivariate drift: the PCA's reconstruction error finds a correlation break that the
per-feature detectors cannot, stays within its false-alarm budget, and its blocks merge."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats
from scipy.special import ndtr

from models.card import PcaReference
from models.explain import fit_pca
from models.profile import numeric_profile
from monitoring.cusum import gaussian_threshold, threshold
from monitoring.multivariate import (
    MultivariateDrift,
    Reconstruction,
    ReconstructionBlock,
    merge_blocks,
    reconstruction_block,
)
from monitoring.sequential_drift import LOCATION_SHIFTS, SCALE_SHIFTS, NumericDrift
from monitoring.windows import NumericReference

BLOCK = 256
PER_SERIES = len(LOCATION_SHIFTS) + len(SCALE_SHIFTS)
COLUMNS = [f"x{j}" for j in range(8)]


def _draw(rng: np.random.Generator, n: int, broken: bool = False) -> NDArray[np.float64]:
    """8 features through a Gaussian copula: x0-x1 and x4-x7 correlated at 0.8 (unless
    ``broken``), marginals Gaussian, lognormal, Student's t(3) and Poisson(3), two of each."""
    z = rng.normal(size=(n, 8))
    if not broken:
        z[:, 1] = 0.8 * z[:, 0] + 0.6 * z[:, 1]
        z[:, 7] = 0.8 * z[:, 4] + 0.6 * z[:, 7]
    u = np.clip(ndtr(z), 1e-12, 1 - 1e-12)
    return np.column_stack(
        [
            z[:, 0],
            z[:, 1],
            np.exp(z[:, 2]),
            np.exp(z[:, 3]),
            stats.t.ppf(u[:, 4], 3),
            stats.t.ppf(u[:, 5], 3),
            stats.poisson.ppf(u[:, 6], 3.0),
            stats.poisson.ppf(u[:, 7], 3.0),
        ]
    )


@pytest.fixture(scope="module")
def pca() -> PcaReference:
    rng = np.random.default_rng(21)
    fitted = fit_pca(_draw(rng, 50_000), _draw(rng, 50_000), COLUMNS)
    assert fitted is not None
    return fitted


def _alarms(det: MultivariateDrift, x: NDArray[np.float64], batch: int = BLOCK) -> list[int]:
    hits: list[int] = []
    for s in range(0, x.shape[0], batch):
        block = reconstruction_block(x[s : s + batch], det.model)
        hits += [s + batch] * len(det.update(block, {}))
    return hits


def test_merged_blocks_are_the_block_of_the_concatenation(pca: PcaReference) -> None:
    model = Reconstruction(pca)
    rng = np.random.default_rng(1)
    x = _draw(rng, 1_000)
    x[::13, 3] = np.nan
    parts = [x[:100], x[100:101], x[101:640], x[640:]]
    merged = merge_blocks([reconstruction_block(p, model) for p in parts], len(COLUMNS))
    whole = reconstruction_block(x, model)
    assert merged.events == whole.events == 1_000
    np.testing.assert_allclose(merged.summary, whole.summary, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(merged.columns, whole.columns, rtol=1e-9)
    assert merged.error == pytest.approx(whole.error, rel=1e-12)
    assert ReconstructionBlock.from_json(json.loads(json.dumps(whole.to_json()))) == whole


def test_a_correlation_break_is_found_and_the_per_feature_detectors_see_nothing(
    pca: PcaReference,
) -> None:
    rng = np.random.default_rng(2)
    x = np.vstack([_draw(rng, 10_240), _draw(rng, 10_240, broken=True)])
    # 8 features, the score, the error
    h = gaussian_threshold(threshold(1e-6, PER_SERIES * 10, BLOCK))
    model = Reconstruction(pca)
    hits = _alarms(MultivariateDrift(model, h), x)
    assert hits and 10_240 < hits[0] <= 10_240 + 2 * BLOCK, hits[:3]
    refs = [
        NumericReference.from_profile(n, numeric_profile(c))
        for n, c in zip(COLUMNS, _draw(np.random.default_rng(3), 50_000).T, strict=True)
    ]
    per_feature = NumericDrift(refs, h)
    found = []
    for s in range(0, x.shape[0], BLOCK):
        per_feature.add(x[s : s + BLOCK])
        found += per_feature.flush()
    assert found == []


def test_the_finding_says_which_columns_broke(pca: PcaReference) -> None:
    rng = np.random.default_rng(4)
    model = Reconstruction(pca)
    det = MultivariateDrift(model, gaussian_threshold(threshold(1e-6, PER_SERIES * 10, BLOCK)))
    x = _draw(rng, 4_096, broken=True)
    checks = []
    for s in range(0, x.shape[0], BLOCK):
        checks += det.update(reconstruction_block(x[s : s + BLOCK], model), {"version": "3"})
    key, finding, periodic = checks[0]
    assert key == "data_drift||multivariate" and finding is not None and not periodic
    d = finding.details
    assert finding.kind == "data_drift" and finding.feature is None and d["version"] == "3"
    assert d["test"] == "multivariate" and d["direction"] == "up"
    assert d["mean_error"] > 2 * d["reference_mean_error"]
    top = {name for name, _ in d["columns"][:4]}
    assert top == {"x0", "x1", "x4", "x7"}, d["columns"]


@pytest.mark.parametrize("budget", [1.0, 300.0])
def test_a_million_stationary_events_stay_within_the_budget(
    pca: PcaReference, budget: float
) -> None:
    rng = np.random.default_rng(7)
    model = Reconstruction(pca)
    # The detector alone with the whole budget: its own 16 CUSUMs share it.
    det = MultivariateDrift(model, gaussian_threshold(threshold(budget * 1e-6, PER_SERIES, BLOCK)))
    hits = _alarms(det, _draw(rng, 1_000_000), batch=BLOCK // 2)  # half blocks: merged
    assert det.drift.bank.updates == 1_000_000 // BLOCK
    assert len(hits) <= budget, hits[:10]


def test_small_batches_wait_for_a_full_block(pca: PcaReference) -> None:
    model = Reconstruction(pca)
    det = MultivariateDrift(model, h=5.0, block_events=BLOCK)
    x = _draw(np.random.default_rng(8), 300, broken=True)
    assert det.update(reconstruction_block(x[:100], model), {}) == []
    assert det.drift.bank.updates == 0 and det.pending.events == 100
    det.update(reconstruction_block(x[100:], model), {})
    assert det.drift.bank.updates == 1 and det.pending.events == 0


def test_a_snapshot_restores_the_detector_exactly(pca: PcaReference) -> None:
    model = Reconstruction(pca)
    h = gaussian_threshold(threshold(1e-6, PER_SERIES * 10, BLOCK))
    rng = np.random.default_rng(9)
    x = np.vstack([_draw(rng, 2_000), _draw(rng, 4_000, broken=True)])
    a = MultivariateDrift(model, h)
    first = _alarms(a, x[:1_100], batch=100)
    b = MultivariateDrift(model, h)
    b.restore(json.loads(json.dumps(a.snapshot())))
    # Batches of 100: the CUSUMs updated at 300, 600 and 900 events; 200 wait.
    assert b.pending.events == a.pending.events == 200
    rest_a = _alarms(a, x[1_100:], batch=100)
    rest_b = _alarms(b, x[1_100:], batch=100)
    assert first == [] and rest_a and rest_a == rest_b


def test_a_card_without_a_pca_has_no_reconstruction_and_calibrate_counts_it() -> None:
    from models.data import synthetic
    from models.workflow import TrainOptions, train
    from monitoring.config import MonitorConfig
    from monitoring.sequential_drift import calibrate

    card = train(synthetic("agrawal", rows=600, seed=1), TrainOptions(name="a", folds=2)).card
    legacy = card.model_copy(update={"pca": None})
    assert Reconstruction.from_card(legacy) is None
    assert Reconstruction.from_card(card) is not None
    with_pca, without = calibrate(card, MonitorConfig()), calibrate(legacy, MonitorConfig())
    # Its 16 CUSUMs join the budget: the total stays, every threshold rises a little.
    assert with_pca.detectors == without.detectors + PER_SERIES
    assert with_pca.events > without.events
