"""AlertPolicy: one alert per (model, version, kind, feature), then a cooldown."""

from __future__ import annotations

import orjson
import pytest

from monitoring import AlertPolicy, Finding, SnapshotError


def _f(kind: str = "data_drift", detector: str = "psi", feature: str | None = "x1") -> Finding:
    return Finding(kind, detector, 0.5, 0.2, feature, {"variant": "champion"})  # type: ignore[arg-type]


def test_detectors_agreeing_on_one_change_make_one_alert() -> None:
    policy = AlertPolicy()
    out = policy.decide("m", "1", [_f(detector="psi"), _f(detector="ks"), _f(detector="adwin")], 0)
    assert len(out) == 1
    assert out[0].details["detectors"] == ["psi", "ks", "adwin"]
    assert out[0].details["variant"] == "champion"


def test_cooldown_silences_a_key_then_reports_what_it_suppressed() -> None:
    policy = AlertPolicy(cooldown_s=60.0)
    assert len(policy.decide("m", "1", [_f()], now=0.0)) == 1
    for t in range(1, 60):
        assert policy.decide("m", "1", [_f()], now=float(t)) == []
    again = policy.decide("m", "1", [_f()], now=60.0)
    assert [a.details["suppressed"] for a in again] == [59]


def test_keys_are_independent() -> None:
    policy = AlertPolicy(cooldown_s=60.0)
    policy.decide("m", "1", [_f()], now=0.0)
    fresh = [
        _f(feature="x2"),
        _f(kind="data_quality", detector="missing_rate"),
        _f(kind="prediction_drift", feature=None),
    ]
    assert len(policy.decide("m", "1", fresh, now=1.0)) == 3
    assert len(policy.decide("m", "2", [_f()], now=1.0)) == 1
    assert len(policy.decide("other", "1", [_f()], now=1.0)) == 1
    assert policy.decide("m", "1", [_f()], now=2.0) == []


def test_thousands_of_findings_of_one_drift_make_one_alert_per_cooldown() -> None:
    policy = AlertPolicy(cooldown_s=300.0)
    alerts = sum(len(policy.decide("m", "1", [_f()], now=t * 0.1)) for t in range(5000))
    assert alerts == 2  # at t=0 and t=300 within 500 s


def test_snapshot_restore_keeps_the_cooldown_across_a_restart() -> None:
    policy = AlertPolicy(cooldown_s=60.0)
    policy.decide("m", "1", [_f(), _f(feature=None, kind="concept_drift")], now=0.0)
    policy.decide("m", "1", [_f()], now=10.0)
    twin = AlertPolicy(cooldown_s=60.0)
    twin.restore(orjson.loads(orjson.dumps(policy.snapshot())))
    assert twin.decide("m", "1", [_f()], now=30.0) == []
    assert [a.details["suppressed"] for a in twin.decide("m", "1", [_f()], now=61.0)] == [2]
    with pytest.raises(SnapshotError):
        twin.restore({"schema_version": 0})
    with pytest.raises(SnapshotError, match="malformed"):
        twin.restore({"schema_version": 1, "keys": [{"model": "m"}]})


def test_finding_round_trips_through_json() -> None:
    f = _f()
    assert Finding.from_dict(orjson.loads(orjson.dumps(f.to_dict()))) == f
