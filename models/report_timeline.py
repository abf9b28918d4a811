"""The live-history timeline of the report: metrics, drift, fairness, alerts and versions.

Input is plain data read elsewhere (the streams shell reads Redis and the registry):
history points in the format of :mod:`monitoring.timeline`, alert contracts, and version
changes. Everything is drawn on one time axis, with version changes as vertical lines
crossing every panel.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes

from models.report_plots import color, figure, png

_MARKERS = ("o", "s", "^", "v", "D", "x", "P", "*")
TOP_FEATURES = 6


@dataclass(frozen=True)
class VersionChange:
    """A change of what serves: ``action`` is promote, rollback, reject, register, served...

    ``version`` is the version serving after the change (for a rollback, the one restored).

    Examples
    --------
    >>> change = VersionChange(1_790_000_000.0, "rollback", "2", previous="3", reason="accuracy")
    >>> change.version, change.previous
    ('2', '3')
    """

    at: float
    action: str
    version: str
    previous: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class LiveHistory:
    """What the report plots over time, oldest first.

    Parameters
    ----------
    points : sequence of mapping
        History points (:func:`monitoring.timeline.history_point`).
    alerts : sequence of mapping
        Alerts of the model (the ``driftline:alerts`` contract: kind, at, version, ...).
    changes : sequence of VersionChange
        Promotions, rollbacks and other lifecycle events.
    max_points : int or None
        The retention of the history stream, shown in the report.
    alert_kinds : sequence of str
        Every alert kind, in the order that gives each its marker and colour in every report
        (the monitors' vocabulary, passed in; kinds not in it follow in name order).

    Examples
    --------
    >>> LiveHistory().empty, LiveHistory(alerts=[{"kind": "fairness", "at": 1.0}]).empty
    (True, False)
    """

    points: Sequence[Mapping[str, Any]] = ()
    alerts: Sequence[Mapping[str, Any]] = ()
    changes: Sequence[VersionChange] = field(default_factory=tuple)
    max_points: int | None = None
    alert_kinds: Sequence[str] = ()

    @property
    def empty(self) -> bool:
        """Nothing at all to plot."""
        return not (self.points or self.alerts or self.changes)


def merge_changes(
    changes: Sequence[VersionChange],
    points: Sequence[Mapping[str, Any]] = (),
    *,
    within_s: float = 30.0,
) -> list[VersionChange]:
    """Version changes from several sources, deduplicated, plus champion switches in ``points``.

    Two changes with the same action and version less than ``within_s`` apart are one (the
    one with a reason is kept). A point whose champion differs from the previous point's
    adds a ``served`` change unless a promotion or rollback to that version came just before.

    Examples
    --------
    >>> a = VersionChange(100.0, "promote", "2", "1")
    >>> b = VersionChange(101.0, "promote", "2", "1", reason="sequential test")
    >>> pts = [{"at": 90.0, "champion": "1"}, {"at": 130.0, "champion": "2"},
    ...        {"at": 500.0, "champion": "3"}]
    >>> [(c.at, c.action, c.version, c.reason) for c in merge_changes([a, b], pts)]
    [(101.0, 'promote', '2', 'sequential test'), (500.0, 'served', '3', '')]
    """
    out: list[VersionChange] = []
    for change in sorted(changes, key=lambda c: (c.at, not c.reason)):
        twin = next(
            (
                i
                for i, c in enumerate(out)
                if c.action == change.action
                and c.version == change.version
                and abs(c.at - change.at) < within_s
            ),
            None,
        )
        if twin is None:
            out.append(change)
        elif change.reason and not out[twin].reason:
            out[twin] = change
    ordered = sorted(points, key=lambda p: float(p.get("at") or 0.0))
    for before, after in itertools.pairwise(ordered):
        old, new = str(before.get("champion") or ""), str(after.get("champion") or "")
        if not old or not new or old == new:
            continue
        t0, t1 = float(before["at"]), float(after["at"])
        explained = any(
            c.version == new and c.action in ("promote", "rollback") and t0 - within_s <= c.at <= t1
            for c in out
        )
        if not explained:
            out.append(VersionChange(t1, "served", new, old))
    return sorted(out, key=lambda c: c.at)


def _when(t: float) -> float:
    """matplotlib's date number of a UNIX time."""
    return float(mdates.date2num(datetime.fromtimestamp(t, UTC)))  # type: ignore[no-untyped-call]


def _val(value: Any) -> float:
    return math.nan if value is None else float(value)


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} yet", transform=ax.transAxes, ha="center", color="#777777")


