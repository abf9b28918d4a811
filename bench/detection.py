"""``driftline bench detection``: how soon drift is found, and how often it is cried wrongly.

For every :class:`~bench.detection_streams.Scenario`, on seeded streams with a change at event
20,000, batches of 256 and labels as soon as the events: Driftline's monitors at their
defaults (:class:`monitoring.ModelMonitor`: every kind of finding, labels included) and
River's detectors at their defaults fed one value at a time (ADWIN on every feature, every
category's indicator, the score and the error stream; Page-Hinkley on the same values with
DDM on the errors). A change counts as found at the end of the batch holding the first alarm
after it, within 20,000 events; delays are in events. Stationary streams of 1,000,000 events
per feature family give the false alarms per million. Beside each change, Lorden's bound
where it is known (:func:`~bench.detection_streams.lorden_bound`). Then the label-free
performance estimate against the realized accuracy (:mod:`bench.estimation`).

The model of each family is a logistic regression trained on 50,000 stationary rows of it;
its card holds the reference profiles the monitors compare against.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river import drift

from bench import attribution, estimation
from bench.detection_streams import (
    AFTER,
    BATCH,
    CHANGE,
    FAMILIES,
    FEATURES,
    Chunk,
    Scenario,
    lorden_bound,
    stream,
    training_set,
)
from models.data import Dataset
from models.workflow import TrainOptions, TrainResult, train
from monitoring import ModelMonitor, MonitorConfig

# Driftline is its monitors and the multivariate detector together (one budget); the two
# columns after it say which of them found the change.
CONTENDERS: tuple[str, ...] = (
    "Driftline",
    "Driftline without PCA",
    "Driftline PCA only",
    "River ADWIN",
    "River Page-Hinkley + DDM",
)
NAMES = tuple(f"x{j}" for j in range(FEATURES))
CATEGORIES = ("a", "b", "c", "d")
SILENT = "correlation of x4, x7 0.8 → 0 (the score ignores both)"


def scenarios(quick: bool) -> list[Scenario]:
    """The changes measured (fewer with ``quick``)."""
    g = "gaussian"
    if quick:
        return [
            Scenario("mean +0.25σ", g, "mean", 0.25),
            Scenario("mean +1σ", g, "mean", 1.0),
            Scenario("variance × 1.5", g, "scale", 1.5),
            Scenario("category mix 25 → 55 %", g, "category", 0.55),
            Scenario("one coefficient flips (concept)", g, "concept"),
            Scenario(SILENT, g, "correlation", feature=4),
        ]
    out = [Scenario(f"mean +{s:g}σ", g, "mean", s) for s in (0.1, 0.25, 0.5, 1.0)]
    out += [
        Scenario("ramp 0 → 1σ over 20,000", g, "ramp", 1.0),
        Scenario("variance × 1.5", g, "scale", 1.5),
        Scenario("category mix 25 → 55 %", g, "category", 0.55),
        Scenario("prior shift 50 → 75 % positives", g, "prior", 0.75),
        Scenario("one coefficient flips (concept)", g, "concept"),
        Scenario("correlation 0.8 → 0, marginals kept", g, "correlation"),
        Scenario(SILENT, g, "correlation", feature=4),
    ]
    for family in FAMILIES[1:]:
        out += [
            Scenario("mean +0.25σ", family, "mean", 0.25),
            Scenario("mean +0.5σ", family, "mean", 0.5),
            Scenario("variance × 1.5", family, "scale", 1.5),
            Scenario(SILENT, family, "correlation", feature=4),
        ]
    return out


def _model(family: str, seed: int, rows: int) -> TrainResult:
    data = training_set(family, seed, rows)
    ds = Dataset(
        source=f"bench-{family}",
        numeric_names=NAMES,
        categorical_names=("c",),
        numeric=data.numeric,
        categorical=data.categorical,
        y=data.y,
        classes=("0", "1"),
        target="label",
    )
    return train(ds, TrainOptions(name=f"detect-{family}", folds=2, seed=seed))


def _scores(model: TrainResult, chunk: Chunk) -> NDArray[np.float64]:
    matrix = np.empty((chunk.y.size, FEATURES + 1), dtype=object)
    matrix[:, :FEATURES] = chunk.numeric
    matrix[:, FEATURES] = chunk.categorical
    return np.asarray(model.pipeline.predict_proba(matrix)[:, 1], dtype=np.float64)


def driftline(
    model: TrainResult, chunk: Chunk, p: NDArray[np.float64]
) -> tuple[list[int], list[int]]:
    """Batch ends at which Driftline's monitors raised a finding (one entry per finding), the
    multivariate detector's (the card's PCA, in the monitors on the model's one budget) apart."""
    card = model.card
    mon = ModelMonitor(card, MonitorConfig())
    pred = (p >= 0.5).astype(np.int64)
    hits: list[int] = []
    pca_hits: list[int] = []
    for s in range(0, chunk.y.size, BATCH):
        e = min(s + BATCH, chunk.y.size)
        num = {n: chunk.numeric[s:e, j] for j, n in enumerate(NAMES)}
        found = mon.observe_batch(
            num, {"c": chunk.categorical[s:e]}, p[s:e], card.version, "champion"
        )
        found += mon.observe_labels(chunk.y[s:e], pred[s:e], p[s:e], None, card.version, "champion")
        pca = sum(f.details.get("test") == "multivariate" for f in found)
        hits += [e] * (len(found) - pca)
        pca_hits += [e] * pca
    return hits, pca_hits


