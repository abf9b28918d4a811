"""Label-free performance estimation in ``driftline bench detection``: estimated against
realized accuracy after a change, without the labels.

For each :class:`~bench.detection_streams.Scenario` below, on the detection benchmark's
streams and models, every batch of 256 events after the change becomes an expected confusion
block (:func:`monitoring.expected_confusion`, the card's calibrator and threshold); the
blocks of each window of 2,000 events are merged and estimated
(:meth:`~monitoring.estimation.ExpectedConfusion.estimate`, the calibrator's error as bias)
and compared with the accuracy the labels give. Covariate shifts (the labels follow the
features as in training) are where the estimate should hold (target: within 3 points); the
concept drift and the shifts whose labels do not follow show its limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.detection_streams import AFTER, BATCH, CHANGE, Chunk, Scenario, stream
from models.workflow import TrainResult
from monitoring import ExpectedConfusion, expected_confusion

WINDOW = 2000
Scores = Callable[[TrainResult, Chunk], NDArray[np.float64]]


def scenarios(quick: bool) -> list[tuple[Scenario, bool]]:
    """The changes measured, each with whether ``P(label | features)`` is kept (the estimate
    should hold) or not (its limit)."""
    g = "gaussian"
    if quick:
        return [
            (Scenario("covariate: x0 +1σ, labels follow", g, "covariate", 1.0), True),
            (Scenario("one coefficient flips (concept)", g, "concept"), False),
        ]
    out = [
        (Scenario(f"covariate: x0 +{s:g}σ, labels follow", g, "covariate", s), True)
        for s in (0.5, 1.0, 2.0)
    ]
    out += [
        (Scenario("category mix 25 → 55 %", g, "category", 0.55), True),
        (Scenario("covariate: x0 +1σ, labels follow", "skewed", "covariate", 1.0), True),
        (Scenario("covariate: x0 +1σ, labels follow", "heavy", "covariate", 1.0), True),
        (Scenario("covariate: x0 +1σ, labels follow", "discrete", "covariate", 1.0), True),
        # Far from where the holdout lay: the linear model is right for Gaussian features
        # (its calibration extrapolates), wrong for skewed ones (x0 = e^z; it does not).
        (Scenario("covariate: x0 +4σ, far beyond the holdout", g, "covariate", 4.0), True),
        (Scenario("covariate: x0 +2σ, beyond the holdout", "skewed", "covariate", 2.0), True),
        (Scenario("x0 +1σ, labels do not follow", g, "mean", 1.0), False),
        (Scenario("one coefficient flips (concept)", g, "concept"), False),
    ]
    return out


def _windows(
    model: TrainResult, chunk: Chunk, p: NDArray[np.float64]
) -> list[tuple[float, float, float, float]]:
    """``(estimated, low, high, realized)`` accuracy per window after the change."""
    card = model.card
    cal = card.calibrator
    bias = card.metrics.holdout.calibration_error if cal is None else cal.calibration_error
    threshold = card.thresholds.default
    out = []
    for start in range(CHANGE, CHANGE + AFTER, WINDOW):
        block = ExpectedConfusion()
        for s in range(start, start + WINDOW, BATCH):
            e = min(s + BATCH, start + WINDOW)
            block = block.merge(expected_confusion(p[s:e], cal, threshold))
        acc = block.estimate(bias).accuracy
        assert acc is not None
        w = slice(start, start + WINDOW)
        realized = float(np.mean((p[w] > threshold) == (chunk.y[w] == 1)))
        out.append((acc.value, acc.low, acc.high, realized))
    return out


def run(
    models: dict[str, TrainResult],
    score: Scores,
    quick: bool,
    seeds: int,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Estimated against realized accuracy per scenario, over ``seeds`` seeds."""
    rows: list[dict[str, Any]] = []
    for sc, holds in scenarios(quick):
        model = models[sc.family]
        found: list[tuple[float, float, float, float]] = []
        for seed in range(seeds):
            chunk = stream(sc, 100 + seed, CHANGE + AFTER)
            found += _windows(model, chunk, score(model, chunk))
        est = np.array([f[0] for f in found])
        real = np.array([f[3] for f in found])
        diff = est - real
        covered = sum(lo <= r <= hi for _, lo, hi, r in found)
        row = {
            "change": sc.name,
            "family": sc.family,
            "labels_follow": holds,
            "holdout": model.card.metrics.holdout.accuracy,
            "windows": len(found),
            "estimated": float(np.mean(est)),
            "realized": float(np.mean(real)),
            "mean_difference": float(np.mean(diff)),
            "worst_difference": float(diff[np.argmax(np.abs(diff))]),
            "covered": covered / len(found),
        }
        rows.append(row)
        say(
            f"{sc.family:9s} {sc.name}: estimated {row['estimated']:.3f}, realized "
            f"{row['realized']:.3f}, worst window {row['worst_difference']:+.3f}"
        )
    return rows


def render(rows: list[dict[str, Any]], seeds: int) -> list[str]:
    """The Markdown table of :func:`run`'s rows."""
    lines = [
        f"Label-free accuracy estimate after the change, windows of {WINDOW:,} events "
        f"({AFTER // WINDOW} per seed, {seeds} seeds; points = accuracy × 100):",
        "",
        "| change | family | labels follow | holdout | estimated | realized | mean difference "
        "| worst window | realized within band |",
        "|" + "---|" * 9,
    ]
    for r in rows:
        lines.append(
            f"| {r['change']} | {r['family']} | {'yes' if r['labels_follow'] else 'no'} | "
            f"{r['holdout']:.3f} | {r['estimated']:.3f} | {r['realized']:.3f} | "
            f"{100 * r['mean_difference']:+.1f} | {100 * r['worst_difference']:+.1f} | "
            f"{100 * r['covered']:.0f} % |"
        )
    return lines


__all__ = ["WINDOW", "render", "run", "scenarios"]
