"""The HTML report: every plot inline, no external URL, old cards and empty history handled."""

from __future__ import annotations

import base64
import re
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import orjson
import pytest

from models.card import ModelCard
from models.data import synthetic
from models.errors import ConfigError
from models.report import LiveHistory, VersionChange, merge_changes, render_report
from models.report_timeline import _metrics_panel
from models.workflow import TrainOptions, TrainResult, train

T0 = 1_790_000_000.0
GROUPS = ("<40", "40-59", "60+")
FEATURES = ("salary", "commission", "age", "loan")

_IMG = re.compile(r'<img data-plot="([^"]+)" alt="[^"]*" src="data:image/png;base64,([^"]+)">')


def fake_history(points: int = 120, step_s: float = 30.0) -> LiveHistory:
    """Two hours of monitoring: v1 serves, salary drifts, v2 is promoted, then rolled back."""
    rng = np.random.default_rng(3)
    promote_at, rollback_at = points // 2, int(points * 0.8)
    bands = (("", 0.02), ("_low", 0.05), ("_high", -0.01))  # the estimate and its band
    out: list[dict[str, Any]] = []
    for k in range(points):
        at = T0 + k * step_s
        champion = "2" if promote_at <= k < rollback_at else "1"
        drifted = k > points // 3
        acc = 0.9 - (0.15 if drifted and champion == "1" else 0.0) + rng.normal(0, 0.01)
        scope = f"{champion}/champion"
        features = {
            f: {"psi": (0.4 if f == "salary" and drifted else 0.02) + abs(rng.normal(0, 0.01))}
            for f in FEATURES
        }
        out.append(
            {
                "v": 1,
                "at": at,
                "worker": "w1",
                "champion": champion,
                "status": "alerting" if drifted else "ok",
                "events": 1000 * (k + 1),
                "labels": 400 * (k + 1),
                "metrics": {
                    scope: {
                        "labels": 400 * (k + 1),
                        "count": 400,
                        "accuracy": acc,
                        "f1": acc - 0.05,
                        "roc_auc": acc + 0.03,
                        "estimated": {
                            "events": 2000,
                            **{
                                f"{m}{end}": acc - d for end, d in bands for m in ("accuracy", "f1")
                            },
                        },
                    }
                },
                "groups": {
                    scope: {
                        "dp_gap": 0.1 + 0.1 * drifted,
                        "eo_gap": 0.05,
                        "groups": {
                            g: {"count": 100, "selection_rate": 0.3, "tpr": 0.8, "fpr": 0.1}
                            for g in GROUPS
                        },
                    }
                },
                "drift": {
                    "features": {"champion": features},
                    "scores": {scope: {"psi": 0.05}},
                    "active": [],
                    "counts": {"data_drift": int(drifted)},
                },
            }
        )
    alerts = [
        {
            "kind": "data_drift",
            "at": T0 + (points // 3 + 2) * step_s,
            "version": "1",
            "feature": "salary",
            "detector": "psi",
            "statistic": 0.41,
            "threshold": 0.2,
        },
        {
            "kind": "performance",
            "at": T0 + (points // 3 + 5) * step_s,
            "version": "1",
            "feature": None,
            "detector": "accuracy_drop",
            "statistic": 0.74,
            "threshold": 0.8,
        },
    ]
    changes = [
        VersionChange(T0 + promote_at * step_s - 5, "promote", "2", "1", "sequential test"),
        VersionChange(T0 + rollback_at * step_s - 5, "rollback", "1", "2", "live accuracy"),
    ]
    return LiveHistory(points=out, alerts=alerts, changes=changes, max_points=2880)


@pytest.fixture(scope="module")
def two_versions() -> list[ModelCard]:
    """v1 (with per-group thresholds) and v2 of one small Agrawal model."""
    ds = synthetic("agrawal", rows=1200, seed=4)
    cards = []
    for version, mitigate in (("1", "threshold"), ("2", "none")):
        result: TrainResult = train(
            ds, TrainOptions(name="credit", folds=3, mitigate=mitigate, seed=int(version))
        )
        cards.append(result.card.model_copy(update={"version": version}))
    return cards


def _plots(page: str) -> dict[str, bytes]:
    return {name: base64.b64decode(data) for name, data in _IMG.findall(page)}


def test_report_has_every_plot_inline_and_no_external_url(two_versions: list[ModelCard]) -> None:
    page = render_report(two_versions, fake_history(), champion="1", generated_at=T0 + 4000)
    plots = _plots(page)
    assert set(plots) == {"confusion", "roc", "calibration", "fairness-1", "fairness-2", "timeline"}
    for name, data in plots.items():
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
        assert len(data) > 5000, f"{name} looks empty"
    for title in (
        "Training evaluation",
        "Confusion matrix",
        "ROC curve",
        "Calibration curve",
        "Per-group metrics",
        "Live history",
        "Timeline",
        "Latest metrics",
        "Alerts (2)",
        "Version changes (2)",
    ):
        assert f">{title}</h" in page, title
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "://" not in page
    assert "<script" not in page
    assert "v1 (champion)" in page
    assert "120 monitoring points (at most 2880 kept)" in page
    assert "sequential test" in page and "rollback" in page


def test_old_card_without_curves_still_renders_with_a_note(two_versions: list[ModelCard]) -> None:
    doc = orjson.loads(two_versions[0].to_json())
    del doc["metrics"]["curves"]  # as written before curves were recorded
    old = ModelCard.model_validate(doc)
    assert old.metrics.curves is None
    page = render_report([old], None)
    plots = _plots(page)
    assert "confusion" in plots and "fairness-1" in plots
    assert "roc" not in plots and "calibration" not in plots
    assert "ROC curve not recorded for v1" in page
    assert "Calibration curve not recorded for v1" in page
    assert "No live history" in page

    mixed = _plots(render_report([old, two_versions[1]], LiveHistory()))
    assert {"roc", "calibration"} <= set(mixed), "the version that has curves is still drawn"


def test_card_keeps_compact_curves(two_versions: list[ModelCard]) -> None:
    card = two_versions[0]
    curves = card.metrics.curves
    assert curves is not None and curves.roc is not None
    assert 2 < len(curves.roc.fpr) == len(curves.roc.tpr) <= 100
    assert (curves.roc.fpr[0], curves.roc.tpr[0], curves.roc.fpr[-1]) == (0.0, 0.0, 1.0)
    assert np.all(np.diff(curves.roc.fpr) >= 0)
    cal = curves.calibration
    assert len(cal.bin_edges) == 11 and len(cal.counts) == 10
    assert sum(cal.counts) == card.metrics.holdout.rows
    assert len(orjson.dumps(curves.model_dump(mode="json"))) < 3000
    assert "curves" not in card.summary()["metrics"]  # type: ignore[operator]


def test_many_roc_points_are_down_sampled() -> None:
    from models.evaluation import holdout_curves

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20_000)
    p = np.clip(0.2 * y + 0.8 * rng.random(20_000), 0, 1)
    roc = holdout_curves(y, p).roc
    assert roc is not None and len(roc.fpr) == 100
    assert roc.fpr[-1] == roc.tpr[-1] == 1.0
    assert holdout_curves(np.zeros(50, dtype=np.int64), rng.random(50)).roc is None


def test_history_without_points_plots_alerts_only(two_versions: list[ModelCard]) -> None:
    full = fake_history()
    page = render_report(two_versions[:1], LiveHistory(alerts=full.alerts))
    assert "timeline" in _plots(page)
    assert "No monitoring point in Redis yet" in page


def test_a_report_needs_cards_of_one_model(two_versions: list[ModelCard]) -> None:
    with pytest.raises(ConfigError):
        render_report([])
    other = two_versions[1].model_copy(update={"name": "other"})
    with pytest.raises(ConfigError, match="one model"):
        render_report([two_versions[0], other])


def test_text_from_redis_is_escaped(two_versions: list[ModelCard]) -> None:
    hostile = LiveHistory(
        changes=[VersionChange(T0, "promote", "2", "1", reason="<script>alert(1)</script>")]
    )
    page = render_report(two_versions[:1], hostile)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_merge_changes_dedupes_sources_and_infers_unexplained_switches() -> None:
    by_hand = VersionChange(T0, "promote", "2", "1")
    recorded = VersionChange(T0 + 2, "promote", "2", "1", reason="sequential test")
    later = VersionChange(T0 + 600, "promote", "2", "1")
    points = [
        {"at": T0 - 30, "champion": "1"},
        {"at": T0 + 30, "champion": "2"},
        {"at": T0 + 60, "champion": "3"},
    ]
    merged = merge_changes([later, by_hand, recorded], points)
    assert [(c.action, c.version, c.reason) for c in merged] == [
        ("promote", "2", "sequential test"),
        ("served", "3", ""),
        ("promote", "2", ""),
    ]


def test_the_estimate_is_drawn_and_listed_beside_the_realized_figures(
    two_versions: list[ModelCard],
) -> None:
    history = fake_history(points=10)
    fig, ax = plt.subplots()
    _metrics_panel(ax, history.points, [p["at"] for p in history.points])
    styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
    plt.close(fig)
    assert styles["v1/champion accuracy"] == "-" and styles["v1/champion f1"] == "--"
    assert styles["v1/champion est. accuracy"] == ":" and styles["v1/champion est. f1"] == "-."
    page = render_report(two_versions, history, champion="1", generated_at=T0 + 4000)
    latest = page[page.index(">Latest metrics</h") :]
    last = history.points[-1]["metrics"]["1/champion"]["estimated"]
    assert "<th>est. accuracy</th><th>est. F1</th>" in latest
    f1 = f"{last['f1']:.3f} [{last['f1_low']:.3f}–{last['f1_high']:.3f}]"
    assert f'<td class="num">{f1}</td>' in latest


def test_the_alerts_table_says_what_explains_each_alert(two_versions: list[ModelCard]) -> None:
    base = {"at": T0, "version": "1", "statistic": 20.0, "threshold": 12.7}
    alerts = [
        {
            **base,
            "kind": "prediction_drift",
            "feature": None,
            "detector": "cusum",
            "details": {"explained_by": [["salary", 0.8213], ["age", 0.1787]]},
        },
        {
            **base,
            "kind": "data_drift",
            "feature": None,
            "detector": "cusum",
            "details": {"test": "multivariate", "columns": [["salary", 0.5], ["loan", 0.5]]},
        },
    ]
    page = render_report(two_versions[:1], LiveHistory(alerts=alerts))
    assert "<th>explained by</th>" in page
    assert "<td>salary 0.82, age 0.18</td>" in page
    assert "<td>columns salary 0.5, loan 0.5</td>" in page
