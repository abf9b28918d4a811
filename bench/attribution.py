"""The attribution row of ``driftline bench detection``: is the shifted feature named first?

On the Gaussian family's streams (:mod:`bench.detection_streams`), one feature the label
depends on is shifted at event 20,000 (its mean by +0.25σ and −0.5σ, its spread × 1.5; for the
categorical feature, category ``a``'s share 25 → 40 % and → 55 %; ``--quick``: −0.5σ and
55 % only). Driftline's monitors watch the stream at their defaults from 8,192 events before
the change; the first prediction-drift finding after the change (the score moved) names the
features that explain it (``details["explained_by"]``, :mod:`monitoring.explanations`: each
feature's drift evidence from the same per-block summaries, weighted by the card's
importance) and the run counts as right when the shifted feature is first. A
shift after which no prediction-drift finding came within 20,000 events did not move the
score and is not counted (reported beside).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.detection_streams import AFTER, BATCH, CHANGE, FEATURES, WEIGHTS, Scenario, stream
from models.workflow import TrainResult
from monitoring import ModelMonitor, MonitorConfig

NAMES = tuple(f"x{j}" for j in range(FEATURES))
# Where the monitors start: 8,192 stationary events before the change. The evidence of the
# stationary history is standard normal however long it is; a shorter run is only faster.
START = CHANGE - 8_192


def cases(quick: bool) -> list[tuple[str, Scenario]]:
    """``(feature shifted, scenario)`` of every single-feature shift measured."""
    g = "gaussian"
    out: list[tuple[str, Scenario]] = []
    for j in np.flatnonzero(WEIGHTS).tolist():
        if not quick:
            out.append((NAMES[j], Scenario(f"x{j} mean +0.25σ", g, "mean", 0.25, j)))
        out.append((NAMES[j], Scenario(f"x{j} mean −0.5σ", g, "mean", -0.5, j)))
        if not quick:
            out.append((NAMES[j], Scenario(f"x{j} variance × 1.5", g, "scale", 1.5, j)))
    out.append(("c", Scenario("c: a 25 → 55 %", g, "category", 0.55)))
    if not quick:
        out.append(("c", Scenario("c: a 25 → 40 %", g, "category", 0.40)))
    return out


def _scores(model: TrainResult, numeric: NDArray[np.float64], cats: NDArray[Any]) -> Any:
    matrix = np.empty((numeric.shape[0], FEATURES + 1), dtype=object)
    matrix[:, :FEATURES] = numeric
    matrix[:, FEATURES] = cats.reshape(-1)
    return np.asarray(model.pipeline.predict_proba(matrix)[:, 1], dtype=np.float64)


def ranked_at_finding(
    model: TrainResult, sc: Scenario, seed: int
) -> list[tuple[str, float]] | None:
    """What the first prediction-drift finding after the change says explains it; None
    without one."""
    card = model.card
    if card.importance is None:
        return None
    mon = ModelMonitor(card, MonitorConfig())
    chunk = stream(sc, 300 + seed, CHANGE + AFTER)
    for s in range(START, chunk.y.size, BATCH):
        e = min(s + BATCH, chunk.y.size)
        x, c = chunk.numeric[s:e], chunk.categorical[s:e]
        num = {n: x[:, j] for j, n in enumerate(NAMES)}
        found = mon.observe_batch(num, {"c": c}, _scores(model, x, c), card.version, "champion")
        if e > CHANGE:
            for f in found:
                if f.kind == "prediction_drift":
                    return [(str(n), float(v)) for n, v in f.details["explained_by"]]
    return None


def run(model: TrainResult, quick: bool, seeds: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Every case over ``seeds`` seeds: how often the shifted feature is ranked first."""
    rows: list[dict[str, Any]] = []
    for feature, sc in cases(quick):
        moved = first = 0
        shares: list[float] = []
        for seed in range(seeds):
            ranked = ranked_at_finding(model, sc, seed)
            if ranked is None:
                continue
            moved += 1
            first += bool(ranked) and ranked[0][0] == feature
            shares.append(dict(ranked).get(feature, 0.0))
        rows.append(
            {
                "shift": sc.name,
                "feature": feature,
                "runs": seeds,
                "moved": moved,
                "first": first,
                "median_share": float(np.median(shares)) if shares else None,
            }
        )
        say(f"attribution {sc.name}: first in {first} of {moved} that moved the score")
    moved = sum(r["moved"] for r in rows)
    first = sum(r["first"] for r in rows)
    return {
        "cases": rows,
        "moved": moved,
        "first": first,
        "runs": sum(r["runs"] for r in rows),
        "rate": first / moved if moved else None,
    }


def render(report: dict[str, Any]) -> list[str]:
    """The attribution rows as Markdown lines."""
    lines = [
        "Attribution: the shifted feature ranked first at the first prediction-drift finding "
        "after a single-feature shift (Gaussian family):",
        "",
        "| shift | moved the score | ranked first | median share |",
        "|---|---|---|---|",
    ]
    for r in report["cases"]:
        share = "—" if r["median_share"] is None else f"{r['median_share']:.2f}"
        lines.append(
            f"| {r['shift']} | {r['moved']} of {r['runs']} | {r['first']} of {r['moved']} "
            f"| {share} |"
        )
    rate = "—" if report["rate"] is None else f"{100 * report['rate']:.1f} %"
    lines.append(
        f"| **all** | {report['moved']} of {report['runs']} | "
        f"{report['first']} of {report['moved']} ({rate}) | |"
    )
    return lines


__all__ = ["cases", "ranked_at_finding", "render", "run"]
