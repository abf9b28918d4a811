"""The model report: training evaluation and live history as one self-contained HTML page.

:func:`render_report` takes model cards (from the registry) and, optionally, a
:class:`LiveHistory` (read from Redis by the streams shell) and returns an HTML string. The
page needs nothing from the network: the style sheet is inline and every plot is a PNG drawn
with matplotlib's Agg canvas and embedded as base64, so the file can be mailed or archived.

Cards written before holdout curves were recorded still render: their ROC and calibration
plots are replaced by a note saying so. With ``slices`` (the per-slice metrics of the
monitors' health, when they slice by a context attribute) a table shows each slice's labels,
accuracy and F1.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from models.card import ModelCard
from models.errors import ConfigError
from models.report_plots import calibration_png, confusion_png, fairness_png, roc_png
from models.report_timeline import LiveHistory, VersionChange, merge_changes, timeline_png

MAX_ROWS = 50  # of the alert and version-change tables

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.meta{color:#666}.note{background:#fff7e0;border-left:4px solid #f0b400;padding:.5em 1em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
"""


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _img(data: bytes, plot: str, alt: str, caption: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img data-plot="{plot}" alt="{escape(alt)}" '
        f'src="data:image/png;base64,{b64}"><figcaption>{escape(caption)}</figcaption></figure>'
    )


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 99) -> str:
    out = ["<table><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        cells = (
            f'<td class="num">{escape(c)}</td>' if i >= numeric_from else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        out += ["<tr>", *cells, "</tr>"]
    out.append("</table>")
    return "".join(out)


def _summary(cards: Sequence[ModelCard], champion: str | None) -> str:
    rows = []
    for c in cards:
        m, cv = c.metrics.holdout, c.metrics.cv
        f1 = cv.get("f1")
        rows.append(
            [
                f"v{c.version}" + (" (champion)" if c.version == champion else ""),
                c.created_at[:19].replace("T", " "),
                f"{c.training.estimator} / {c.training.mitigation}",
                f"{c.data.source} ({c.data.rows} rows)",
                "–" if f1 is None else f"{f1.mean:.3f} ± {f1.std:.3f}",
                _f(m.accuracy),
                _f(m.f1),
                _f(m.roc_auc),
                _f(m.calibration_error),
                f"{c.parity.max_abs_diff:.1e}",
            ]
        )
    head = ["version", "created", "estimator / mitigation", "training data", "CV F1"]
    head += ["holdout accuracy", "holdout F1", "ROC AUC", "calibration error", "ONNX parity"]
    return _table(head, rows, numeric_from=4)


def _training(cards: Sequence[ModelCard]) -> list[str]:
    out = ['<h2 id="training">Training evaluation</h2>']
    out.append("<h3>Confusion matrix</h3>")
    out.append(
        _img(
            confusion_png(cards),
            "confusion",
            "confusion matrices",
            "Holdout rows by true and predicted class at the 0.5 threshold "
            "(count and share of the true class).",
        )
    )
    missing = [c.version for c in cards if c.metrics.curves is None]
    without = "v" + ", v".join(missing)
    old = f"not recorded for {without}: its card predates curve recording (retrain to get them)."
    out.append("<h3>ROC curve</h3>")
    roc = roc_png(cards)
    if roc is not None:
        out.append(_img(roc, "roc", "ROC curves", "True vs false positive rate on the holdout."))
    no_roc = [
        c.version for c in cards if c.metrics.curves is not None and c.metrics.curves.roc is None
    ]
    if missing:
        out.append(_note(f"ROC curve {old}"))
    if no_roc:
        out.append(_note(f"No ROC curve for v{', v'.join(no_roc)}: its holdout has one class."))
    out.append("<h3>Calibration curve</h3>")
    cal = calibration_png(cards)
    if cal is not None:
        out.append(
            _img(
                cal,
                "calibration",
                "calibration curves",
                "Observed fraction of positives per bin of the predicted probability "
                "(diagonal: perfectly calibrated), and the rows in each bin.",
            )
        )
    if missing:
        out.append(_note(f"Calibration curve {old}"))
    out.append("<h3>Per-group metrics</h3>")
    for c in cards:
        fair = fairness_png(c)
        if fair is None:
            out.append(_note(f"v{c.version} has no sensitive attribute: no per-group metrics."))
        else:
            out.append(
                _img(
                    fair,
                    f"fairness-{c.version}",
                    f"per-group metrics of v{c.version}",
                    f"Selection rate, TPR and FPR per group on the holdout, v{c.version}.",
                )
            )
    return out


def _band(estimated: Mapping[str, Any] | None, metric: str) -> str:
    """A label-free estimate as ``value [low–high]`` (``-`` without one)."""
    if not estimated or estimated.get(metric) is None:
        return "–"
    low, high = estimated.get(f"{metric}_low"), estimated.get(f"{metric}_high")
    return f"{_f(estimated[metric])} [{_f(low)}–{_f(high)}]"


def _latest(point: Mapping[str, Any]) -> str:
    rows = [
        [
            f"v{scope}",
            str(m.get("labels", 0)),
            str(m.get("count", 0)),
            _f(m.get("accuracy")),
            _f(m.get("f1")),
            _f(m.get("roc_auc")),
            _band(m.get("estimated"), "accuracy"),
            _band(m.get("estimated"), "f1"),
        ]
        for scope, m in sorted((point.get("metrics") or {}).items())
    ]
    head = ["version/variant", "labels", "in window", "accuracy", "F1", "ROC AUC"]
    head += ["est. accuracy", "est. F1"]
    return _table(head, rows, numeric_from=1) if rows else ""


def _live(history: LiveHistory | None) -> list[str]:
    out = ['<h2 id="live">Live history</h2>']
    if history is None or history.empty:
        out.append(
            _note(
                "No live history: no monitoring point, alert or version change was found "
                "(monitoring writes a point every history interval while a worker runs)."
            )
        )
        return out
    points = sorted(history.points, key=lambda p: float(p.get("at") or 0.0))
    if points:
        kept = "" if history.max_points is None else f" (at most {history.max_points} kept)"
        out.append(
            f'<p class="meta">{len(points)} monitoring points{kept} from '
            f"{_when(float(points[0]['at']))} to {_when(float(points[-1]['at']))}; champion "
            f"v{escape(str(points[-1].get('champion', '?')))}, status "
            f"{escape(str(points[-1].get('status', '?')))}.</p>"
        )
    else:
        out.append(_note("No monitoring point in Redis yet: the timeline shows alerts only."))
    out.append("<h3>Timeline</h3>")
    timeline = timeline_png(history)
    if timeline is not None:  # not empty, so always drawn
        out.append(
            _img(
                timeline,
                "timeline",
                "live timeline",
                "Rolling metrics per version (dotted: estimated without labels), PSI of the last "
                "closed drift window per feature "
                "and for the score, fairness gaps, alerts; vertical lines mark version changes.",
            )
        )
    if points:
        out.append("<h3>Latest metrics</h3>")
        out.append(_latest(points[-1]))
    alerts = sorted(history.alerts, key=lambda a: float(a.get("at") or 0.0))[-MAX_ROWS:]
    out.append(f"<h3>Alerts ({len(history.alerts)})</h3>")
    rows = [
        [
            _when(float(a.get("at") or 0.0)),
            str(a.get("kind", "")),
            f"v{a.get('version', '')}",
            str(a.get("feature") or ""),
            str(a.get("detector", "")),
            explained(a.get("details") or {}),
            f"{float(a.get('statistic') or 0.0):.4g}",
            f"{float(a.get('threshold') or 0.0):.4g}",
        ]
        for a in reversed(alerts)
    ]
    head = [
        "time",
        "kind",
        "version",
        "feature",
        "detector",
        "explained by",
        "statistic",
        "threshold",
    ]
    out.append(_table(head, rows, numeric_from=6) if rows else "<p>None.</p>")
    out.append(f"<h3>Version changes ({len(history.changes)})</h3>")
    changes = sorted(history.changes, key=lambda c: c.at)[-MAX_ROWS:]
    crow = [
        [_when(c.at), c.action, f"v{c.version}", f"v{c.previous}" if c.previous else "", c.reason]
        for c in reversed(changes)
    ]
    head = ["time", "action", "version", "previous", "reason"]
    out.append(_table(head, crow) if crow else "<p>None.</p>")
    return out


def explained(details: Mapping[str, Any]) -> str:
    """An alert's explanation as a cell: the features that explain a score or performance
    finding, or the columns of a multivariate one, with their shares; ``""`` when none.

    Examples
    --------
    >>> explained({"explained_by": [["x0", 0.8213], ["x3", 0.1204]]})
    'x0 0.82, x3 0.12'
    >>> explained({"explained_by": []}), explained({})
    ('no feature drifted', '')
    >>> explained({"test": "multivariate", "columns": [["x4", 0.5], ["x7", 0.5]]})
    'columns x4 0.5, x7 0.5'
    """
    ranked = details.get("explained_by")
    if ranked is not None:
        return ", ".join(f"{n} {float(v):.2g}" for n, v in ranked) or "no feature drifted"
    if details.get("test") == "multivariate" and details.get("columns"):
        return "columns " + ", ".join(f"{n} {float(v):.2g}" for n, v in details["columns"])
    return ""


def slice_cells(windows: Mapping[str, Any], fmt: Callable[[float | None], str]) -> list[str]:
    """One slice's labels, accuracy and F1, cumulative then rolling, as table cells.

    Examples
    --------
    >>> slice_cells({"cumulative": {"count": 4, "accuracy": 0.5}}, lambda v: f"{v}")
    ['4', '0.5', 'None', '0', 'None', 'None']
    """
    cells: list[str] = []
    for window in ("cumulative", "rolling"):
        got = windows.get(window) or {}
        cells += [str(got.get("count", 0)), fmt(got.get("accuracy")), fmt(got.get("f1"))]
    return cells


def _slices(slices: Mapping[str, Any]) -> list[str]:
    """A table of labels, accuracy and F1 per slice, scope by scope."""
    rows: list[list[str]] = []
    by: set[str] = set()
    for scope, summary in sorted(slices.items()):
        by.add(str(summary.get("by", "")))
        for name, windows in (summary.get("values") or {}).items():
            rows.append([f"v{scope}", str(name), *slice_cells(windows, _f)])
    head = ["version/variant", "slice", "labels", "accuracy", "F1"]
    head += ["rolling labels", "rolling accuracy", "rolling F1"]
    out = [f'<h3 id="slices">Slices by {escape(", ".join(sorted(by)))}</h3>']
    out.append(
        '<p class="meta">The most frequent values of the attribute, each its own slice; '
        "(other): every other value; (none): events without it. Cumulative since the value "
        "became a slice; rolling over the last labelled events.</p>"
    )
    out.append(_table(head, rows, numeric_from=2) if rows else "<p>None.</p>")
    return out


def render_report(
    cards: Sequence[ModelCard],
    history: LiveHistory | None = None,
    *,
    champion: str | None = None,
    generated_at: float | None = None,
    notes: Sequence[str] = (),
    slices: Mapping[str, Any] | None = None,
) -> str:
    """The report of one model as a self-contained HTML page.

    Parameters
    ----------
    cards : sequence of ModelCard
        Versions to evaluate (the champion first, usually), all of one model.
    history : LiveHistory or None
        Monitoring points, alerts and version changes; None leaves the live part empty.
    champion : str or None
        The champion's version, marked in the summary.
    generated_at : float or None
        UNIX time shown as the generation time (default now).
    notes : sequence of str
        Warnings shown at the top (e.g. that Redis could not be read).
    slices : mapping or None
        Per ``"<version>/<variant>"``, the ``slices`` of the monitors' metrics
        (``{"by", "values": {slice: {"cumulative": {count, accuracy, f1}, "rolling":
        {...}}}}``); shown as a table after the live history when given.

    Returns
    -------
    str
        The HTML page.

    Raises
    ------
    ConfigError
        No card, or cards of different models.

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.workflow import TrainOptions, train
    >>> card = train(synthetic("sea", rows=600, seed=1), TrainOptions(name="sea", folds=3)).card
    >>> page = render_report([card])
    >>> page.startswith("<!doctype html>"), 'data-plot="roc"' in page, "://" in page
    (True, True, False)
    """
    if not cards:
        raise ConfigError("a report needs at least one model version", option="cards", value=0)
    name = cards[0].name
    if any(c.name != name for c in cards):
        raise ConfigError(
            "a report covers one model", option="cards", value=[c.name for c in cards]
        )
    at = time.time() if generated_at is None else generated_at
    shown = ", ".join(f"v{c.version}" for c in cards)
    body = [
        f"<h1>Driftline report: {escape(name)}</h1>",
        f'<p class="meta">Generated {_when(at)}; champion '
        f"{'v' + escape(champion) if champion else 'none'}; versions shown: {escape(shown)}.</p>",
        '<p><a href="#training">Training evaluation</a> · <a href="#live">Live history</a></p>',
        *(_note(n) for n in notes),
        _summary(cards, champion),
        *_training(cards),
        *_live(history),
        *(_slices(slices) if slices else []),
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Driftline report: {escape(name)}</title><style>{_STYLE}</style></head>\n"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


__all__ = [
    "LiveHistory",
    "VersionChange",
    "explained",
    "merge_changes",
    "render_report",
    "slice_cells",
]
