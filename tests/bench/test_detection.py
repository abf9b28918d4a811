"""The detection benchmark, run ``--quick`` in memory and from the command line.

It checks that every contender is measured on every change and on the stationary stream, that
the label-free estimate is measured, and that the table and the JSON carry them; the floors
themselves are the full run's to judge.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench import estimation
from bench.detection import CONTENDERS, render, scenarios
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
    (stationary,) = report["stationary"]
    assert stationary["events"] == 100_000 and stationary["Driftline"] == 0.0
    # the label-free estimate holds under the covariate shift, not under the concept drift
    estimated = report["estimation"]
    assert [r["change"] for r in estimated] == [s.name for s, _ in estimation.scenarios(True)]
    follow, concept = estimated
    assert follow["windows"] == concept["windows"] == 20
    assert abs(follow["mean_difference"]) < 0.03 and concept["mean_difference"] > 0.1
    assert table.strip() == render(report).strip()
    assert all(c in table for c in CONTENDERS) and "| mean +0.25σ | gaussian |" in table
    # rows and the three tables' headers
    assert table.count("\n| ") == len(report["changes"]) + 1 + 2 + len(estimated) + 1
    # a line each, and the JSON's
    assert progress.count("\n") == len(report["changes"]) + 2 + len(estimated)


def test_streams_change_at_the_change_point_only() -> None:
    sc = Scenario("mean +1σ", "gaussian", "mean", 1.0)
    a, b = stream(sc, 3, CHANGE + 5000), stream(sc, 3, CHANGE + 5000)
    assert (a.numeric == b.numeric).all()  # seeded
    before, after = a.numeric[:CHANGE, 0].mean(), a.numeric[CHANGE:, 0].mean()
    assert abs(before) < 0.05 and abs(after - 1.0) < 0.1
    assert abs(a.numeric[CHANGE:, 1].mean() - a.numeric[:CHANGE, 1].mean()) < 0.1


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
