"""Training data: the :class:`Dataset` container and the built-in synthetic generators.

Numeric features are stored as float64 values that are exactly representable in float32,
so scikit-learn at training time and ONNX Runtime at serving time (float32 input) see the
same numbers. Missing values are NaN (numeric) and ``""`` (categorical).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from river.datasets import synth

from models.card import FeatureSpec, ModelCard, QueryInfo, SensitiveSpec
from models.errors import ConfigError, DataError

DatasetKind = Literal["agrawal", "sea", "hyperplane"]
DATASETS: tuple[str, ...] = ("agrawal", "sea", "hyperplane")
MISSING_CATEGORY = ""

# Agrawal's age is uniform on [20, 80]; these bands give three groups of comparable size.
AGE_BANDS = SensitiveSpec(
    name="age_band",
    column="age",
    kind="bands",
    bins=[40.0, 60.0],
    labels=["<40", "40-59", "60+"],
    groups=["<40", "40-59", "60+"],
)
# River's function 5 labels a row 1 when salary + commission lies in a window that moves with
# the age band: base rates and decision boundaries differ by band, and a linear model cannot
# follow the boundary for every band alike, which gives fairness work real gaps to close.
AGRAWAL_FUNCTION = 5
_AGRAWAL_CATEGORICAL = ("car", "zipcode")


def assign_groups(spec: SensitiveSpec, values: NDArray[np.generic]) -> NDArray[np.object_]:
    """Map raw values of the sensitive column to group labels (``""`` when missing).

    Examples
    --------
    >>> assign_groups(AGE_BANDS, np.array([25.0, 40.0, 71.0, np.nan])).tolist()
    ['<40', '40-59', '60+', '']
    """
    out = np.full(values.shape[0], MISSING_CATEGORY, dtype=object)
    if spec.kind == "bands":
        num = values.astype(np.float64)
        ok = ~np.isnan(num)
        idx = np.digitize(num[ok], np.asarray(spec.bins, dtype=np.float64), right=False)
        out[ok] = np.asarray(spec.labels, dtype=object)[idx]
        return out
    for i, v in enumerate(values.tolist()):
        if v is not None and not (isinstance(v, float) and np.isnan(v)):
            out[i] = str(v)
    return out


@dataclass(frozen=True)
class Dataset:
    """A binary-classification table split into numeric and categorical features.

    Parameters
    ----------
    source : str
        Dataset name or CSV path, recorded in the card.
    numeric_names, categorical_names : tuple of str
        Feature names, in the column order of ``numeric`` and ``categorical``.
    numeric : ndarray of float64, shape (n, len(numeric_names))
        NaN marks a missing value.
    categorical : ndarray of object (str), shape (n, len(categorical_names))
        ``""`` marks a missing value.
    y : ndarray of int64, shape (n,)
        0/1 labels; ``classes[1]`` is the positive class.
    classes : tuple of str
        Original names of the negative and positive class.
    target : str
        Name of the target column.
    sensitive : SensitiveSpec or None
        How the sensitive group is derived, if any.
    groups : ndarray of object (str) or None
        Sensitive group of every row.
    query : QueryInfo or None
        The SQL query the rows came from, recorded in the card.

    Examples
    --------
    >>> ds = synthetic("agrawal", rows=200, seed=7)
    >>> len(ds), ds.numeric_names[:3], ds.categorical_names
    (200, ('salary', 'commission', 'age'), ('car', 'zipcode'))
    >>> sorted(set(ds.groups.tolist()))
    ['40-59', '60+', '<40']
    >>> ds.fingerprint() == synthetic("agrawal", rows=200, seed=7).fingerprint()
    True
    """

    source: str
    numeric_names: tuple[str, ...]
    categorical_names: tuple[str, ...]
    numeric: NDArray[np.float64]
    categorical: NDArray[np.object_]
    y: NDArray[np.int64]
    classes: tuple[str, str]
    target: str
    sensitive: SensitiveSpec | None = None
    groups: NDArray[np.object_] | None = None
    query: QueryInfo | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Numeric then categorical feature names (the model's column order)."""
        return self.numeric_names + self.categorical_names

    def matrix(self) -> NDArray[np.generic]:
        """The feature matrix fed to the scikit-learn pipeline (numeric columns first)."""
        if not self.categorical_names:
            return self.numeric
        out = np.empty((len(self), len(self.feature_names)), dtype=object)
        out[:, : len(self.numeric_names)] = self.numeric
        out[:, len(self.numeric_names) :] = self.categorical
        return out

    def subset(self, index: NDArray[np.intp]) -> Dataset:
        """The rows at ``index``, as a new dataset."""
        return Dataset(
            source=self.source,
            numeric_names=self.numeric_names,
            categorical_names=self.categorical_names,
            numeric=self.numeric[index],
            categorical=self.categorical[index],
            y=self.y[index],
            classes=self.classes,
            target=self.target,
            sensitive=self.sensitive,
            groups=None if self.groups is None else self.groups[index],
            query=self.query,
        )

    def class_balance(self) -> dict[str, int]:
        """Row count per class name."""
        counts = np.bincount(self.y, minlength=2)
        return {self.classes[0]: int(counts[0]), self.classes[1]: int(counts[1])}

    def fingerprint(self) -> str:
        """sha256 of the names and values: two datasets with equal content share it."""
        h = hashlib.sha256()
        h.update("\x1f".join((*self.feature_names, self.target, *self.classes)).encode())
        h.update(np.ascontiguousarray(self.numeric, dtype=np.float64).tobytes())
        h.update("\x1e".join("\x1f".join(r) for r in self.categorical.tolist()).encode())
        h.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
        return h.hexdigest()

    def feature_specs(self) -> list[FeatureSpec]:
        """Feature schema for the card: kinds, categories, training ranges, missing rates."""
        specs: list[FeatureSpec] = []
        n = max(len(self), 1)
        for j, name in enumerate(self.numeric_names):
            col = self.numeric[:, j]
            ok = col[~np.isnan(col)]
            specs.append(
                FeatureSpec(
                    name=name,
                    kind="numeric",
                    minimum=float(ok.min()) if ok.size else None,
                    maximum=float(ok.max()) if ok.size else None,
                    missing_rate=float(1 - ok.size / n),
                )
            )
        for j, name in enumerate(self.categorical_names):
            cats = self.categorical[:, j]
            present = cats[cats != MISSING_CATEGORY]
            specs.append(
                FeatureSpec(
                    name=name,
                    kind="categorical",
                    categories=sorted({str(v) for v in present.tolist()}),
                    missing_rate=float(1 - present.size / n),
                )
            )
        return specs


