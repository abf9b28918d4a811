"""`driftline alerts`: one line per alert, with what explains it when the alert says."""

from __future__ import annotations

from typing import Any

import pytest

from streams.cli.ops import _print_alert
from tests.unit.streams.test_sinks_routing import alert


def _line(capsys: pytest.CaptureFixture[str], **over: Any) -> str:
    _print_alert(alert(**over), as_json=False)
    return capsys.readouterr().out.rstrip("\n")


def test_an_alert_line_names_the_features_that_explain_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ranked = {"explained_by": [["x0", 0.8213], ["x3", 0.1204]]}
    line = _line(capsys, kind="prediction_drift", feature=None, detector="cusum", details=ranked)
    assert line == (
        "1700000000 sea@3 prediction_drift cusum=0.41 (threshold 0.2); "
        "explained by x0 0.82, x3 0.12"
    )
    concept = _line(capsys, kind="performance", feature=None, details={"explained_by": []})
    assert concept.endswith("; explained by no feature drifted (concept drift?)")
    multi = {"test": "multivariate", "columns": [["x4", 0.5], ["x7", 0.5]]}
    assert _line(capsys, feature=None, detector="cusum", details=multi).endswith(
        "data_drift cusum=0.41 (threshold 0.2); explained by columns x4 0.5, x7 0.5"
    )
    assert _line(capsys) == "1700000000 sea@3 data_drift x1 psi=0.41 (threshold 0.2)"
