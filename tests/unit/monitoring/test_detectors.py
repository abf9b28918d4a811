"""ChangeDetector: River detectors that detect, and whose JSON snapshot rebuilds them."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from monitoring import ChangeDetector, DriftMonitor, SnapshotError


def _shifted(seed: int, n: int = 400, shift: float = 2.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0, 1, n), rng.normal(shift, 1, n)].tolist()


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("adwin", {"delta": 0.002, "clock": 1}),
        ("pagehinkley", {"delta": 0.5, "threshold": 15, "min_instances": 10, "alpha": 1.0}),
    ],
)
def test_real_valued_detectors_find_a_mean_shift_and_not_before(
    kind: str, params: dict[str, float]
) -> None:
    det = ChangeDetector(kind, params)
    hits = det.update_many(_shifted(0))
    assert hits, "no detection"
    assert 400 <= hits[0] < 450
    assert det.detections == len(hits)
    assert det.updates == 800


def test_ddm_finds_a_jump_of_the_error_rate() -> None:
    rng = np.random.default_rng(1)
    errors = np.r_[rng.random(3000) < 0.05, rng.random(1000) < 0.4].astype(float).tolist()
    det = ChangeDetector("ddm", {"warm_start": 200})
    hits = det.update_many(errors)
    assert len(hits) >= 1
    assert 3000 <= hits[0] < 3100


@pytest.mark.parametrize("kind", ["adwin", "pagehinkley", "ddm", "eddm", "hddm_a", "hddm_w"])
def test_restored_detector_continues_exactly_like_the_original(kind: str) -> None:
    rng = np.random.default_rng(2)
    if kind in ("ddm", "eddm", "hddm_a", "hddm_w"):
        head = (rng.random(300) < 0.1).astype(float).tolist()
        tail = (rng.random(600) < 0.5).astype(float).tolist()
    else:
        head, tail = rng.normal(0, 1, 300).tolist(), rng.normal(3, 1, 600).tolist()
    original = ChangeDetector(kind, replay_limit=1000)
    original.update_many(head)
    state = orjson.loads(orjson.dumps(original.snapshot()))
    twin = ChangeDetector(kind, replay_limit=1000)
    twin.restore(state)
    assert twin.updates == original.updates
    assert twin.update_many(tail) == original.update_many(tail)
    assert twin.detections == original.detections


def test_replay_is_capped_and_cleared_after_a_detection() -> None:
    det = ChangeDetector("adwin", {"delta": 0.002, "clock": 1}, replay_limit=50)
    det.update_many(np.zeros(200).tolist())
    assert len(det.snapshot()["replay"]) == 50
    hits = det.update_many(np.full(100, 5.0).tolist())
    assert hits
    assert len(det.snapshot()["replay"]) < 100


def test_restore_refuses_another_kind_or_garbage() -> None:
    det = ChangeDetector("adwin")
    with pytest.raises(SnapshotError, match="kind"):
        det.restore(ChangeDetector("ddm").snapshot())
    with pytest.raises(SnapshotError, match="malformed"):
        det.restore({"kind": "adwin", "replay": ["x"], "updates": 0, "detections": 0})


def test_change_detector_is_a_drift_monitor() -> None:
    assert isinstance(ChangeDetector("adwin"), DriftMonitor)
    with pytest.raises(ValueError, match="unknown detector"):
        ChangeDetector("kswin")
