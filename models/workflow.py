"""End-to-end training: split, cross-validate, fit, check fairness, export, prove parity, profile.

:func:`train` returns the ONNX bytes and a draft :class:`~models.card.ModelCard`;
:meth:`models.registry.Registry.register` turns the draft into a numbered version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from models.calibration import fit_calibrator
from models.card import (
    DataInfo,
    FairnessReport,
    Metrics,
    ModelCard,
    Thresholds,
    TrainingInfo,
)
from models.data import Dataset
from models.errors import ConfigError
from models.evaluation import cross_validate, holdout_curves, holdout_metrics
from models.explain import fit_pca, score_importance
from models.export import check_parity, export_onnx
from models.fairness import apply_thresholds, choose_thresholds, fairness_snapshot, reweigh
from models.profile import reference_profile
from models.training import ESTIMATORS, build_pipeline, class_balance_weights, estimator_params

Mitigation = Literal["none", "reweigh", "threshold"]
MITIGATIONS: tuple[str, ...] = ("none", "reweigh", "threshold")
DRAFT_VERSION = "draft"


@dataclass(frozen=True)
class TrainOptions:
    """What to train and how.

    Parameters
    ----------
    name : str
        Model name in the registry.
    estimator : {"logreg", "rf", "gbdt"}
        The classifier.
    class_weight : {"none", "balanced"}
        ``balanced`` weights rows by inverse class frequency.
    mitigate : {"none", "reweigh", "threshold"}
        Fairness mitigation (needs a sensitive attribute).
    threshold_objective : {"tpr", "selection_rate"}
        What per-group thresholds equalise.
    folds : int
        Cross-validation folds.
    holdout : float
        Fraction of rows kept out for the holdout.
    seed : int
        Seed of the split, the folds and the estimator.
    """

    name: str
    estimator: str = "logreg"
    class_weight: str = "none"
    mitigate: str = "none"
    threshold_objective: Literal["tpr", "selection_rate"] = "tpr"
    folds: int = 5
    holdout: float = 0.2
    seed: int = 42


@dataclass(frozen=True)
class TrainResult:
    """A trained, exported and parity-checked model, ready to register."""

    card: ModelCard
    payload: bytes
    pipeline: Pipeline


def _validate(ds: Dataset, opts: TrainOptions) -> None:
    if opts.estimator not in ESTIMATORS:
        raise ConfigError(
            f"unknown estimator {opts.estimator!r}; choose one of {', '.join(ESTIMATORS)}",
            option="model",
            value=opts.estimator,
        )
    if opts.mitigate not in MITIGATIONS:
        raise ConfigError(
            f"unknown mitigation {opts.mitigate!r}; choose one of {', '.join(MITIGATIONS)}",
            option="mitigate",
            value=opts.mitigate,
        )
    if opts.mitigate != "none" and ds.groups is None:
        raise ConfigError(
            f"--mitigate {opts.mitigate} needs a sensitive attribute (use --sensitive COL, "
            "or the agrawal dataset)",
            option="mitigate",
            value=opts.mitigate,
        )
    if opts.threshold_objective not in ("tpr", "selection_rate"):
        raise ConfigError(
            f"unknown threshold objective {opts.threshold_objective!r}; "
            "choose tpr or selection_rate",
            option="threshold_objective",
            value=opts.threshold_objective,
        )
    if not 2 <= opts.folds <= 20:
        raise ConfigError(
            f"--folds must be between 2 and 20, got {opts.folds}", option="folds", value=opts.folds
        )
    if not 0.05 <= opts.holdout <= 0.5:
        raise ConfigError(
            "holdout fraction must be in [0.05, 0.5]", option="holdout", value=opts.holdout
        )


def train(
    ds: Dataset, opts: TrainOptions, progress: Callable[[str], None] | None = None
) -> TrainResult:
    """Train, validate, check fairness and export one model.

    Parameters
    ----------
    ds : Dataset
        Checked training data (from :func:`models.data.synthetic` or :func:`models.csvio.load_csv`).
    opts : TrainOptions
        Options.
    progress : callable or None
        Receives a short message at the start of each long step.

    Returns
    -------
    TrainResult
        The draft card (version ``"draft"``), the ONNX bytes and the fitted pipeline.

    Raises
    ------
    ConfigError
        Invalid options.
    ParityError
        The ONNX model does not reproduce scikit-learn on the holdout.

    Examples
    --------
    >>> from models.data import synthetic
    >>> opts = TrainOptions(name="demo", folds=3, mitigate="threshold")
    >>> result = train(synthetic("agrawal", rows=600, seed=5), opts)
    >>> result.card.parity.labels_identical, result.card.parity.max_abs_diff <= 1e-4
    (True, True)
    >>> sorted(result.card.thresholds.per_group)
    ['40-59', '60+', '<40']
    """
    _validate(ds, opts)
    note = progress or (lambda _msg: None)
    started = time.perf_counter()
    idx = np.arange(len(ds))
    tr_idx, ho_idx = train_test_split(
        idx, test_size=opts.holdout, random_state=opts.seed, stratify=ds.y
    )
    train_ds, hold_ds = ds.subset(np.sort(tr_idx)), ds.subset(np.sort(ho_idx))
    x_tr, x_ho = train_ds.matrix(), hold_ds.matrix()
    base_w = class_balance_weights(train_ds.y, opts.class_weight)
    weights = base_w
    if opts.mitigate == "reweigh" and train_ds.groups is not None:
        weights = base_w * reweigh(train_ds.y, train_ds.groups)
    pipeline = build_pipeline(
        opts.estimator, len(ds.numeric_names), len(ds.categorical_names), seed=opts.seed
    )
    cv, oof = cross_validate(
        pipeline, x_tr, train_ds.y, weights, folds=opts.folds, seed=opts.seed, progress=note
    )

    note("fitting the final model")
    model = clone(pipeline)
    model.fit(x_tr, train_ds.y, clf__sample_weight=weights)
    train_seconds = time.perf_counter() - started

    note("exporting to ONNX and checking parity")
    exported = export_onnx(model, ds.numeric_names, ds.categorical_names)
    parity, p_onnx = check_parity(exported, model, hold_ds.numeric, hold_ds.categorical, x_ho)
    p_hold = p_onnx[:, 1].astype(np.float64)

    note("evaluating fairness")
    fairness, thresholds = _fairness(
        ds, opts, pipeline, train_ds, hold_ds, x_tr, x_ho, base_w, oof, p_hold
    )
    served = None
    if thresholds.per_group:
        served_labels = apply_thresholds(p_hold, hold_ds.groups, thresholds.per_group)
        served = holdout_metrics(hold_ds.y, p_hold, served_labels)

    card = ModelCard(
        name=opts.name,
        version=DRAFT_VERSION,
        created_at="",
        parent_version=None,
        target=ds.target,
        classes=list(ds.classes),
        features=train_ds.feature_specs(),
        sensitive=ds.sensitive,
        onnx=exported.info,
        training=TrainingInfo(
            estimator=opts.estimator,  # type: ignore[arg-type]
            params=dict(estimator_params(opts.estimator, opts.seed)),
            class_weight=opts.class_weight,  # type: ignore[arg-type]
            mitigation=opts.mitigate,  # type: ignore[arg-type]
            seconds=train_seconds,
        ),
        data=DataInfo(
            source=ds.source,
            rows=len(ds),
            train_rows=len(train_ds),
            holdout_rows=len(hold_ds),
            fingerprint=ds.fingerprint(),
            class_balance=ds.class_balance(),
            seed=opts.seed,
            query=ds.query,
        ),
        metrics=Metrics(
            folds=opts.folds,
            cv=cv,
            holdout=holdout_metrics(hold_ds.y, p_hold),
            holdout_served=served,
            curves=holdout_curves(hold_ds.y, p_hold),
        ),
        fairness=fairness,
        thresholds=thresholds,
        parity=parity,
        reference=reference_profile(train_ds, p_hold),
        calibrator=fit_calibrator(hold_ds.y, p_hold, seed=opts.seed),
        importance=score_importance(model, x_ho, ds.feature_names, opts.seed),
        pca=fit_pca(train_ds.numeric, hold_ds.numeric, ds.numeric_names),
    )
    return TrainResult(card=card, payload=exported.payload, pipeline=model)


def _fairness(
    ds: Dataset,
    opts: TrainOptions,
    pipeline: Pipeline,
    train_ds: Dataset,
    hold_ds: Dataset,
    x_tr: NDArray[np.generic],
    x_ho: NDArray[np.generic],
    base_w: NDArray[np.float64],
    oof: NDArray[np.float64],
    p_hold: NDArray[np.float64],
) -> tuple[FairnessReport | None, Thresholds]:
    if ds.sensitive is None or train_ds.groups is None or hold_ds.groups is None:
        return None, Thresholds()
    pred = (p_hold > 0.5).astype(np.int64)
    current = fairness_snapshot(hold_ds.y, pred, hold_ds.groups)
    if opts.mitigate == "reweigh":
        # "Before" is the same pipeline trained without the reweighing factor.
        baseline = clone(pipeline).fit(x_tr, train_ds.y, clf__sample_weight=base_w)
        base_pred = (baseline.predict_proba(x_ho)[:, 1] > 0.5).astype(np.int64)
        before = fairness_snapshot(hold_ds.y, base_pred, hold_ds.groups)
        report = FairnessReport(
            sensitive=ds.sensitive.name, mitigation="reweigh", before=before, after=current
        )
        return report, Thresholds()
    if opts.mitigate == "threshold":
        # Chosen on out-of-fold scores, so the holdout stays unseen.
        per_group = choose_thresholds(oof, train_ds.y, train_ds.groups, opts.threshold_objective)
        after_pred = apply_thresholds(p_hold, hold_ds.groups, per_group)
        after = fairness_snapshot(hold_ds.y, after_pred, hold_ds.groups)
        report = FairnessReport(
            sensitive=ds.sensitive.name, mitigation="threshold", before=current, after=after
        )
        thresholds = Thresholds(
            group_by=ds.sensitive.name, per_group=per_group, objective=opts.threshold_objective
        )
        return report, thresholds
    return FairnessReport(
        sensitive=ds.sensitive.name, mitigation="none", before=current
    ), Thresholds()


__all__ = ["DRAFT_VERSION", "MITIGATIONS", "Mitigation", "TrainOptions", "TrainResult", "train"]