def check_dataset(ds: Dataset) -> Dataset:
    """Reject data that cannot train a binary classifier; return ``ds`` unchanged otherwise.

    Raises
    ------
    DataError
        No rows, a target without exactly two classes, too few rows of a class, or a
        constant (or entirely missing) feature column.
    """
    if len(ds) == 0:
        raise DataError(f"{ds.source}: no data rows", source=ds.source)
    counts = np.bincount(ds.y, minlength=2)
    if counts.min() < 10:
        raise DataError(
            f"{ds.source}: target {ds.target!r} needs at least 10 rows of each class, "
            f"got {dict(zip(ds.classes, counts.tolist(), strict=True))}",
            source=ds.source,
            column=ds.target,
        )
    for j, name in enumerate(ds.numeric_names):
        col = ds.numeric[:, j]
        ok = col[~np.isnan(col)]
        if ok.size == 0 or float(ok.min()) == float(ok.max()):
            raise DataError(
                f"{ds.source}: feature {name!r} is constant; drop it with --features",
                source=ds.source,
                column=name,
            )
    for j, name in enumerate(ds.categorical_names):
        cats = ds.categorical[:, j]
        if len({v for v in cats.tolist() if v != MISSING_CATEGORY}) < 2:
            raise DataError(
                f"{ds.source}: feature {name!r} is constant; drop it with --features",
                source=ds.source,
                column=name,
            )
    return ds


def as_float32_exact(values: NDArray[np.float64]) -> NDArray[np.float64]:
    return values.astype(np.float32).astype(np.float64)


