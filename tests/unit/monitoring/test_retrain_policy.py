"""The retrain policy: which alerts ask, sustained drift, the challenger path, rate limit."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from monitoring.errors import BatchError, MonitorConfigError, SnapshotError
from monitoring.retrain_policy import RetrainPolicy, mcnemar_one_sided

MODEL, VERSION = "credit", "3"


def alert(alert_id: str, kind: str, *, at: float = 0.0, **extra: Any) -> dict[str, Any]:
    """An alert as the streams shell publishes it (docs/architecture.md, "Contracts")."""
    return {
        "alert_id": alert_id,
        "kind": kind,
        "model": MODEL,
        "version": VERSION,
        "feature": extra.pop("feature", None),
        "detector": extra.pop("detector", "adwin"),
        "statistic": 0.4,
        "threshold": 0.2,
        "at": at,
        "details": {},
        **extra,
    }


def paired(n: int, p_challenger: float, p_champion: float, seed: int) -> tuple[Any, Any]:
    """Correctness of both models on the same ``n`` events (shared difficulty)."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    return u < p_challenger, u < p_champion


def test_concept_drift_asks_for_retraining() -> None:
    policy = RetrainPolicy()
    req = policy.consider(MODEL, VERSION, [alert("a1", "concept_drift")], now=10.0)
    assert req is not None
    assert req.kinds == ["concept_drift"] and req.alert_ids == ["a1"]
    assert req.reason == "concept_drift (adwin)"
    assert req.details["suppressed"] == 0 and req.details["version"] == VERSION
    assert len(req.request_id) == 24
    assert orjson.loads(orjson.dumps(req.to_dict()))["kinds"] == ["concept_drift"]


def test_a_performance_alert_asks_too() -> None:
    req = RetrainPolicy().consider(
        MODEL, VERSION, [alert("p1", "performance", detector="accuracy_drop")], now=0.0
    )
    assert req is not None and req.kinds == ["performance"]


def test_an_estimated_performance_alert_does_not_ask_on_its_own() -> None:
    policy = RetrainPolicy(min_interval_s=0.0)
    estimated = alert(
        "e1", "performance", detector="estimated_f1_drop", details={"estimated": True}
    )
    assert policy.consider(MODEL, VERSION, [estimated], now=0.0) is None
    # the labelled drop that follows asks, naming only itself
    labelled = alert("p1", "performance", detector="f1_drop")
    req = policy.consider(MODEL, VERSION, [estimated, labelled], now=1.0)
    assert req is not None and req.kinds == ["performance"] and req.alert_ids == ["p1"]


def test_single_data_drift_does_not_ask_but_sustained_drift_does() -> None:
    policy = RetrainPolicy(data_drift_sustained=3)
    first = alert("d1", "data_drift", feature="income", detector="psi", at=0.0)
    assert policy.consider(MODEL, VERSION, [first], now=0.0) is None
    second = alert("d2", "data_drift", feature="debt", detector="psi", at=300.0)
    assert policy.consider(MODEL, VERSION, [second], now=300.0) is None
    assert policy.consider(MODEL, VERSION, [first], now=350.0) is None  # a duplicate: no count
    third = alert("d3", "data_drift", feature="income", detector="ks", at=600.0)
    req = policy.consider(MODEL, VERSION, [third], now=600.0)
    assert req is not None
    assert req.kinds == ["data_drift"] and req.alert_ids == ["d1", "d2", "d3"]
    assert req.reason == "sustained data_drift (3 alerts)"
    # the evidence was consumed: one more drift alert later does not ask again
    late = alert("d4", "data_drift", feature="age", detector="psi", at=2000.0)
    assert policy.consider(MODEL, VERSION, [late], now=2000.0) is None


def test_old_drift_alerts_expire() -> None:
    policy = RetrainPolicy(data_drift_sustained=2, data_drift_window_s=600.0)
    assert policy.consider(MODEL, VERSION, [alert("d1", "data_drift", at=0.0)], now=0.0) is None
    assert policy.consider(MODEL, VERSION, [alert("d2", "data_drift", at=900.0)], now=900.0) is None
    req = policy.consider(MODEL, VERSION, [alert("d3", "data_drift", at=1000.0)], now=1000.0)
    assert req is not None and req.alert_ids == ["d2", "d3"]


def test_other_versions_and_models_are_ignored() -> None:
    policy = RetrainPolicy()
    other_version = {**alert("a1", "concept_drift"), "version": "4"}
    other_model = {**alert("a2", "concept_drift"), "model": "churn"}
    assert policy.consider(MODEL, VERSION, [other_version, other_model], now=0.0) is None
    assert policy.consider(MODEL, VERSION, [alert("a3", "fairness")], now=0.0) is None
    unversioned = {**alert("a4", "concept_drift"), "version": ""}
    assert policy.consider(MODEL, VERSION, [unversioned], now=0.0) is not None


def test_rate_limit_and_dedupe() -> None:
    policy = RetrainPolicy(min_interval_s=600.0)
    assert policy.consider(MODEL, VERSION, [alert("a1", "concept_drift")], now=0.0) is not None
    assert policy.consider(MODEL, VERSION, [alert("a1", "concept_drift")], now=700.0) is None
    assert policy.consider(MODEL, VERSION, [alert("a2", "performance")], now=100.0) is None
    assert policy.consider(MODEL, VERSION, [alert("a3", "concept_drift")], now=599.0) is None
    req = policy.consider(MODEL, VERSION, [alert("a4", "concept_drift")], now=600.0)
    assert req is not None and req.alert_ids == ["a4"] and req.details["suppressed"] == 2
    # the limit is per (model, version): a new version may ask at once
    assert policy.consider(
        MODEL, "4", [{**alert("b1", "concept_drift"), "version": "4"}], now=601.0
    )


