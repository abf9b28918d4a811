"""Fixtures of the unit tests: small seeded data sets and trained models, no network."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from models.csvio import load_csv
from models.data import Dataset, synthetic
from models.workflow import TrainOptions, TrainResult, train

ROWS = 2000


def write_credit_csv(path: Path, rows: int = ROWS, seed: int = 0) -> Path:
    """A credit-approval table: numeric and categorical columns, missing values, outliers.

    ``sex`` is the sensitive column; the label depends on income, debt and job, and is
    shifted for one group so that fairness metrics have something to measure.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows)
    income = rng.lognormal(10.5, 0.5, rows)
    income[rng.random(rows) < 0.01] *= 50  # outliers
    debt = rng.beta(2, 5, rows)
    job = rng.choice(["clerk", "engineer", "nurse", "driver"], rows)
    region = rng.choice(["north", "south", "east"], rows)
    sex = rng.choice(["F", "M"], rows, p=[0.4, 0.6])
    logit = (
        1.2 * (np.log(income) - 10.5) / 0.5
        - 3.0 * (debt - 0.3)
        + np.where(job == "engineer", 0.8, 0.0)
        + np.where(sex == "M", 0.6, -0.2)
        + 0.01 * (age - 45)
    )
    label = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "approved", "denied")
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["age", "income", "debt_ratio", "job", "region", "sex", "decision"])
        for i in range(rows):
            out.writerow(
                [
                    int(age[i]),
                    "" if rng.random() < 0.05 else f"{income[i]:.2f}",
                    "NA" if rng.random() < 0.02 else f"{debt[i]:.4f}",
                    "" if rng.random() < 0.03 else job[i],
                    region[i],
                    sex[i],
                    label[i],
                ]
            )
    return path


@pytest.fixture(scope="session")
def credit_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a 2,000-row credit CSV."""
    return write_credit_csv(tmp_path_factory.mktemp("csv") / "credit.csv")


@pytest.fixture(scope="session")
def credit(credit_csv: Path) -> Dataset:
    """The credit CSV loaded with ``sex`` as the sensitive column."""
    return load_csv(credit_csv, target="decision", sensitive="sex")


@pytest.fixture(scope="session")
def agrawal() -> Dataset:
    """2,000 Agrawal rows (sensitive attribute ``age_band``)."""
    return synthetic("agrawal", rows=ROWS, seed=11)


@pytest.fixture(scope="session")
def sea_result() -> TrainResult:
    """A small logistic regression on SEA (numeric features only)."""
    return train(synthetic("sea", rows=600, seed=2), TrainOptions(name="sea", folds=3))


@pytest.fixture(scope="session")
def agrawal_threshold(agrawal: Dataset) -> TrainResult:
    """Logistic regression on Agrawal with per-group thresholds."""
    return train(
        agrawal, TrainOptions(name="agr", estimator="logreg", folds=3, mitigate="threshold")
    )


def rows_of(ds: Dataset, count: int = 200) -> list[dict[str, object]]:
    """The first ``count`` rows as raw event features (missing values as ``None``)."""
    out: list[dict[str, object]] = []
    for i in range(min(count, len(ds))):
        row: dict[str, object] = {}
        for j, name in enumerate(ds.numeric_names):
            v = float(ds.numeric[i, j])
            row[name] = None if np.isnan(v) else v
        for j, name in enumerate(ds.categorical_names):
            c = str(ds.categorical[i, j])
            row[name] = c or None
        out.append(row)
    return out