def synthetic(
    kind: str, *, rows: int = 2000, seed: int = 42, features: int = 10, concept: int | None = None
) -> Dataset:
    """Draw ``rows`` rows from one of River's synthetic generators.

    Parameters
    ----------
    kind : {"agrawal", "sea", "hyperplane"}
        ``agrawal`` (9 features, ``car`` and ``zipcode`` categorical, sensitive attribute
        ``age_band`` derived from ``age``), ``sea`` (3 numeric features, label noise 0) or
        ``hyperplane`` (``features`` numeric features, 5% label noise).
    rows : int
        Number of rows, at least 50.
    seed : int
        Generator seed; the same seed gives the same rows.
    features : int
        Number of features of ``hyperplane`` (2 to 100); the other datasets ignore it.
    concept : int or None
        Agrawal's classification function (0 to 9; default 5). Switching it mid-stream is
        a concept drift: same features, another rule for the label.

    Returns
    -------
    Dataset

    Raises
    ------
    ConfigError
        Unknown ``kind`` or too few rows.
    """
    if kind not in DATASETS:
        raise ConfigError(
            f"unknown dataset {kind!r}; choose one of {', '.join(DATASETS)}",
            option="dataset",
            value=kind,
        )
    if rows < 50:
        raise ConfigError(f"--rows must be at least 50, got {rows}", option="rows", value=rows)
    gen: object
    if kind == "agrawal":
        function = AGRAWAL_FUNCTION if concept is None else concept
        if not 0 <= function <= 9:
            raise ConfigError(
                f"--concept must be between 0 and 9, got {function}",
                option="concept",
                value=function,
            )
        gen = synth.Agrawal(classification_function=function, seed=seed)
    elif kind == "sea":
        gen = synth.SEA(variant=0, seed=seed)
    else:
        if not 2 <= features <= 100:
            raise ConfigError(
                f"--features must be between 2 and 100, got {features}",
                option="features",
                value=features,
            )
        gen = synth.Hyperplane(seed=seed, n_features=features, noise_percentage=0.05)
    samples: list[tuple[dict[object, object], object]] = list(gen.take(rows))
    keys = list(samples[0][0])
    cat_keys = [k for k in keys if k in _AGRAWAL_CATEGORICAL] if kind == "agrawal" else []
    num_keys = [k for k in keys if k not in cat_keys]
    names = {k: (k if isinstance(k, str) else f"x{k}") for k in keys}
    numeric = np.array([[x[k] for k in num_keys] for x, _ in samples], dtype=np.float64)
    categorical = np.array([[str(x[k]) for k in cat_keys] for x, _ in samples], dtype=object)
    categorical = categorical.reshape(rows, len(cat_keys))
    y = np.array([int(bool(label)) for _, label in samples], dtype=np.int64)
    sensitive = AGE_BANDS if kind == "agrawal" else None
    groups = None
    if sensitive is not None:
        groups = assign_groups(sensitive, numeric[:, num_keys.index(sensitive.column)])
    ds = Dataset(
        source=kind,
        numeric_names=tuple(names[k] for k in num_keys),
        categorical_names=tuple(names[k] for k in cat_keys),
        numeric=as_float32_exact(numeric),
        categorical=categorical,
        y=y,
        classes=("0", "1"),
        target="label",
        sensitive=sensitive,
        groups=groups,
    )
    return check_dataset(ds)


def dataset_from_rows(
    card: ModelCard, rows: Sequence[Mapping[str, object]], labels: Sequence[int], source: str
) -> Dataset:
    """A dataset in ``card``'s feature schema from raw event rows and 0/1 labels.

    ``None`` is a missing value; the sensitive groups follow the card's spec.

    Raises
    ------
    DataError
        Fewer rows than labels, a feature absent from a row, or a label other than 0/1.
    """
    if len(rows) != len(labels):
        raise DataError(f"{len(rows)} rows but {len(labels)} labels", source=source)
    num_names = tuple(f.name for f in card.features if f.kind == "numeric")
    cat_names = tuple(f.name for f in card.features if f.kind == "categorical")
    try:
        numeric = np.array([[r[n] for n in num_names] for r in rows], dtype=np.float64)
        categorical = np.array(
            [["" if r[n] is None else str(r[n]) for n in cat_names] for r in rows], dtype=object
        )
    except KeyError as exc:
        raise DataError(f"a row lacks feature {exc}", source=source) from None
    y = np.asarray(labels, dtype=np.int64)
    if not np.isin(y, (0, 1)).all():
        raise DataError("labels must be 0 or 1", source=source)
    n = len(rows)
    numeric = numeric.reshape(n, len(num_names))
    categorical = categorical.reshape(n, len(cat_names))
    groups = None
    if card.sensitive is not None:
        spec = card.sensitive
        if spec.kind == "bands" and spec.column in num_names:
            groups = assign_groups(spec, numeric[:, num_names.index(spec.column)])
        else:
            raw = np.array([r.get(spec.column) for r in rows], dtype=object)
            groups = assign_groups(spec, raw)
    return Dataset(
        source=source,
        numeric_names=num_names,
        categorical_names=cat_names,
        numeric=as_float32_exact(numeric),
        categorical=categorical,
        y=y,
        classes=(card.classes[0], card.classes[1]),
        target=card.target,
        sensitive=card.sensitive,
        groups=groups,
    )


__all__ = [
    "AGE_BANDS",
    "DATASETS",
    "MISSING_CATEGORY",
    "Dataset",
    "DatasetKind",
    "as_float32_exact",
    "assign_groups",
    "check_dataset",
    "dataset_from_rows",
    "synthetic",
]