def test_several_triggers_make_one_request() -> None:
    policy = RetrainPolicy()
    alerts = [
        alert("a1", "concept_drift"),
        alert("a2", "concept_drift", detector="ddm"),
        alert("a3", "performance", detector="f1_drop"),
    ]
    req = policy.consider(MODEL, VERSION, alerts, now=0.0)
    assert req is not None
    assert req.kinds == ["concept_drift", "performance"]
    assert req.alert_ids == ["a1", "a2", "a3"]
    assert req.reason == "concept_drift (adwin); performance (f1_drop)"


def test_challenger_that_wins_significantly_asks() -> None:
    policy = RetrainPolicy(challenger_margin=0.02, challenger_min_labels=500)
    challenger, champion = paired(2000, 0.86, 0.80, seed=1)
    req = policy.consider(MODEL, VERSION, [], now=0.0, paired=(challenger, champion))
    assert req is not None and req.kinds == ["challenger"] and req.alert_ids == []
    evidence = req.details["challenger"]
    assert evidence["test"] == "mcnemar" and evidence["labels"] == 2000
    assert evidence["p_value"] < 0.01 and evidence["gain"] >= 0.02
    assert req.reason.startswith("challenger +0.0")


@pytest.mark.parametrize(
    ("n", "p_challenger", "why"),
    [(300, 0.90, "too few labels"), (5000, 0.81, "gain below the margin"), (2000, 0.80, "tie")],
)
def test_challenger_without_enough_evidence_does_not_ask(
    n: int, p_challenger: float, why: str
) -> None:
    policy = RetrainPolicy(challenger_margin=0.02, challenger_min_labels=500)
    pair = paired(n, p_challenger, 0.80, seed=2)
    assert policy.consider(MODEL, VERSION, [], now=0.0, paired=pair) is None, why


def test_challenger_gain_that_is_not_significant_does_not_ask() -> None:
    policy = RetrainPolicy(challenger_margin=0.02, challenger_min_labels=500)
    rng = np.random.default_rng(2)
    # independent errors: many disagreements, so +5 points on 500 labels may still be noise
    challenger = rng.random(500) < 0.83
    champion = rng.random(500) < 0.80
    wins, losses, p = mcnemar_one_sided(challenger, champion)
    assert (wins - losses) / 500 == pytest.approx(0.052) and 0.01 < p < 0.05
    assert policy.consider(MODEL, VERSION, [], now=0.0, paired=(challenger, champion)) is None
    lenient = RetrainPolicy(challenger_alpha=0.05, challenger_min_labels=500)
    assert lenient.consider(MODEL, VERSION, [], now=0.0, paired=(challenger, champion))


def test_challenger_metrics_path_without_pairs() -> None:
    policy = RetrainPolicy(challenger_min_labels=500)
    champ = {"rolling": {"accuracy": 0.78, "count": 1000}, "labels": 5000}
    better = {"rolling": {"accuracy": 0.86, "count": 1000}, "labels": 5000}
    close = {"rolling": {"accuracy": 0.79, "count": 1000}, "labels": 5000}
    assert policy.consider(MODEL, VERSION, [], 0.0, champ, close) is None
    req = policy.consider(MODEL, VERSION, [], 0.0, champ, better)
    assert req is not None and req.details["challenger"]["test"] == "two_proportion_z"


def test_mcnemar_one_sided() -> None:
    wins, losses, p = mcnemar_one_sided(np.ones(20, dtype=bool), np.zeros(20, dtype=bool))
    assert (wins, losses) == (20, 0) and p == pytest.approx(0.5**20)
    assert mcnemar_one_sided(np.ones(5, dtype=bool), np.ones(5, dtype=bool))[2] == 1.0
    with pytest.raises(BatchError):
        mcnemar_one_sided(np.ones(3, dtype=bool), np.ones(2, dtype=bool))


def test_snapshot_round_trip_keeps_rate_limit_dedupe_and_drift() -> None:
    policy = RetrainPolicy(min_interval_s=600.0)
    policy.consider(MODEL, VERSION, [alert("a1", "concept_drift")], now=0.0)
    policy.consider(MODEL, VERSION, [alert("a2", "concept_drift")], now=10.0)  # suppressed
    policy.consider(MODEL, VERSION, [alert("d1", "data_drift"), alert("d2", "data_drift")], 20.0)
    twin = RetrainPolicy(min_interval_s=600.0)
    twin.restore(orjson.loads(orjson.dumps(policy.snapshot())))
    assert twin.snapshot() == policy.snapshot()
    assert twin.consider(MODEL, VERSION, [alert("a3", "concept_drift")], now=100.0) is None
    req = twin.consider(MODEL, VERSION, [alert("d3", "data_drift", at=700.0)], now=700.0)
    assert req is not None and req.alert_ids == ["d1", "d2", "d3"]
    assert req.details["suppressed"] == 2
    assert twin.consider(MODEL, VERSION, [alert("a1", "concept_drift")], now=5000.0) is None


def test_bad_settings_and_snapshots() -> None:
    with pytest.raises(MonitorConfigError):
        RetrainPolicy(data_drift_sustained=0)
    with pytest.raises(MonitorConfigError):
        RetrainPolicy(min_interval_s=-1.0)
    with pytest.raises(SnapshotError, match="schema_version"):
        RetrainPolicy().restore({"schema_version": 0})
    with pytest.raises(SnapshotError, match="malformed"):
        RetrainPolicy().restore({"schema_version": 1, "seen": [], "keys": [{"model": "m"}]})
