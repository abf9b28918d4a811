"""Group fairness metrics and the two mitigations (reweighing, per-group thresholds).

Definitions, for groups ``g`` of the sensitive attribute and predictions ``ŷ``:

- selection rate ``P(ŷ=1 | g)``, TPR ``P(ŷ=1 | y=1, g)``, FPR ``P(ŷ=1 | y=0, g)``,
  precision ``P(y=1 | ŷ=1, g)``;
- demographic-parity difference: max − min selection rate over groups;
- equalized-odds difference: the larger of the TPR range and the FPR range;
- disparate-impact ratio: min / max selection rate (None when every selection rate is 0).

Rows whose group is missing (``""``) are left out of the group metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from models.card import FairnessSnapshot, GroupMetrics
from models.data import MISSING_CATEGORY

ThresholdObjective = Literal["tpr", "selection_rate"]


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _spread(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return float(max(present) - min(present)) if len(present) >= 2 else 0.0


def fairness_snapshot(
    y_true: NDArray[np.int64], y_pred: NDArray[np.int64], groups: NDArray[np.object_]
) -> FairnessSnapshot:
    """Per-group outcome rates and the gaps between groups.

    Parameters
    ----------
    y_true, y_pred : ndarray of int, shape (n,)
        True and predicted 0/1 labels.
    groups : ndarray of str, shape (n,)
        Sensitive group of each row.

    Returns
    -------
    FairnessSnapshot

    Examples
    --------
    >>> y = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    >>> p = np.array([1, 0, 1, 0, 1, 0, 0, 0])
    >>> g = np.array(["a", "a", "a", "a", "b", "b", "b", "b"], dtype=object)
    >>> snap = fairness_snapshot(y, p, g)
    >>> snap.groups["a"].selection_rate, snap.groups["b"].selection_rate
    (0.5, 0.25)
    >>> snap.demographic_parity_difference, snap.disparate_impact_ratio
    (0.25, 0.5)
    """
    per_group: dict[str, GroupMetrics] = {}
    for g in sorted({str(v) for v in groups.tolist()} - {MISSING_CATEGORY}):
        mask = groups == g
        yt, yp = y_true[mask], y_pred[mask]
        n = int(mask.sum())
        pos, neg, sel = int(yt.sum()), int((yt == 0).sum()), int(yp.sum())
        tp = int(((yt == 1) & (yp == 1)).sum())
        fp = int(((yt == 0) & (yp == 1)).sum())
        per_group[g] = GroupMetrics(
            count=n,
            base_rate=pos / n,
            selection_rate=sel / n,
            tpr=_rate(tp, pos),
            fpr=_rate(fp, neg),
            precision=_rate(tp, sel),
        )
    rates = [m.selection_rate for m in per_group.values()]
    top = max(rates, default=0.0)
    return FairnessSnapshot(
        groups=per_group,
        demographic_parity_difference=_spread(list(rates)),
        equalized_odds_difference=max(
            _spread([m.tpr for m in per_group.values()]),
            _spread([m.fpr for m in per_group.values()]),
        ),
        disparate_impact_ratio=None if top == 0 else float(min(rates) / top),
    )


def reweigh(y: NDArray[np.int64], groups: NDArray[np.object_]) -> NDArray[np.float64]:
    """Kamiran–Calders reweighing: ``w(g, y) = P(g) P(y) / P(g, y)``.

    After weighting, the label is statistically independent of the group. Rows with a
    missing group keep weight 1.

    Examples
    --------
    >>> y = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    >>> g = np.array(["a", "a", "a", "a", "b", "b", "b", "b"], dtype=object)
    >>> reweigh(y, g).round(3).tolist()
    [0.667, 0.667, 0.667, 2.0, 2.0, 0.667, 0.667, 0.667]
    """
    w = np.ones(y.shape[0], dtype=np.float64)
    known = groups != MISSING_CATEGORY
    n = int(known.sum())
    if n == 0:
        return w
    for g in {str(v) for v in groups[known].tolist()}:
        in_g = groups == g
        for label in (0, 1):
            cell = in_g & (y == label)
            n_cell = int(cell.sum())
            if n_cell:
                p_g = in_g.sum() / n
                p_y = ((y == label) & known).sum() / n
                w[cell] = p_g * p_y / (n_cell / n)
    return w


def apply_thresholds(
    p_positive: NDArray[np.floating],
    groups: NDArray[np.object_] | None,
    per_group: Mapping[str, float],
    default: float = 0.5,
) -> NDArray[np.int64]:
    """Labels ``p > threshold(group)``; unknown or missing groups use ``default``.

    Examples
    --------
    >>> groups = np.array(["a", "b", "b"], dtype=object)
    >>> apply_thresholds(np.array([0.3, 0.3, 0.7]), groups, {"a": 0.2}).tolist()
    [1, 0, 1]
    """
    thr = np.full(p_positive.shape[0], default, dtype=np.float64)
    if groups is not None:
        for g, t in per_group.items():
            thr[groups == g] = t
    return (p_positive > thr).astype(np.int64)


def choose_thresholds(
    p_positive: NDArray[np.floating],
    y: NDArray[np.int64],
    groups: NDArray[np.object_],
    objective: ThresholdObjective = "tpr",
    default: float = 0.5,
) -> dict[str, float]:
    """Per-group thresholds that bring every group to the overall rate at ``default``.

    The target is the overall TPR (``objective="tpr"``, equal opportunity) or the overall
    selection rate (``"selection_rate"``, demographic parity) of the unmitigated model on the
    validation data. For each group the candidate thresholds are the midpoints between its
    sorted scores; the one whose rate is closest to the target wins, ties going to the
    threshold closest to ``default``. A group without positives (for ``tpr``) keeps ``default``.

    Examples
    --------
    >>> p = np.array([0.9, 0.6, 0.4, 0.2, 0.45, 0.35, 0.3, 0.1])
    >>> y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    >>> g = np.array(["a", "a", "a", "a", "b", "b", "b", "b"], dtype=object)
    >>> thresholds = choose_thresholds(p, y, g)  # overall TPR at 0.5 is 0.5: a has 1.0, b 0.0
    >>> {k: round(v, 3) for k, v in thresholds.items()}
    {'a': 0.75, 'b': 0.4}
    >>> apply_thresholds(p, g, thresholds)[y == 1].tolist()  # now one TP of two in each group
    [1, 0, 1, 0]
    """
    base = (p_positive > default).astype(np.int64)
    mask_known = groups != MISSING_CATEGORY
    if objective == "tpr":
        positives = (y == 1) & mask_known
        target = float(base[positives].mean()) if positives.any() else 0.0
    else:
        target = float(base[mask_known].mean()) if mask_known.any() else 0.0
    out: dict[str, float] = {}
    for g in sorted({str(v) for v in groups[mask_known].tolist()}):
        in_g = groups == g
        ref = in_g & (y == 1) if objective == "tpr" else in_g
        scores = np.asarray(p_positive[ref], dtype=np.float64)
        if scores.size == 0:
            out[g] = default
            continue
        s = np.unique(np.concatenate([scores, [0.0, 1.0]]))
        candidates = np.unique(np.concatenate([(s[:-1] + s[1:]) / 2, [default]]))
        rates = (scores[None, :] > candidates[:, None]).mean(axis=1)
        gap = np.abs(rates - target)
        best = np.flatnonzero(np.isclose(gap, gap.min(), rtol=0, atol=1e-12))
        pick = best[np.argmin(np.abs(candidates[best] - default))]
        out[g] = float(candidates[pick])
    return out


__all__ = [
    "ThresholdObjective",
    "apply_thresholds",
    "choose_thresholds",
    "fairness_snapshot",
    "reweigh",
]
