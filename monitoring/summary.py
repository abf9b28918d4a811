"""Mergeable summaries of scored batches: what the monitors need, without the raw values.

A worker reduces each scored batch, per (version, variant), to a :class:`BatchSummary`;
the owner of the model's monitors feeds the summaries to
:meth:`~monitoring.model_monitor.ModelMonitor.observe_summary`, wherever they were made. A
summary holds, for the features and for the score (:class:`FeatureCounts`):

- per numeric column the window's counts (:class:`NumericCounts`):
  missing and out-of-range counts, sum and sum of squares of the present values, the KS
  histogram on the reference's bins (``ks_bins`` levels of the card's CDF) and the PSI bin
  counts of the columns whose PSI bins are not read off that histogram;
- per numeric column the per-block inputs of the location and scale CUSUMs (sums and counts
  of the normal scores and of their squares, :meth:`~monitoring.sequential_drift.
  NumericDrift.summarise`);
- per categorical feature the count of each value (``""``: missing), from which both the
  window's PSI and quality rates and the category CUSUMs are read;
- of the features, when the card has a PCA and the detectors are CUSUMs, the multivariate
  detector's sums (:class:`~monitoring.multivariate.ReconstructionBlock`);
- the expected confusion sums of the scores (:class:`~monitoring.estimation.
  ExpectedConfusion`, on the card's calibrator and thresholds), from which the performance
  is estimated before any label (:mod:`monitoring.scope_estimates`).

Every part is a sum over events, so summaries of the same (version, variant) merge by
addition (:meth:`BatchSummary.merge`): the summary of two batches merged is the summary of
the two batches end to end, exactly for every count, up to float rounding for the sums.
The monitors close a window or a detector block after the summary that reaches it, so
windows hold at least ``window`` events (one summary more at most) and results do not depend
on how many workers summarised the stream, beyond that.

The JSON form (:meth:`BatchSummary.to_json`) is lists of numbers, for ``orjson``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitoring.errors import BatchError
from monitoring.estimation import ExpectedConfusion
from monitoring.pca_summary import ReconstructionBlock


@dataclass
class NumericCounts:
    """What a window keeps of a block of rows of numeric columns: mergeable by addition.

    Per column: missing values, present values outside the training range, the sum and the
    sum of squares of the present values, the KS histogram (``ks``, ``(columns, ks_bins)``)
    and the PSI bin counts of the columns whose PSI bins are not read off the KS histogram
    (``psi``). The counts of two blocks added are those of the two blocks together.
    """

    rows: int
    missing: NDArray[np.int64]
    out_of_range: NDArray[np.int64]
    sums: NDArray[np.float64]
    squares: NDArray[np.float64]
    ks: NDArray[np.int64]
    psi: NDArray[np.int64]

    @property
    def present(self) -> NDArray[np.int64]:
        """Present values per column."""
        return self.rows - self.missing

    def merge(self, other: NumericCounts) -> NumericCounts:
        """The counts of both blocks."""
        return NumericCounts(
            self.rows + other.rows,
            self.missing + other.missing,
            self.out_of_range + other.out_of_range,
            self.sums + other.sums,
            self.squares + other.squares,
            self.ks + other.ks,
            self.psi + other.psi,
        )


@dataclass
class FeatureCounts:
    """The monitors' sums of a block of rows of some columns (features, or the score).

    Parameters
    ----------
    numeric : NumericCounts
        The windows' counts of the numeric columns.
    normal : ndarray of float, shape (4, numeric columns)
        The CUSUMs' per-block inputs: sums and counts of the normal scores and their squares.
    categorical : list of Counter
        Per categorical column, the count of each value (``""``: missing).
    reconstruction : ReconstructionBlock or None
        The multivariate detector's sums of the rows (features only, with a PCA in the card).
    """

    numeric: NumericCounts
    normal: NDArray[np.float64]
    categorical: list[Counter[str]]
    reconstruction: ReconstructionBlock | None = None

    @property
    def rows(self) -> int:
        """Rows counted."""
        return self.numeric.rows

    def merge(self, other: FeatureCounts) -> FeatureCounts:
        """The sums of both blocks."""
        return FeatureCounts(
            self.numeric.merge(other.numeric),
            self.normal + other.normal,
            [a + b for a, b in zip(self.categorical, other.categorical, strict=True)],
            _merged(self.reconstruction, other.reconstruction),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-able form: every count in one flat list of ints, every sum in one of floats
        (``shape``: columns, KS bins, PSI bins), so that decoding makes two arrays."""
        num = self.numeric
        ints = np.concatenate(
            [num.missing, num.out_of_range, num.ks.ravel(), num.psi.ravel()]
        ).tolist()
        floats = np.concatenate([num.sums, num.squares, self.normal.ravel()]).tolist()
        doc: dict[str, Any] = {
            "rows": num.rows,
            "shape": [num.missing.size, num.ks.shape[1], num.psi.shape[1]],
            "ints": ints,
            "floats": floats,
            "cat": [dict(c) for c in self.categorical],
        }
        if self.reconstruction is not None:
            doc["pca"] = self.reconstruction.to_json()
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FeatureCounts:
        """Inverse of :meth:`to_json`."""
        f, kb, pb = (int(v) for v in doc["shape"])
        ints = np.asarray(doc["ints"], dtype=np.int64)
        floats = np.asarray(doc["floats"], dtype=np.float64)
        ks_end = 2 * f + f * kb
        numeric = NumericCounts(
            int(doc["rows"]),
            ints[:f],
            ints[f : 2 * f],
            floats[:f],
            floats[f : 2 * f],
            ints[2 * f : ks_end].reshape(f, kb),
            ints[ks_end : ks_end + f * pb].reshape(f, pb),
        )
        normal = floats[2 * f : 6 * f].reshape(4, f)
        cats = [Counter({str(k): int(v) for k, v in c.items()}) for c in doc["cat"]]
        pca = doc.get("pca")  # absent without a PCA, and from workers older than it
        return cls(
            numeric, normal, cats, None if pca is None else ReconstructionBlock.from_json(pca)
        )