def _batch_end(i: int) -> int:
    return (i // BATCH + 1) * BATCH


def river(model: TrainResult, chunk: Chunk, p: NDArray[np.float64], kind: str) -> list[int]:
    """Batch ends of every alarm of River's ``adwin`` (everywhere) or ``ph`` (Page-Hinkley,
    DDM on the errors), at defaults, one value at a time."""
    profiles = model.card.reference.features
    columns: list[list[float]] = []
    for j, name in enumerate(NAMES):
        prof = profiles[name]
        columns.append(((chunk.numeric[:, j] - (prof.mean or 0.0)) / (prof.std or 1.0)).tolist())
    columns += [(chunk.categorical == c).astype(np.float64).tolist() for c in CATEGORIES]
    columns.append(p.tolist())
    errors = ((p >= 0.5).astype(np.int64) != chunk.y).astype(np.float64).tolist()
    hits: list[int] = []
    make: Callable[[], Any] = drift.ADWIN if kind == "adwin" else drift.PageHinkley
    for col in columns:
        det = make()
        for i, v in enumerate(col):
            det.update(v)
            if det.drift_detected:
                hits.append(_batch_end(i))
    det = make() if kind == "adwin" else drift.binary.DDM()
    for i, v in enumerate(errors):
        det.update(v)
        if det.drift_detected:
            hits.append(_batch_end(i))
    return hits


def _alarms(model: TrainResult, chunk: Chunk) -> dict[str, list[int]]:
    p = _scores(model, chunk)
    monitors, pca = driftline(model, chunk, p)
    return {
        "Driftline": sorted(monitors + pca),
        "Driftline without PCA": monitors,
        "Driftline PCA only": pca,
        "River ADWIN": river(model, chunk, p, "adwin"),
        "River Page-Hinkley + DDM": river(model, chunk, p, "ph"),
    }


def _summary(delays: list[int | None]) -> dict[str, Any]:
    found = sorted(d for d in delays if d is not None)
    return {
        "found": len(found),
        "runs": len(delays),
        "median": float(np.median(found)) if found else None,
        "worst": found[-1] if found else None,
    }


def run(quick: bool = False, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every scenario and the stationary false alarms; return the report (JSON)."""
    seeds = 2 if quick else 10
    stationary_events = 100_000 if quick else 1_000_000
    train_rows = 20_000 if quick else 50_000
    started = time.perf_counter()
    plan = scenarios(quick)
    families = sorted({s.family for s in plan} | ({"gaussian"} if quick else set(FAMILIES)))
    models = {f: _model(f, 0, train_rows) for f in families}
    changes: list[dict[str, Any]] = []
    for sc in plan:
        delays: dict[str, list[int | None]] = {c: [] for c in CONTENDERS}
        early: dict[str, int] = dict.fromkeys(CONTENDERS, 0)
        for seed in range(seeds):
            chunk = stream(sc, 100 + seed, CHANGE + AFTER)
            for name, hits in _alarms(models[sc.family], chunk).items():
                after = [h - CHANGE for h in hits if h > CHANGE]
                early[name] += sum(h <= CHANGE for h in hits)
                delays[name].append(min(after) if after else None)
        row: dict[str, Any] = {
            "change": sc.name,
            "family": sc.family,
            "bound": lorden_bound(sc),
            **{c: {**_summary(delays[c]), "before_change": early[c]} for c in CONTENDERS},
        }
        changes.append(row)
        say(
            f"{sc.family:9s} {sc.name}: "
            + ", ".join(
                f"{c} {row[c]['found']}/{seeds} median {row[c]['median']}" for c in CONTENDERS
            )
        )
    stationary: list[dict[str, Any]] = []
    for family in families:
        chunk = stream(Scenario("stationary", family, "stationary"), 7, stationary_events)
        alarms = _alarms(models[family], chunk)
        per_million = {c: len(h) / stationary_events * 1e6 for c, h in alarms.items()}
        stationary.append({"family": family, "events": stationary_events, **per_million})
        say(f"{family:9s} stationary {stationary_events:,} events: {per_million}")
    estimated = estimation.run(models, _scores, quick, seeds, say)
    explained = attribution.run(models["gaussian"], quick, seeds, say)
    return {
        "quick": quick,
        "seeds": seeds,
        "train_rows": train_rows,
        "changes": changes,
        "stationary": stationary,
        "estimation": estimated,
        "attribution": explained,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _cell(res: dict[str, Any]) -> str:
    if not res["found"]:
        return f"not found in {AFTER:,}"
    rate = "" if res["found"] == res["runs"] else f"{res['found']} of {res['runs']}, "
    return f"{rate}{res['median']:,.0f} (worst {res['worst']:,})"


def render(report: dict[str, Any]) -> str:
    """The report as three Markdown tables: delays, stationary false alarms, estimates."""
    head = "| change | family | " + " | ".join(CONTENDERS) + " | bound at ≤ 1 per 1M |"
    lines = [
        f"Median (worst) delay in events over {report['seeds']} seeds; a change found in fewer "
        "runs says in how many.",
        "",
        head,
        "|" + "---|" * (len(CONTENDERS) + 3),
    ]
    for row in report["changes"]:
        bound = "—" if row["bound"] is None else f"≈ {row['bound']:,.0f}"
        cells = " | ".join(_cell(row[c]) for c in CONTENDERS)
        lines.append(f"| {row['change']} | {row['family']} | {cells} | {bound} |")
    lines += [
        "",
        "False alarms per million stationary events (every kind, labels included):",
        "",
        "| family | events | " + " | ".join(CONTENDERS) + " |",
        "|" + "---|" * (len(CONTENDERS) + 2),
    ]
    for row in report["stationary"]:
        cells = " | ".join(f"{row[c]:,.1f}" for c in CONTENDERS)
        lines.append(f"| {row['family']} | {row['events']:,} | {cells} |")
    lines += ["", *estimation.render(report["estimation"], report["seeds"])]
    if "attribution" in report:
        lines += ["", *attribution.render(report["attribution"])]
    lines += ["", f"({report['seconds']:,.0f} s)"]
    return "\n".join(lines)


__all__ = ["CONTENDERS", "driftline", "render", "river", "run", "scenarios"]
