"""The training-evaluation plots of the report, drawn with matplotlib's Agg canvas.

Each function takes model cards and returns a PNG (bytes), or None when no card holds what
the plot needs. Figures are built without ``pyplot``, so no global state or display backend
is touched and the functions are safe to call from any thread.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.card import FairnessSnapshot, ModelCard

DPI = 100
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def color(i: int) -> str:
    """The ``i``-th colour of the report's palette (cycling)."""
    return PALETTE[i % len(PALETTE)]


def figure(width: float, height: float) -> Figure:
    """A figure with an Agg canvas attached."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def confusion_png(cards: Sequence[ModelCard]) -> bytes:
    """Holdout confusion matrices at the 0.5 threshold, one panel per version."""
    fig = figure(3.3 * len(cards) + 0.4, 3.4)
    axes = fig.subplots(1, len(cards), squeeze=False)[0]
    for ax, card in zip(axes, cards, strict=True):
        cm = np.asarray(card.metrics.holdout.confusion_matrix, dtype=np.float64)
        rows = cm.sum(axis=1, keepdims=True)
        share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(2):
            for j in range(2):
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}\n{share[i, j]:.1%}",
                    ha="center",
                    va="center",
                    color="white" if share[i, j] > 0.6 else "black",
                )
        ax.set_xticks([0, 1], labels=[str(c) for c in card.classes])
        ax.set_yticks([0, 1], labels=[str(c) for c in card.classes])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"v{card.version} ({card.metrics.holdout.rows} holdout rows)", fontsize=10)
    return png(fig)


def roc_png(cards: Sequence[ModelCard]) -> bytes | None:
    """Holdout ROC curves of every card that recorded one, on one axis."""
    drawn = [(i, c) for i, c in enumerate(cards) if c.metrics.curves and c.metrics.curves.roc]
    if not drawn:
        return None
    fig = figure(5.2, 4.6)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="chance")
    for i, card in drawn:
        roc = card.metrics.curves.roc  # type: ignore[union-attr]
        auc = card.metrics.holdout.roc_auc
        label = f"v{card.version}" + ("" if auc is None else f" (AUC {auc:.3f})")
        ax.plot(roc.fpr, roc.tpr, color=color(i), linewidth=1.8, label=label)  # type: ignore[union-attr]
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve on the holdout", fontsize=11)
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(alpha=0.3)
    return png(fig)


def calibration_png(cards: Sequence[ModelCard]) -> bytes | None:
    """Reliability diagrams (fraction positive vs mean score per bin) and bin counts."""
    drawn = [(i, c) for i, c in enumerate(cards) if c.metrics.curves is not None]
    if not drawn:
        return None
    fig = figure(5.2, 5.4)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="perfect")
    width = 1.0 / max(len(drawn), 1)
    for k, (i, card) in enumerate(drawn):
        cal = card.metrics.curves.calibration  # type: ignore[union-attr]
        pts = [
            (m, f)
            for m, f in zip(cal.mean_predicted, cal.fraction_positive, strict=True)
            if m is not None and f is not None
        ]
        label = f"v{card.version} (ECE {card.metrics.holdout.calibration_error:.3f})"
        top.plot(*zip(*pts, strict=True), marker="o", color=color(i), label=label)
        edges = np.asarray(cal.bin_edges)
        step = np.diff(edges)
        bottom.bar(
            edges[:-1] + step * k * width,
            cal.counts,
            width=step * width,
            align="edge",
            color=color(i),
            alpha=0.7,
        )
    top.set_ylabel("fraction positive")
    top.set_ylim(0, 1.01)
    top.set_title("Calibration on the holdout", fontsize=11)
    top.legend(loc="upper left", fontsize=9)
    top.grid(alpha=0.3)
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("predicted probability of the positive class")
    bottom.set_ylabel("rows")
    return png(fig)


def _group_bars(ax: Axes, snap: FairnessSnapshot, order: Sequence[str], title: str) -> None:
    groups = [g for g in order if g in snap.groups] + sorted(set(snap.groups) - set(order))
    x = np.arange(len(groups))
    rates = (("selection_rate", "selection rate"), ("tpr", "TPR"), ("fpr", "FPR"))
    for k, (key, label) in enumerate(rates):
        values = [getattr(snap.groups[g], key) for g in groups]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x + (k - 1) * 0.27, heights, width=0.27, color=color(k), label=label)
    ax.set_xticks(x, labels=[f"{g}\n(n={snap.groups[g].count})" for g in groups], fontsize=8)
    ax.set_ylim(0, 1.22)  # headroom for the legend above the bars
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.grid(axis="y", alpha=0.3)
    ratio = snap.disparate_impact_ratio
    ax.set_title(
        f"{title}\nDP gap {snap.demographic_parity_difference:.3f}, "
        f"EO gap {snap.equalized_odds_difference:.3f}"
        + ("" if ratio is None else f", DI ratio {ratio:.2f}"),
        fontsize=9,
    )


def fairness_png(card: ModelCard) -> bytes | None:
    """Per-group selection rate, TPR and FPR on the holdout, before and after mitigation."""
    report = card.fairness
    if report is None or not report.before.groups:
        return None
    panels = [(report.before, "unmitigated" if report.after else "as served")]
    if report.after is not None:
        panels.append((report.after, f"after {report.mitigation}"))
    fig = figure(4.2 * len(panels) + 0.4, 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    spec = card.sensitive
    order = [] if spec is None else list(spec.labels or spec.groups)
    for ax, (snap, title) in zip(axes, panels, strict=True):
        _group_bars(ax, snap, order, f"v{card.version} by {report.sensitive}: {title}")
    axes[0].set_ylabel("rate")
    axes[0].legend(loc="upper left", fontsize=8, ncol=3, frameon=False)
    return png(fig)


__all__ = [
    "DPI",
    "PALETTE",
    "calibration_png",
    "color",
    "confusion_png",
    "fairness_png",
    "figure",
    "png",
    "roc_png",
]