def _merged(
    a: ReconstructionBlock | None, b: ReconstructionBlock | None
) -> ReconstructionBlock | None:
    # A summary without the block (a worker that predates the detector) adds nothing to it.
    if a is None or b is None:
        return a or b
    return a.merge(b)


@dataclass
class BatchSummary:
    """What the monitors keep of the events one (version, variant) scored: mergeable.

    Parameters
    ----------
    version, variant : str
        Which model answered.
    ref : str
        The version of the card whose reference bins the counts are on.
    rows : int
        Events.
    ungrouped : int
        Events whose sensitive group was unknown (0 when the card has no sensitive spec).
    features, score : FeatureCounts
        The features' and the positive-class score's counts.
    expected : ExpectedConfusion or None
        The expected confusion sums of the scores (None from a worker that made none).

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.workflow import TrainOptions, train
    >>> from monitoring.summariser import Summariser
    >>> res = train(synthetic("sea", rows=600, seed=1), TrainOptions(name="s", folds=2))
    >>> live = synthetic("sea", rows=512, seed=2)
    >>> p = res.pipeline.predict_proba(live.matrix())[:, 1]
    >>> num = {n: live.numeric[:, j] for j, n in enumerate(live.numeric_names)}
    >>> make = Summariser(res.card).summarise
    >>> whole = make(num, {}, p, res.card.version, "champion")
    >>> half = [{n: c[s : s + 256] for n, c in num.items()} for s in (0, 256)]
    >>> a, b = (make(h, {}, p[s : s + 256], res.card.version, "champion")
    ...         for h, s in zip(half, (0, 256)))
    >>> merged = a.merge(b)
    >>> merged.rows, (merged.features.numeric.ks == whole.features.numeric.ks).all()
    (512, np.True_)
    >>> BatchSummary.from_json(merged.to_json()).rows
    512
    """

    version: str
    variant: str
    ref: str
    rows: int
    ungrouped: int
    features: FeatureCounts
    score: FeatureCounts
    expected: ExpectedConfusion | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """``(version, variant, ref)``: summaries merge only within one key."""
        return self.version, self.variant, self.ref

    def merge(self, other: BatchSummary) -> BatchSummary:
        """The summary of both batches.

        Raises
        ------
        BatchError
            The two are of another version, variant or reference card.
        """
        if self.key != other.key:
            raise BatchError(f"cannot merge a summary of {other.key} into one of {self.key}")
        return BatchSummary(
            self.version,
            self.variant,
            self.ref,
            self.rows + other.rows,
            self.ungrouped + other.ungrouped,
            self.features.merge(other.features),
            self.score.merge(other.score),
            _merged_expected(self.expected, other.expected),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (lists of numbers; ``orjson.dumps`` takes it as it is)."""
        return {
            "version": self.version,
            "variant": self.variant,
            "ref": self.ref,
            "rows": self.rows,
            "ungrouped": self.ungrouped,
            "features": self.features.to_json(),
            "score": self.score.to_json(),
            "expected": None if self.expected is None else self.expected.to_json(),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BatchSummary:
        """Inverse of :meth:`to_json`."""
        return cls(
            str(doc["version"]),
            str(doc["variant"]),
            str(doc["ref"]),
            int(doc["rows"]),
            int(doc["ungrouped"]),
            FeatureCounts.from_json(doc["features"]),
            FeatureCounts.from_json(doc["score"]),
            None if doc.get("expected") is None else ExpectedConfusion.from_json(doc["expected"]),
        )


def _merged_expected(
    a: ExpectedConfusion | None, b: ExpectedConfusion | None
) -> ExpectedConfusion | None:
    # A worker that sent none leaves its events out of the estimate, not the others' blocks.
    if a is None or b is None:
        return a if b is None else b
    return a.merge(b)


def merge_summaries(summaries: Sequence[BatchSummary]) -> list[BatchSummary]:
    """One summary per (version, variant, ref), in the order each first appears."""
    merged: dict[tuple[str, str, str], BatchSummary] = {}
    for s in summaries:
        have = merged.get(s.key)
        merged[s.key] = s if have is None else have.merge(s)
    return list(merged.values())


__all__ = ["BatchSummary", "FeatureCounts", "NumericCounts", "merge_summaries"]
