"""``driftline status``'s table: realized figures and the label-free estimate beside them."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from streams.cli.ops import _show


def _entry(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "credit",
        "aliases": {"champion": "3"},
        "routing": {"mode": "champion"},
        "stage": None,
        "health": {"status": "alerting", "events": 2000, "labels": 0, "metrics": metrics},
        "last_alerts": [],
    }


def test_the_estimate_shows_as_value_and_band_beside_the_realized_figures() -> None:
    band = {"value": 0.61234, "low": 0.58, "high": 0.6449}
    metrics = {
        "3/champion": {"estimated": {"events": 2000, "accuracy": band, "f1": None}},
        "2/shadow": {"labels": 5, "cumulative": {"accuracy": 0.9}, "rolling": {"f1": 0.8}},
    }
    console = Console(record=True, width=240)
    _show(console, _entry(metrics))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "scope" in line)
    assert header.index("rolling F1") < header.index("est. acc.") < header.index("est. F1")
    champion, shadow = (_cells(text, scope) for scope in ("3/champion", "2/shadow"))
    assert champion[-2:] == ["0.612 [0.580–0.645]", "-"]  # F1 without a denominator: none
    assert shadow[2] == "0.900" and shadow[-2:] == ["-", "-"]


def _cells(text: str, scope: str) -> list[str]:
    line = next(line for line in text.splitlines() if f" {scope} " in line)
    return [c.strip() for c in line.strip("│ ").split("│")]
