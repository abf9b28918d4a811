"""Windowed drift tests: a failure is a finding only once it repeats in consecutive windows."""

from __future__ import annotations

import numpy as np
import pytest

from models.card import ModelCard
from models.data import synthetic
from models.workflow import TrainOptions, train
from monitoring.config import MonitorConfig
from monitoring.drift import FeatureMonitor, ScoreMonitor
from tests.unit.monitoring.conftest import Stream

WINDOW = 1000


def _windowed(mon: FeatureMonitor, x: np.ndarray) -> list[tuple[str, dict]]:
    """Feed ``x`` in batches of 250; the (key, details) of the windowed drift findings."""
    out = []
    for s in range(0, len(x), 250):
        for key, f, periodic in mon.observe(x[s : s + 250], [], {}):
            if f is not None and periodic and f.kind == "data_drift":
                out.append((key, f.details))
    return out


def _windows(stream: Stream, shifted: list[bool]) -> np.ndarray:
    """One window of live rows per flag, feature x3 shifted by +0.3 where the flag is set."""
    x = stream.live.numeric[: WINDOW * len(shifted)].copy()
    for i, flag in enumerate(shifted):
        if flag:
            x[i * WINDOW : (i + 1) * WINDOW, 3] += 0.3
    return x


def test_one_failed_window_is_not_a_finding_two_in_a_row_are(hyperplane: Stream) -> None:
    mon = FeatureMonitor(hyperplane.card, MonitorConfig(window=WINDOW))
    x = _windows(hyperplane, [True, False, True, True, True])
    found = []
    for w in range(5):
        found.append(_windowed(mon, x[w * WINDOW : (w + 1) * WINDOW]))
    assert found[0] == [] and found[1] == [] and found[2] == []
    assert {k for k, _ in found[3]} == {"data_drift|x3|psi", "data_drift|x3|ks"}
    assert [d["windows_failed"] for _, d in found[3]] == [2, 2]
    assert [d["windows_failed"] for _, d in found[4]] == [3, 3]


def test_confirm_windows_1_reports_the_first_failed_window(hyperplane: Stream) -> None:
    mon = FeatureMonitor(hyperplane.card, MonitorConfig(window=WINDOW, confirm_windows=1))
    found = _windowed(mon, _windows(hyperplane, [True]))
    assert {k for k, _ in found} == {"data_drift|x3|psi", "data_drift|x3|ks"}


def test_a_failed_window_is_remembered_across_a_snapshot(hyperplane: Stream) -> None:
    config = MonitorConfig(window=WINDOW)
    x = _windows(hyperplane, [True, True])
    mon = FeatureMonitor(hyperplane.card, config)
    assert _windowed(mon, x[:WINDOW]) == []
    again = FeatureMonitor(hyperplane.card, config)
    again.restore(mon.snapshot())
    assert {k for k, _ in _windowed(again, x[WINDOW:])} == {
        "data_drift|x3|psi",
        "data_drift|x3|ks",
    }


def test_score_windows_need_confirmation_too(hyperplane: Stream) -> None:
    _, p, _ = hyperplane.scored()
    squeezed = np.clip(p[: 2 * WINDOW] * 0.6 + 0.35, 0.0, 1.0)
    mon = ScoreMonitor(hyperplane.card.reference.score, MonitorConfig(window=WINDOW))
    first = [k for k, f, per in mon.observe(squeezed[:WINDOW], {}) if f is not None and per]
    second = [k for k, f, per in mon.observe(squeezed[WINDOW:], {}) if f is not None and per]
    assert first == []
    assert set(second) >= {"prediction_drift||psi"}


@pytest.fixture(scope="module")
def small_reference() -> tuple[ModelCard, np.ndarray]:
    """A card whose profile is 2,400 training rows, and the 100,000 rows that follow them."""
    ds = synthetic("hyperplane", rows=3000, seed=1)
    card = train(ds, TrainOptions(name="m", estimator="logreg", folds=3, seed=1)).card
    live = synthetic("hyperplane", rows=103_000, seed=1).subset(np.arange(3000, 103_000))
    return card, np.asarray(live.numeric, dtype=np.float64)


@pytest.mark.parametrize(("confirm", "quiet"), [(1, False), (2, True)])
def test_a_stationary_stream_against_a_finite_reference(
    small_reference: tuple[ModelCard, np.ndarray], confirm: int, quiet: bool
) -> None:
    # The reference of x0 sits 0.028 off the true (uniform) distribution: single windows fail
    # KS far more often than their level says; two in a row do not.
    card, x = small_reference
    rng = np.random.default_rng(0)
    failed = 0
    for _ in range(14):
        mon = FeatureMonitor(card, MonitorConfig(window=WINDOW, confirm_windows=confirm))
        failed += len(_windowed(mon, x[rng.permutation(len(x))]))
    assert (failed == 0) is quiet, failed
