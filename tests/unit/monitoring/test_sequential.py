"""The paired mSPRT: error rates by seeded simulation, decisions, snapshots."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from monitoring.errors import BatchError, MonitorConfigError, SnapshotError
from monitoring.sequential import Decision, PairedMSPRT

BATCH = 256


def _run(
    test: PairedMSPRT,
    rng: np.random.Generator,
    p_candidate: float,
    p_champion: float,
    shared: float = 0.0,
) -> Decision:
    """Feed batches until a decision. ``shared`` of the events get one draw for both models
    (paired outcomes are correlated in practice: the same events are hard for both)."""
    decision: Decision = "continue"
    while decision == "continue":
        u = rng.random(BATCH)
        champion = u < p_champion
        candidate = np.where(
            rng.random(BATCH) < shared, u < p_candidate, rng.random(BATCH) < p_candidate
        )
        decision = test.update(candidate, champion)
    return decision


@pytest.mark.parametrize(
    ("accuracy", "shared"),
    [(0.8, 0.0), (0.8, 0.9), (0.8, 0.99), (0.6, 0.0)],
    ids=["independent", "correlated", "rare-disagreement", "hard"],
)
def test_no_false_promotion_on_equal_models(accuracy: float, shared: float) -> None:
    rng = np.random.default_rng(7)
    sims, alpha = 300, 0.05
    decisions = [
        _run(PairedMSPRT(alpha=alpha, max_pairs=20_000), rng, accuracy, accuracy, shared)
        for _ in range(sims)
    ]
    promoted = decisions.count("promote") / sims
    print(f"equal models ({accuracy}, shared {shared}): false promotion {promoted:.3f}")
    assert promoted <= alpha
    assert decisions.count("continue") == 0  # max_pairs ends every test


def test_promotes_a_clearly_better_candidate() -> None:
    rng = np.random.default_rng(11)
    tests = [PairedMSPRT() for _ in range(50)]
    decisions = [_run(t, rng, 0.88, 0.80) for t in tests]
    assert decisions.count("promote") == 50
    n = [t.n for t in tests]
    assert max(n) <= 3000  # 8 points of accuracy need a few hundred to ~2,000 labels
    stats = tests[0].statistics()
    assert stats["ci_low"] > 0 and stats["p_value"] < 0.05 and stats["lambda"] > 20


def test_rejects_a_worse_candidate() -> None:
    rng = np.random.default_rng(12)
    tests = [PairedMSPRT() for _ in range(50)]
    decisions = [_run(t, rng, 0.74, 0.80) for t in tests]
    assert decisions.count("reject") == 50
    assert all(t.statistics()["ci_high"] < 0 for t in tests)
    assert all(t.reason == "candidate significantly worse" for t in tests)


def test_margin_promotes_a_non_inferior_candidate() -> None:
    rng = np.random.default_rng(13)
    strict = _run(PairedMSPRT(max_pairs=8000), rng, 0.80, 0.80, shared=0.95)
    lenient = _run(PairedMSPRT(max_pairs=8000, margin=0.02), rng, 0.80, 0.80, shared=0.95)
    assert (strict, lenient) == ("reject", "promote")


def test_no_decision_before_min_pairs_and_final_after() -> None:
    test = PairedMSPRT(min_pairs=200)
    ones = np.ones(150, dtype=bool)
    assert test.update(ones, ~ones) == "continue"  # 150 straight wins, but too few pairs
    assert test.statistics()["ci_low"] == -1.0 and test.statistics()["p_value"] == 1.0
    assert test.update(ones, ~ones) == "promote"
    n = test.n
    assert test.update(~ones, ones) == "promote"  # a decision is final
    assert test.n == n


def test_max_pairs_rejects_without_evidence() -> None:
    test = PairedMSPRT(min_pairs=200, max_pairs=1000)
    same = np.ones(BATCH, dtype=bool)
    decisions = [test.update(same, same) for _ in range(5)]
    assert decisions[:3] == ["continue"] * 3 and decisions[3] == "reject"
    assert test.n == 1000  # the batch that crossed max_pairs was trimmed
    assert test.reason == "no evidence after 1000 pairs"


def test_statistics_and_snapshot_round_trip() -> None:
    rng = np.random.default_rng(3)
    test = PairedMSPRT(alpha=0.1, tau=0.05, min_pairs=100, max_pairs=50_000)
    for _ in range(4):
        u = rng.random(BATCH)
        test.update(u < 0.83, rng.random(BATCH) < 0.8)
    stats = test.statistics()
    assert set(stats) >= {"n", "mean_diff", "lambda", "p_value", "ci_low", "ci_high"}
    assert stats["ci_low"] <= stats["mean_diff"] <= stats["ci_high"]
    twin = PairedMSPRT()
    twin.restore(orjson.loads(orjson.dumps(test.snapshot())))
    assert twin.statistics() == stats and twin.decision == test.decision
    assert (twin.alpha, twin.tau, twin.min_pairs) == (0.1, 0.05, 100)  # the test's own settings
    u = rng.random(BATCH)
    cand, champ = u < 0.83, rng.random(BATCH) < 0.8
    assert twin.update(cand, champ) == test.update(cand, champ)
    assert twin.statistics() == test.statistics()


def test_bad_input_settings_and_snapshots() -> None:
    with pytest.raises(BatchError):
        PairedMSPRT().update(np.ones(3, dtype=bool), np.ones(4, dtype=bool))
    for kwargs in ({"alpha": 0.0}, {"tau": 0.0}, {"min_pairs": 1}, {"max_pairs": 10}):
        with pytest.raises(MonitorConfigError):
            PairedMSPRT(**kwargs)
    with pytest.raises(SnapshotError, match="schema_version"):
        PairedMSPRT().restore({"schema_version": 2})
    broken = PairedMSPRT().snapshot()
    broken["decision"] = "maybe"
    with pytest.raises(SnapshotError, match="malformed"):
        PairedMSPRT().restore(broken)
