"""The JSON snapshot of a :class:`monitoring.model_monitor.ModelMonitor`: format and checks.

:meth:`ModelMonitor.snapshot <monitoring.model_monitor.ModelMonitor.snapshot>` writes it and
:meth:`~monitoring.model_monitor.ModelMonitor.restore` reads it back, in this or another
process, after :func:`check_snapshot` has made sure it is of the same model, feature schema and
histogram resolution.

Snapshot format (``schema_version`` 2), a JSON object::

    schema_version   2 (1 is read too: its feature monitors were on the champion card's bins)
    model, version   the card's name and version; feature names (checked on restore)
    features         {"numeric": [...], "categorical": [...]}
    config           the MonitorConfig as a dict (informational)
    events, batches, labels           counters
    ungrouped        [events, labels] whose sensitive group was unknown (0, 0 without one)
    unreferenced     events whose summaries came on the bins of a card their variant's
                      feature monitor had left (0 in schema 1)
    groups           sensitive group names, in code order
    feature_state    {variant: {ref (the card version of its bins; absent in schema 1: the
                      champion's), retired (versions it was on before), rows, windows,
                      numeric: {rows, missing, out_of_range, psi_counts, ks_hist
                      (sparse: [[bin...], [count...]] per feature)},
                      categorical: {feature: {rows, counts}},
                      detectors: {feature: detector} (empty with CUSUM),
                      cusum: null or [numeric, categorical] CUSUM state,
                      evidence: {moments, totals, counts, weights} (each feature's drift
                      evidence, :mod:`monitoring.attribution`), multivariate: null or
                      {pending, cusum} (the PCA's detector); both absent in older snapshots,
                      which restore them fresh}}
    score_state      {"version/variant": {rows, windows, window: <as numeric>, detector
                      (River's, or {kind: "cusum", pending, bank})}}
    label_state      {"version/variant": {labels, counts: {confusion [tn, fp, fn, tp],
                      loss_sum, hist_bins, hist}, groups: [[rows], [selected], [positives],
                      [true positives]], rolling: {y, y_pred, p, codes} oldest first,
                      concept: {name: detector, cusum: {kind, h, updates, stats}}}}
    estimate_state   {refs: {"version/variant": card version}, blocks: {"version/variant":
                      [expected confusion block, ...]}} oldest first
                      (:mod:`monitoring.scope_estimates`; absent in older snapshots, whose
                      estimates start afresh)
    findings         {counts: {kind: n}, last: {kind: finding}, active: {key: {finding,
                      until, clock}}}
    slices           null, or {by, counter: {top, capacity, values, counts, errors, ids,
                      next_id, seen}, scopes: {"version/variant": {cumulative: [[rows],
                      [selected], [positives], [true positives]] per column, rolling: {y,
                      y_pred, ids}}}} (:mod:`monitoring.slices`; absent in older snapshots,
                      which restore without slices, as does one of another ``slice_by``)

A ``detector`` is ``{kind, params, updates, detections, replay}``: River detectors are rebuilt
by replaying ``replay`` (the inputs since their last reset, capped) into a fresh detector;
see :mod:`monitoring.detectors`. CUSUM state (:mod:`monitoring.sequential_drift`) is each
bank's statistics and the open block's sums and counts: ``numeric`` is ``{pending, bank:
{h, updates, stats}}``, ``categorical`` ``{hits, counts, up, down}``; snapshots from before it
restore with fresh CUSUMs. Windows, metrics and CUSUMs restore exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monitoring.errors import SnapshotError

SNAPSHOT_SCHEMA_VERSION = 2
# Schema 1 lacks only what schema 2 added, each read with its default.
READABLE_SCHEMA_VERSIONS = (1, SNAPSHOT_SCHEMA_VERSION)


def check_snapshot(
    state: Mapping[str, Any], model: str, features: Mapping[str, Sequence[str]], ks_bins: int
) -> None:
    """Raise unless a monitor of ``model`` with these features and ``ks_bins`` can restore
    ``state`` (``features``: ``{"numeric": [...], "categorical": [...]}``, as in the snapshot).

    Raises
    ------
    SnapshotError
        Another schema version, model or feature schema, or a histogram resolution that
        changed.

    Examples
    --------
    >>> features = {"numeric": ["x0"], "categorical": []}
    >>> state = {"schema_version": 2, "model": "sea", "features": features, "config": {}}
    >>> check_snapshot(state, "sea", features, ks_bins=20)
    >>> check_snapshot(state, "credit", features, ks_bins=20)
    Traceback (most recent call last):
    ...
    monitoring.errors.SnapshotError: snapshot is of model 'sea', not 'credit'
    """
    found = state.get("schema_version") if isinstance(state, Mapping) else None
    if found not in READABLE_SCHEMA_VERSIONS:
        raise SnapshotError(
            f"snapshot schema_version {found!r} is not one of {READABLE_SCHEMA_VERSIONS}",
            found=found,
        )
    if state.get("model") != model:
        raise SnapshotError(
            f"snapshot is of model {state.get('model')!r}, not {model!r}",
            found=state.get("model"),
        )
    if state.get("features") != features:
        raise SnapshotError("snapshot has another feature schema", found=state.get("features"))
    saved_bins = (state.get("config") or {}).get("ks_bins", ks_bins)
    if not isinstance(saved_bins, int) or saved_bins <= 0 or saved_bins % ks_bins:
        raise SnapshotError(
            f"snapshot KS histograms have {saved_bins} bins, config has {ks_bins} "
            "(a snapshot restores only with the same number of bins or a multiple of it)",
            found=saved_bins,
        )


def rebinned(state: Mapping[str, Any], ks_bins: int) -> dict[str, Any]:
    """``state`` with its KS histograms summed into ``ks_bins`` bins (their count was a
    multiple of it: the coarse bins' edges are levels of the fine ones, so it is exact).

    Examples
    --------
    >>> window = {"ks_hist": [[[0, 1, 9], [2, 3, 4]]]}
    >>> scores = {"v/c": {"window": window}}
    >>> state = {"config": {"ks_bins": 10}, "feature_state": {}, "score_state": scores}
    >>> rebinned(state, 5)["score_state"]["v/c"]["window"]["ks_hist"]
    [[[0, 4], [5, 4]]]
    """
    saved = int((state.get("config") or {}).get("ks_bins", ks_bins))
    if saved == ks_bins:
        return dict(state)
    factor = saved // ks_bins

    def window(w: Mapping[str, Any]) -> dict[str, Any]:
        rows = []
        for idx, vals in w["ks_hist"]:
            sums: dict[int, int] = {}
            for i, v in zip(idx, vals, strict=True):
                sums[i // factor] = sums.get(i // factor, 0) + v
            rows.append([sorted(sums), [sums[i] for i in sorted(sums)]])
        return {**w, "ks_hist": rows}

    out = dict(state)
    out["feature_state"] = {
        k: {**f, "numeric": window(f["numeric"])} for k, f in state["feature_state"].items()
    }
    out["score_state"] = {
        k: {**sc, "window": window(sc["window"])} for k, sc in state["score_state"].items()
    }
    return out


__all__ = ["READABLE_SCHEMA_VERSIONS", "SNAPSHOT_SCHEMA_VERSION", "check_snapshot", "rebinned"]
