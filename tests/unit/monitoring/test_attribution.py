"""Why it drifted: the shifted feature is ranked first, noise explains nothing, the evidence
is exact under the reference and survives a snapshot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.typing import NDArray

from models.profile import numeric_profile
from monitoring.attribution import FeatureEvidence, chi2_deviate, rank_features
from monitoring.errors import SnapshotError
from monitoring.sequential_drift import NumericDrift
from monitoring.windows import NumericReference

BLOCK = 256
NAMES = ["a", "b", "c", "d", "e", "f"]
# The score's sensitivity to each numeric feature, and to the categorical "k".
IMPORTANCE = {"a": 0.3, "b": 0.2, "c": 0.15, "d": 0.1, "e": 0.05, "f": 0.0, "k": 0.2}
SHARES = [0.25, 0.25, 0.25, 0.25]


@pytest.fixture(scope="module")
def summarise() -> NumericDrift:
    rng = np.random.default_rng(0)
    refs = [
        NumericReference.from_profile(n, numeric_profile(rng.lognormal(size=50_000))) for n in NAMES
    ]
    return NumericDrift(refs, h=12.0)


def _feed(
    det: NumericDrift,
    ev: FeatureEvidence,
    rng: np.random.Generator,
    blocks: int,
    shift: str | None,
    kind: str,
) -> None:
    for _ in range(blocks):
        x: NDArray[np.float64] = rng.lognormal(size=(BLOCK, len(NAMES)))
        shares = list(SHARES)
        if shift == "k":
            shares = [0.4, 0.2, 0.2, 0.2]
        elif shift is not None:
            j = NAMES.index(shift)
            x[:, j] = x[:, j] * 1.4 if kind == "scale" else x[:, j] + 0.25 * 2.16  # 0.25 sd
        ev.add(det.summarise(x), [rng.multinomial(BLOCK, shares)])


@pytest.mark.parametrize("kind", ["location", "scale"])
def test_the_shifted_feature_is_ranked_first(summarise: NumericDrift, kind: str) -> None:
    rng = np.random.default_rng(1 if kind == "location" else 2)
    cases = [n for n in [*NAMES, "k"] if IMPORTANCE[n] > 0]  # those that move the score
    first = total = 0
    for shifted in cases:
        for _ in range(10):
            ev = FeatureEvidence(NAMES, {"k": SHARES})
            _feed(summarise, ev, rng, 16, None, kind)  # stationary history, then the change
            _feed(summarise, ev, rng, 8, shifted, kind)  # 2,048 events after it
            ranked = ev.explain(IMPORTANCE)
            first += bool(ranked) and ranked[0][0] == shifted
            total += 1
    assert first >= 0.95 * total, (first, total)


def test_a_feature_the_score_ignores_is_not_blamed(summarise: NumericDrift) -> None:
    rng = np.random.default_rng(3)
    ev = FeatureEvidence(NAMES, {"k": SHARES})
    _feed(summarise, ev, rng, 8, "f", "location")
    assert ev.drift()["f"] > 10
    assert all(name != "f" for name, _ in ev.explain(IMPORTANCE))


def test_without_drift_nothing_explains_a_finding(summarise: NumericDrift) -> None:
    rng = np.random.default_rng(4)
    empty = 0
    for _ in range(50):
        ev = FeatureEvidence(NAMES, {"k": SHARES})
        _feed(summarise, ev, rng, 24, None, "location")
        empty += ev.explain(IMPORTANCE) == []
    # A deviate of 3 is passed by chance ~1 in 700 per feature: 7 features, 50 runs.
    assert empty >= 45


def test_the_evidence_is_a_standard_deviate_under_the_reference(summarise: NumericDrift) -> None:
    rng = np.random.default_rng(5)
    values = []
    for _ in range(200):
        ev = FeatureEvidence(NAMES, {"k": SHARES})
        _feed(summarise, ev, rng, 12, None, "location")
        values.append(ev.deviates())
    v = np.stack(values)  # runs, scales, features
    # The exact weights: standard at every half-life, numeric (two tests) and categorical.
    # 200 runs: a mean's standard error is 0.07 (and the cube root is a little off at 1 or 2
    # degrees of freedom); measured: means within 0.23, spreads 0.94-1.07.
    assert (np.abs(v.mean(axis=0)) < 0.3).all(), v.mean(axis=0)
    assert ((v.std(axis=0) > 0.8) & (v.std(axis=0) < 1.2)).all(), v.std(axis=0)


def test_old_evidence_fades(summarise: NumericDrift) -> None:
    rng = np.random.default_rng(6)
    ev = FeatureEvidence(NAMES, {"k": SHARES}, half_lives=(1024,))
    _feed(summarise, ev, rng, 8, "a", "location")
    before = ev.drift()["a"]
    _feed(summarise, ev, rng, 64, None, "location")  # 16 half-lives later
    assert before > 8 and ev.drift()["a"] < 3


def test_rank_features_shares_and_top() -> None:
    ranked = rank_features({"a": 10.0, "b": 5.0, "c": 4.5}, {"a": 0.1, "b": 0.4, "c": 0.5}, top=2)
    assert [n for n, _ in ranked] == ["c", "b"]
    assert sum(s for _, s in rank_features({"a": 10.0, "b": 5.0}, {"a": 1, "b": 1})) == 1.0
    assert rank_features({"a": 10.0}, {}) == []
    assert chi2_deviate(np.array([5.0]), np.array([0.0])).tolist() == [0.0]


def test_a_snapshot_restores_the_evidence(summarise: NumericDrift) -> None:
    rng = np.random.default_rng(7)
    ev = FeatureEvidence(NAMES, {"k": SHARES})
    _feed(summarise, ev, rng, 5, "b", "location")
    again = FeatureEvidence(NAMES, {"k": SHARES})
    again.restore(json.loads(json.dumps(ev.snapshot())))
    assert again.drift() == ev.drift()
    with pytest.raises(SnapshotError):
        FeatureEvidence(NAMES[:2], {}).restore(ev.snapshot())
