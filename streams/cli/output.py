"""What the commands print: JSON on stdout, cards and tables, progress on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import orjson
from rich.console import Console
from rich.table import Table

from models.card import FairnessSnapshot, ModelCard


def print_json(value: object) -> None:
    """Write ``value`` to stdout as indented JSON (the only thing ``--json`` writes there)."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


@contextmanager
def progress(command: str, *, lines: bool) -> Iterator[Callable[[str], None]]:
    """Say what a long command is doing: a spinner on a terminal, else a line per step.

    Without a terminal (CI logs, pipes) steps are printed on stderr unless ``lines`` is false
    (``--json`` callers parse output and want quiet).
    """
    console = Console(stderr=True)
    if console.is_terminal:
        with console.status("starting") as status:
            yield lambda msg: status.update(msg)
        return
    if not lines:
        yield lambda _msg: None
        return
    started = time.perf_counter()

    def note(msg: str) -> None:
        elapsed = time.perf_counter() - started
        print(f"{command}: {msg} [{elapsed:.1f}s]", file=sys.stderr, flush=True)

    yield note


def stdout_console() -> Console:
    """A console for stdout that prints text as it is."""
    # Card text holds brackets (confusion matrices, user-named columns): never parse markup.
    return Console(soft_wrap=True, markup=False, highlight=False)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fairness_line(label: str, snap: FairnessSnapshot) -> str:
    return (
        f"{label}: DP diff {snap.demographic_parity_difference:.3f}, "
        f"EO diff {snap.equalized_odds_difference:.3f}, "
        f"DI ratio {_fmt(snap.disparate_impact_ratio)}"
    )


def print_card(card: ModelCard, console: Console) -> None:
    """Print a version's card: data, metrics, parity, fairness, thresholds, hash."""
    console.print(
        f"{card.name}@{card.version}  {card.training.estimator}  "
        f"created {card.created_at}  parent {card.parent_version or '-'}"
    )
    console.print(
        f"data: {card.data.source}, {card.data.rows} rows, classes {card.data.class_balance}"
    )
    table = Table("metric", f"CV mean ({card.metrics.folds} folds)", "CV std", "holdout")
    hold = card.metrics.holdout.model_dump()
    for key, summary in card.metrics.cv.items():
        table.add_row(key, f"{summary.mean:.4f}", f"{summary.std:.4f}", _fmt(hold.get(key)))
    console.print(table)
    console.print(
        f"confusion matrix [[tn, fp], [fn, tp]]: {card.metrics.holdout.confusion_matrix}, "
        f"calibration error {card.metrics.holdout.calibration_error:.4f}"
    )
    console.print(
        f"parity: max |p_onnx - p_sklearn| = {card.parity.max_abs_diff:.2e} on "
        f"{card.parity.rows} rows, labels identical; export {card.parity.export_seconds:.2f}s"
    )
    if card.fairness is not None:
        console.print(
            f"fairness by {card.fairness.sensitive} (mitigation {card.fairness.mitigation})"
        )
        console.print("  " + _fairness_line("before", card.fairness.before))
        if card.fairness.after is not None:
            console.print("  " + _fairness_line("after ", card.fairness.after))
    if card.thresholds.per_group:
        shown = {g: round(t, 4) for g, t in card.thresholds.per_group.items()}
        console.print(f"thresholds by {card.thresholds.group_by}: {shown}")
    served = card.metrics.holdout_served
    if served is not None:
        console.print(
            f"holdout with thresholds: F1 {served.f1:.4f}, accuracy {served.accuracy:.4f}, "
            f"confusion matrix {served.confusion_matrix}"
        )
    console.print(f"sha256 {card.onnx.sha256}")


__all__ = ["print_card", "print_json", "progress", "stdout_console"]
