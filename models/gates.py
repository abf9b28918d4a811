"""Promotion gates: the checks a candidate version must pass before it may serve traffic.

:func:`run_gates` applies four gates and returns a :class:`GateReport`; it never raises for a
failing gate, only for inputs it cannot use (:class:`~models.errors.GateInputError`).

``cross_validation``
    The candidate card's cross-validated F1: mean ``>= min_cv_f1`` and fold std
    ``<= max_cv_f1_std`` (a model whose folds disagree is not a stable model).
``champion``
    Candidate and champion both score the *recent* labelled holdout (post-drift data) through
    ONNX Runtime (:class:`~models.scorer.OnnxScorer`, with each card's thresholds, exactly as
    they would serve); the candidate's ``metric`` must be ``>=`` the champion's plus
    ``min_improvement``. Passes when there is no champion.
``fairness``
    Demographic-parity and equalized-odds gaps of the candidate's served labels on the holdout
    (groups with fewer than ``min_group_rows`` rows are left out), when the card has a
    sensitive spec and the holdout has groups; skipped (passed) otherwise.
``onnx_parity``
    The parity recorded at export (``max |p_onnx - p_sklearn|`` and identical labels) within
    ``parity_tolerance``, and the payload's sha256 equal to the card's. A payload that fails
    the hash is never loaded, so the gates that need it are reported failed, "not evaluated".

A gate may report several checks (one :class:`GateResult` each, same ``name``, different
``metric``); the report fails when any check fails.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, f1_score

from models.card import ModelCard
from models.data import MISSING_CATEGORY, Dataset
from models.errors import GateInputError, ModelError
from models.fairness import fairness_snapshot
from models.gate_config import GateConfig
from models.gate_report import GateReport, GateResult
from models.gate_report import fmt_figure as _fmt
from models.scorer import OnnxScorer

GATES: tuple[str, ...] = ("cross_validation", "champion", "fairness", "onnx_parity")
_NOT_EVALUATED = "not evaluated: the candidate payload failed its sha256 check"


def dataset_rows(ds: Dataset) -> list[dict[str, object]]:
    """The rows of ``ds`` as raw event features (``None`` for a missing value).

    Examples
    --------
    >>> from models.data import synthetic
    >>> dataset_rows(synthetic("sea", rows=50, seed=1))[0].keys()
    dict_keys(['x0', 'x1', 'x2'])
    """
    num = ds.numeric.astype(object)
    num[np.isnan(ds.numeric)] = None
    cat = ds.categorical.astype(object)
    cat[cat == MISSING_CATEGORY] = None
    names = ds.feature_names
    block = np.concatenate([num, cat], axis=1) if ds.categorical_names else num
    return [dict(zip(names, row, strict=True)) for row in block.tolist()]


def _check_schema(card: ModelCard, holdout: Dataset, role: str, exact: bool) -> None:
    have = {n: "numeric" for n in holdout.numeric_names}
    have.update({n: "categorical" for n in holdout.categorical_names})
    want = {f.name: f.kind for f in card.features}
    wrong = sorted(n for n, kind in want.items() if have.get(n) != kind)
    extra = sorted(set(have) - set(want)) if exact else []
    if wrong or extra:
        parts = []
        if wrong:
            parts.append(f"missing or of another kind in the holdout: {', '.join(wrong)}")
        if extra:
            parts.append(f"unknown to the card: {', '.join(extra)}")
        raise GateInputError(
            f"{role} {card.name}@{card.version} and the holdout disagree on features "
            f"({'; '.join(parts)})",
            gate="champion",
            version=card.version,
        )


def _metric(metric: str, y: NDArray[np.int64], labels: NDArray[np.int64]) -> float:
    if metric == "f1":
        return float(f1_score(y, labels, zero_division=0))
    return float(accuracy_score(y, labels))


def _cv_gate(card: ModelCard, config: GateConfig) -> list[GateResult]:
    f1 = card.metrics.cv.get("f1")
    if f1 is None:
        return [
            GateResult("cross_validation", False, None, config.min_cv_f1, "card has no CV f1", "f1")
        ]
    folds = card.metrics.folds
    return [
        GateResult(
            "cross_validation",
            f1.mean >= config.min_cv_f1,
            f1.mean,
            config.min_cv_f1,
            f"mean F1 over {folds} folds {_fmt(f1.mean)} (needs >= {_fmt(config.min_cv_f1)})",
            "f1",
            ">=",
        ),
        GateResult(
            "cross_validation",
            f1.std <= config.max_cv_f1_std,
            f1.std,
            config.max_cv_f1_std,
            f"F1 std over {folds} folds {_fmt(f1.std)} (needs <= {_fmt(config.max_cv_f1_std)})",
            "f1_std",
            "<=",
        ),
    ]


def _parity_gate(
    card: ModelCard, payload: bytes, config: GateConfig
) -> tuple[list[GateResult], OnnxScorer | None]:
    parity = card.parity
    ok = parity.max_abs_diff <= config.parity_tolerance and parity.labels_identical
    recorded = GateResult(
        "onnx_parity",
        ok,
        parity.max_abs_diff,
        config.parity_tolerance,
        f"recorded max |p_onnx - p_sklearn| {_fmt(parity.max_abs_diff)} on {parity.rows} rows, "
        f"labels identical: {parity.labels_identical}",
        "max_abs_diff",
        "<=",
        {"rows": parity.rows, "labels_identical": parity.labels_identical},
    )
    actual = hashlib.sha256(payload).hexdigest()
    if actual != card.onnx.sha256:
        detail = f"payload sha256 {actual[:12]}… differs from the card's {card.onnx.sha256[:12]}…"
        sha = GateResult("onnx_parity", False, None, None, detail, "sha256")
        return [recorded, sha], None
    try:
        scorer = OnnxScorer(card, payload)
    except Exception as exc:  # onnxruntime raises its own types for a corrupt graph
        detail = f"payload matches the card but does not load: {exc}"
        return [recorded, GateResult("onnx_parity", False, None, None, detail, "sha256")], None
    sha = GateResult("onnx_parity", True, None, None, "payload sha256 matches the card", "sha256")
    return [recorded, sha], scorer


def _champion_gate(
    scorer: OnnxScorer | None,
    labels: NDArray[np.int64] | None,
    champion: tuple[ModelCard, bytes] | None,
    holdout: Dataset,
    rows: list[dict[str, object]],
    config: GateConfig,
) -> GateResult:
    metric = config.metric
    if champion is None:
        return GateResult("champion", True, None, None, "no champion to beat", metric)
    if scorer is None or labels is None:
        return GateResult("champion", False, None, None, _NOT_EVALUATED, metric)
    card, payload = champion
    try:
        champ_labels, _ = OnnxScorer(card, payload).predict_batch(rows)
    except ModelError as exc:
        raise GateInputError(
            f"champion {card.name}@{card.version} cannot score the holdout: {exc}",
            gate="champion",
            version=card.version,
        ) from exc
    cand = _metric(metric, holdout.y, labels)
    champ = _metric(metric, holdout.y, champ_labels)
    bound = champ + config.min_improvement
    return GateResult(
        "champion",
        cand >= bound,
        cand,
        bound,
        f"candidate {metric} {_fmt(cand)} vs champion {card.name}@{card.version} {_fmt(champ)} "
        f"on {len(holdout)} recent rows (needs >= champion {config.min_improvement:+.3f})",
        metric,
        ">=",
        {"candidate": cand, "champion": champ, "rows": len(holdout), "version": card.version},
    )


def _fairness_gate(
    card: ModelCard, labels: NDArray[np.int64] | None, holdout: Dataset, config: GateConfig
) -> list[GateResult]:
    if config.max_dp_gap is None and config.max_eo_gap is None:
        return [GateResult("fairness", True, None, None, "disabled")]
    if card.sensitive is None or holdout.groups is None:
        return [GateResult("fairness", True, None, None, "skipped: no sensitive attribute")]
    if labels is None:
        return [GateResult("fairness", False, None, None, _NOT_EVALUATED)]
    groups = holdout.groups.copy()
    names, counts = np.unique(groups[groups != MISSING_CATEGORY].astype(str), return_counts=True)
    small = [str(g) for g, c in zip(names, counts, strict=True) if c < config.min_group_rows]
    for g in small:
        groups[groups == g] = MISSING_CATEGORY
    snap = fairness_snapshot(holdout.y, labels, groups)
    data = {
        "sensitive": card.sensitive.name,
        "groups": {g: m.model_dump() for g, m in snap.groups.items()},
        "left_out": small,
    }
    out: list[GateResult] = []
    checks = (
        ("dp_gap", snap.demographic_parity_difference, config.max_dp_gap),
        ("eo_gap", snap.equalized_odds_difference, config.max_eo_gap),
    )
    for metric, value, bound in checks:
        if bound is None:
            continue
        out.append(
            GateResult(
                "fairness",
                value <= bound,
                value,
                bound,
                f"{metric} of {card.sensitive.name} {_fmt(value)} over {len(snap.groups)} "
                f"groups on the holdout (needs <= {_fmt(bound)})",
                metric,
                "<=",
                data,
            )
        )
    return out


def run_gates(
    candidate_card: ModelCard,
    candidate_payload: bytes,
    champion: tuple[ModelCard, bytes] | None,
    holdout: Dataset,
    config: GateConfig | None = None,
) -> GateReport:
    """Apply every gate to a candidate (see the module docstring).

    Parameters
    ----------
    candidate_card : ModelCard
        The candidate's card (draft or registered).
    candidate_payload : bytes
        Its ONNX bytes.
    champion : (ModelCard, bytes) or None
        The serving champion's card and verified bytes; None when there is none.
    holdout : Dataset
        The most recent labelled rows, in the candidate's feature schema, never used to train
        the candidate.
    config : GateConfig or None
        Thresholds (defaults when None).

    Returns
    -------
    GateReport

    Raises
    ------
    GateInputError
        The holdout's features differ from the candidate's (or lack one of the champion's),
        the holdout is too small, or the champion cannot score it.

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.workflow import TrainOptions, train
    >>> ds = synthetic("sea", rows=1500, seed=4)
    >>> idx = np.arange(len(ds))
    >>> res = train(ds.subset(idx[:1000]), TrainOptions(name="sea", folds=3))
    >>> report = run_gates(res.card, res.payload, None, ds.subset(idx[1000:]), GateConfig())
    >>> report.passed, report.summary()
    (True, 'passed: cross_validation, champion, fairness, onnx_parity')
    >>> tampered = run_gates(res.card, res.payload + b"x", None, ds.subset(idx[1000:]))
    >>> tampered.failed_gates
    ['onnx_parity']
    """
    config = config or GateConfig()
    if len(holdout) < config.min_holdout_rows:
        raise GateInputError(
            f"the holdout has {len(holdout)} rows; the gates need at least "
            f"{config.min_holdout_rows}",
            gate="champion",
            version=candidate_card.version,
        )
    _check_schema(candidate_card, holdout, "candidate", exact=True)
    if champion is not None:
        _check_schema(champion[0], holdout, "champion", exact=False)
    parity, scorer = _parity_gate(candidate_card, candidate_payload, config)
    rows = dataset_rows(holdout)
    labels = None
    if scorer is not None:
        try:
            labels, _ = scorer.predict_batch(rows)
        except ModelError as exc:
            raise GateInputError(
                f"candidate cannot score the holdout: {exc}",
                gate="champion",
                version=candidate_card.version,
            ) from exc
    results = [
        *_cv_gate(candidate_card, config),
        _champion_gate(scorer, labels, champion, holdout, rows, config),
        *_fairness_gate(candidate_card, labels, holdout, config),
        *parity,
    ]
    champ_ref = None if champion is None else f"{champion[0].name}@{champion[0].version}"
    return GateReport(
        results=results,
        candidate=f"{candidate_card.name}@{candidate_card.version}",
        champion=champ_ref,
    )


__all__ = ["GATES", "GateConfig", "GateReport", "GateResult", "dataset_rows", "run_gates"]
