"""The detection benchmark, run ``--quick`` in memory and from the command line.

It checks that every contender is measured on every change and on the stationary stream, that
the label-free estimate is measured, and that the table and the JSON carry them; the floors
themselves are the full run's to judge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from bench import estimation
from bench.attribution import cases
from bench.detection import CONTENDERS, SILENT, render, scenarios
from bench.detection_streams import CHANGE, Scenario, lorden_bound, stream
from streams.cli.main import main


def test_quick_run_measures_every_contender_on_every_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "detection.json"
    assert main(["bench", "detection", "--quick", "--json", str(out)]) == 0
    table, progress = capsys.readouterr()
    report = orjson.loads(out.read_bytes())
    assert report["quick"] is True
    assert [row["change"] for row in report["changes"]] == [s.name for s in scenarios(True)]
    for row in report["changes"]:
        for contender in CONTENDERS:
            res = row[contender]
            assert res["runs"] == report["seeds"] == 2
            assert 0 <= res["found"] <= res["runs"]
        # Driftline's calibrated detectors find every one of these changes after it happened.
        assert row["Driftline"]["found"] == 2 and row["Driftline"]["before_change"] == 0
        assert row["Driftline"]["median"] > 0
    # A correlation break the score ignores: the PCA's detector alone finds it.
    (silent,) = [row for row in report["changes"] if row["change"] == SILENT]
    assert silent["Driftline PCA only"]["found"] == 2
    assert silent["Driftline without PCA"]["found"] == 0
    (stationary,) = report["stationary"]
    assert stationary["events"] == 100_000 and stationary["Driftline"] == 0.0
    # the label-free estimate holds under the covariate shift, not under the concept drift
    estimated = report["estimation"]
    assert [r["change"] for r in estimated] == [s.name for s, _ in estimation.scenarios(True)]
    follow, concept = estimated
    assert follow["windows"] == concept["windows"] == 20
    assert abs(follow["mean_difference"]) < 0.03 and concept["mean_difference"] > 0.1
    explained = report["attribution"]
    assert [r["shift"] for r in explained["cases"]] == [sc.name for _, sc in cases(True)]
    assert explained["moved"] >= 10 and explained["first"] == explained["moved"]
    assert table.strip() == render(report).strip()
    assert all(c in table for c in CONTENDERS) and "| mean +0.25σ | gaussian |" in table
    # rows and headers: the delays, the false alarms, the estimates, the attribution
    rows = len(report["changes"]) + 1 + 2 + len(estimated) + 1 + len(explained["cases"]) + 2
    assert table.count("\n| ") == rows
    # a line per change, per estimate, per attribution case, and the JSON's
    lines = len(report["changes"]) + len(estimated) + len(explained["cases"]) + 2
    assert progress.count("\n") == lines


def test_streams_change_at_the_change_point_only() -> None:
    sc = Scenario("mean +1σ", "gaussian", "mean", 1.0)
    a, b = stream(sc, 3, CHANGE + 5000), stream(sc, 3, CHANGE + 5000)
    assert (a.numeric == b.numeric).all()  # seeded
    before, after = a.numeric[:CHANGE, 0].mean(), a.numeric[CHANGE:, 0].mean()
    assert abs(before) < 0.05 and abs(after - 1.0) < 0.1
    assert abs(a.numeric[CHANGE:, 1].mean() - a.numeric[:CHANGE, 1].mean()) < 0.1


def test_a_silent_correlation_break_keeps_the_marginals_and_the_labels() -> None:
    sc = Scenario("silent", "gaussian", "correlation", feature=4)
    chunk = stream(sc, 5, 2 * CHANGE)
    x, after = chunk.numeric[:CHANGE], chunk.numeric[CHANGE:]
    assert abs(np.corrcoef(x[:, 4], x[:, 7])[0, 1] - 0.8) < 0.02
    assert abs(np.corrcoef(after[:, 4], after[:, 7])[0, 1]) < 0.02
    assert abs(np.corrcoef(after[:, 0], after[:, 1])[0, 1] - 0.8) < 0.02  # the other pair kept
    assert abs(after[:, 7].std() - 1.0) < 0.03 and abs(after[:, 7].mean()) < 0.03
    assert abs(chunk.y[:CHANGE].mean() - chunk.y[CHANGE:].mean()) < 0.02


def test_the_bound_is_lordens_approximation() -> None:
    sc = Scenario("mean +0.25σ", "gaussian", "mean", 0.25)
    assert lorden_bound(sc) == pytest.approx(531, rel=0.01)  # log(16e6) / (0.25**2 / 2)
    assert lorden_bound(Scenario("x", "heavy", "mean", 0.25)) is None


def test_an_unknown_suite_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "latency"]) == 2
    err = capsys.readouterr().err
    assert "throughput" in err and "detection" in err


def test_a_prior_shift_keeps_its_new_share_all_along() -> None:
    chunk = stream(Scenario("prior", "gaussian", "prior", 0.75), 4, CHANGE + 20_000)
    before = chunk.y[:CHANGE].mean()
    halves = chunk.y[CHANGE : CHANGE + 10_000].mean(), chunk.y[CHANGE + 10_000 :].mean()
    assert 0.4 < before < 0.6 and all(abs(h - 0.75) < 0.02 for h in halves)