def _legend(ax: Axes) -> None:
    # outside, on the right: a legend inside would hide the lines it names
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)


def _scopes(points: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    return sorted({s for p in points for s in (p.get(key) or {})})


def _current(point: Mapping[str, Any], scope: str) -> bool:
    """False for the champion scope of a version that no longer serves as champion.

    Monitors keep the last rolling figures of a former champion; drawn on, they would read as
    if it still served.
    """
    version, _, variant = scope.partition("/")
    return variant != "champion" or not point.get("champion") or version == point["champion"]


def _rows(points: Sequence[Mapping[str, Any]], key: str, scope: str) -> list[Mapping[str, Any]]:
    return [(p.get(key) or {}).get(scope) or {} if _current(p, scope) else {} for p in points]


def _metrics_panel(ax: Axes, points: Sequence[Mapping[str, Any]], times: list[float]) -> None:
    scopes = _scopes(points, "metrics")
    low = 1.0
    for i, scope in enumerate(scopes):
        rows = _rows(points, "metrics", scope)
        # realized: solid and dashed; estimated without labels: the same, dotted and thinner
        for metric, style in (("accuracy", "-"), ("f1", "--")):
            y = [_val(r.get(metric)) for r in rows]
            est = [_val((r.get("estimated") or {}).get(metric)) for r in rows]
            for values, line, width, name in (
                (y, style, 1.5, metric),
                (est, ":" if style == "-" else "-.", 1.0, f"est. {metric}"),
            ):
                if all(math.isnan(v) for v in values) and name != metric:
                    continue  # no estimate in this history
                low = min([low, *(v for v in values if not math.isnan(v))])
                ax.plot(times, values, line, lw=width, color=color(i), label=f"v{scope} {name}")
    if not scopes:
        _no_data(ax, "labelled events")
    else:
        _legend(ax)
        ax.set_ylim(max(0.0, low - 0.05), 1.01)
    ax.set_ylabel("accuracy / F1:\nrolling, estimated")


def _drift_panel(
    ax: Axes,
    points: Sequence[Mapping[str, Any]],
    times: list[float],
    psi_threshold: float | None,
) -> None:
    series: dict[str, list[float]] = {}
    for k, p in enumerate(points):
        drift = p.get("drift") or {}
        features = drift.get("features") or {}
        variant = "champion" if "champion" in features else next(iter(sorted(features)), None)
        named = {n: s.get("psi") for n, s in (features.get(variant) or {}).items()}
        scores = (drift.get("scores") or {}).items()
        named.update({f"score {s}": v.get("psi") for s, v in scores if _current(p, s)})
        for name, value in named.items():
            series.setdefault(name, [math.nan] * len(points))[k] = _val(value)
    peak = {n: np.nanmax(v) if not np.all(np.isnan(v)) else -1.0 for n, v in series.items()}
    ranked = sorted((n for n in series if not n.startswith("score ")), key=lambda n: -peak[n])
    shown = ranked[:TOP_FEATURES]
    for name in ranked[TOP_FEATURES:]:
        ax.plot(times, series[name], color="#cccccc", linewidth=0.8, drawstyle="steps-post")
    for i, name in enumerate(shown):
        ax.plot(times, series[name], color=color(i), label=name, drawstyle="steps-post")
    greys = ("#000000", "#555555", "#999999")
    for j, name in enumerate(sorted(n for n in series if n.startswith("score "))):
        grey = greys[j % len(greys)]
        ax.plot(times, series[name], "--", color=grey, label=name, drawstyle="steps-post")
    if psi_threshold is not None:
        ax.axhline(psi_threshold, color="red", linestyle=":", label="PSI threshold")
    top = float(max(peak.values(), default=0.0))
    if top > 2.0:
        # a large drift would flatten every other line and the threshold: linear up to 1
        ax.set_yscale("symlog", linthresh=1.0, linscale=2.0)
        ax.set_ylim(0.0, top * 1.5)
        ticks = [t for t in (0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500) if t <= top]
        ax.set_yticks(ticks, labels=[f"{t:g}" for t in ticks])
    if series:
        _legend(ax)
    else:
        _no_data(ax, "closed drift windows")
    ax.set_ylabel("PSI of the\nlast window")


def _fairness_panel(ax: Axes, points: Sequence[Mapping[str, Any]], times: list[float]) -> None:
    scopes = _scopes(points, "groups")
    for i, scope in enumerate(scopes):
        rows = _rows(points, "groups", scope)
        ax.plot(times, [_val(r.get("dp_gap")) for r in rows], color=color(i), label=f"v{scope} DP")
        eo = [_val(r.get("eo_gap")) for r in rows]
        ax.plot(times, eo, "--", color=color(i), label=f"v{scope} EO")
    if scopes:
        _legend(ax)
    else:
        _no_data(ax, "per-group metrics")
    ax.set_ylabel("rolling\nfairness gap")


def _events_panel(ax: Axes, alerts: Sequence[Mapping[str, Any]], known: Sequence[str]) -> None:
    seen = {str(a.get("kind")) for a in alerts}
    order = [*known, *sorted(seen - set(known))]  # one marker and colour per kind, every report
    kinds = [k for k in order if k in seen]
    for i, kind in enumerate(kinds):
        when = [_when(float(a["at"])) for a in alerts if a.get("kind") == kind]
        k = order.index(kind)
        ax.scatter(when, [i] * len(when), marker=_MARKERS[k % len(_MARKERS)], color=color(k + 3))
    ax.set_yticks(range(len(kinds)), labels=kinds, fontsize=8)
    ax.set_ylim(-0.7, max(len(kinds), 1) - 0.3)
    if not kinds:
        _no_data(ax, "alerts")
    ax.set_ylabel("alerts")


def _psi_threshold(history: LiveHistory) -> float | None:
    found = [
        a.get("threshold")
        for a in sorted(history.alerts, key=lambda a: float(a.get("at") or 0.0))
        if a.get("detector") == "psi" and a.get("kind") == "data_drift"
    ]
    for p in history.points:
        found += [
            f.get("threshold")
            for f in (p.get("drift") or {}).get("active") or []
            if f.get("detector") == "psi"
        ]
    present = [float(v) for v in found if v is not None]
    return present[-1] if present else None


def timeline_png(history: LiveHistory) -> bytes | None:
    """Metrics, drift statistics, fairness gaps and alerts over time; version changes as lines.

    None when the history is empty.
    """
    if history.empty:
        return None
    points = sorted(history.points, key=lambda p: float(p.get("at") or 0.0))
    times = [_when(float(p.get("at") or 0.0)) for p in points]
    alerts, changes = list(history.alerts), list(history.changes)
    if points:
        # what happened before the oldest point kept is listed in the tables, not plotted
        start, end = float(points[0]["at"]), float(points[-1]["at"])
        start -= max(0.05 * (end - start), 60.0)
        alerts = [a for a in alerts if float(a.get("at") or 0.0) >= start]
        changes = [c for c in changes if c.at >= start]
    with_groups = any(p.get("groups") for p in points)
    heights = [3, 3, *([2] if with_groups else []), 1.4]
    fig = figure(10.5, 2.0 * sum(heights) / 2.2 + 1.0)
    axes = fig.subplots(len(heights), 1, sharex=True, height_ratios=heights)
    _metrics_panel(axes[0], points, times)
    _drift_panel(axes[1], points, times, _psi_threshold(history))
    if with_groups:
        _fairness_panel(axes[2], points, times)
    _events_panel(axes[-1], alerts, history.alert_kinds)
    for change in changes:
        at = _when(change.at)
        style = {"rollback": ("red", "-"), "promote": ("green", "-")}.get(
            change.action, ("#555555", ":")
        )
        for ax in axes:
            ax.axvline(at, color=style[0], linestyle=style[1], linewidth=1.2)
        axes[0].annotate(
            f"{change.action} v{change.version}",
            (at, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color=style[0],
        )
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    formatter = mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(formatter)
    axes[-1].set_xlabel("time (UTC)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("Live history: metrics, drift, fairness, alerts and version changes", fontsize=11)
    return png(fig)


__all__ = ["LiveHistory", "VersionChange", "merge_changes", "timeline_png"]
