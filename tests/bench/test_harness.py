"""The benchmark harness, run ``--quick`` against the session's real broker and Redis.

It checks that every figure is measured and reported, that nothing is lost on the way, and
that the JSON and the table carry them; never whether a speed target is met (that is the
harness's own job, on a quiet machine, not a test's).
"""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from bench.components import CHALLENGER_ALONE, MALFORMED, MONITORS_ALONE, ONNX_ALONE
from bench.harness import (
    BASELINES,
    TARGETS,
    medians,
    monitoring_cost_fraction,
    paired_ratio,
    run,
)
from bench.table import render
from streams.cli.main import main
from tests.conftest import Endpoints


@pytest.mark.slow
def test_quick_run_measures_every_figure(services: Endpoints, tmp_path: Path) -> None:
    lines: list[str] = []
    report = run(
        quick=True, say=lines.append, keep=tmp_path, endpoints=(services.kafka, services.redis)
    )
    f = report["figures"]
    contenders = (
        "driftline_monitoring_on",
        "driftline_monitoring_off",
        "driftline_exactly_once",
        *BASELINES,
    )
    for contender in contenders:
        assert f[contender]["events_per_s"] > 0, contender
        assert f[contender]["by_broker_time_per_s"] > 0, contender
        assert 0 < f[contender]["peak_rss_mb"] < 4096, contender
    for baseline in BASELINES:  # every ratio is printed
        ratio = report["ratios"][f"driftline_monitoring_on / {baseline}"]
        assert ratio == pytest.approx(
            f["driftline_monitoring_on"]["events_per_s"] / f[baseline]["events_per_s"]
        )
    for share in ("25", "50", "75"):
        lat = f["latency"][share]
        assert lat["lost"] == 0
        assert 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"]
        assert len(lat["runs"]) == report["plan"]["runs"]
    swap = f["hot_swap"]
    assert swap["lost"] == 0, "a promotion under load lost events"
    assert swap["sent"] > 0 and math.isfinite(swap["max_gap_ms"])
    assert math.isfinite(swap["swapped_after_s"]), "the new version never served"
    assert len(swap["runs"]) == report["plan"]["runs"]
    assert swap["worst_gap_ms"] >= swap["max_gap_ms"]
    cost = f["monitoring_cost_us_per_event"]
    assert cost["monitoring: total per event"] > 0
    for alone in (ONNX_ALONE, MALFORMED, MONITORS_ALONE, CHALLENGER_ALONE):
        assert cost[alone] > 0, alone  # the unit tests' former timing guards, measured here
    assert cost["monitoring: total per event"] == pytest.approx(
        sum(us for name, us in cost.items() if name.startswith("monitoring: "))
        - cost["monitoring: total per event"]
    ), "the figures measured alone are not summed into the total"
    assert set(report["targets"]) == set(TARGETS)
    assert report["machine"]["cpus"] >= 1 and report["machine"]["kafka"]
    table = render(report)
    assert "Driftline, monitoring on" in table and "largest gap" in table
    assert "Quix Streams" in table and "driftline_monitoring_on / relay" in table
    assert "exactly once ÷ at least once" in table
    assert table.count("\n") > 20
    assert any("run 1/1" in line for line in lines)
    assert any("warm-up drain" in line for line in lines)
    orjson.dumps(report)  # the report is plain JSON


def test_bench_command_explains_a_bad_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--runs", "3"]) == 2
    err = capsys.readouterr().err
    assert "No such option: --runs" in err and "Usage: driftline bench" in err


def test_figures_are_medians_over_the_runs_and_losses_are_totals() -> None:
    runs = [
        {"p99_ms": 30.0, "lost": 0, "sent": 100},
        {"p99_ms": 90.0, "lost": 2, "sent": 100},
        {"p99_ms": 40.0, "lost": 1, "sent": 100},
    ]
    figure = medians(runs, summed=("lost", "sent"))
    assert figure["p99_ms"] == 40.0  # the median, not the mean (53.3) nor the last run
    assert figure["lost"] == 3 and figure["sent"] == 300
    assert figure["runs"] == runs


def test_monitoring_cost_pairs_the_drains_of_each_round() -> None:
    # Each round's pair says what monitoring cost in its own minute: 20, 20 and 33 %. The
    # medians would set round 3's on (30,000) against round 2's off (40,000): 25 %.
    on, off = [24_000.0, 32_000.0, 30_000.0], [30_000.0, 40_000.0, 45_000.0]
    assert monitoring_cost_fraction(on, off) == pytest.approx(0.20)
    assert monitoring_cost_fraction([30_000.0], [20_000.0]) == pytest.approx(-0.5)
    assert math.isnan(monitoring_cost_fraction([], []))


def test_the_exactly_once_ratio_pairs_the_drains_of_each_round() -> None:
    exactly_once, at_least_once = [27_000.0, 36_000.0, 40_500.0], [30_000.0, 40_000.0, 45_000.0]
    assert paired_ratio(exactly_once, at_least_once) == pytest.approx(0.9)
    assert math.isnan(paired_ratio([], []))
