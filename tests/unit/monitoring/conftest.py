"""Fixtures of the monitoring tests: trained cards and seeded live streams, no network."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from models.card import ModelCard, SensitiveSpec
from models.data import Dataset, synthetic
from models.workflow import TrainOptions, TrainResult, train

BATCH = 256


@dataclass
class Stream:
    """A live stream scored by the card's model: features, scores, predictions, labels."""

    card: ModelCard
    result: TrainResult
    live: Dataset

    def scored(
        self, numeric: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
        """Numeric matrix, positive-class scores and 0/1 predictions of the live rows."""
        x = self.live.numeric if numeric is None else numeric
        if self.live.categorical_names:
            matrix = np.empty((x.shape[0], x.shape[1] + len(self.live.categorical_names)), object)
            matrix[:, : x.shape[1]] = x
            matrix[:, x.shape[1] :] = self.live.categorical
        else:
            matrix = x
        p = self.result.pipeline.predict_proba(matrix)[:, 1].astype(np.float64)
        return x, p, (p > 0.5).astype(np.int64)

    def batches(
        self, x: NDArray[np.float64], cats: NDArray[np.object_] | None = None, size: int = BATCH
    ) -> Iterator[tuple[int, dict[str, NDArray[np.float64]], dict[str, NDArray[np.object_]]]]:
        """``(start, numeric, categorical)`` per micro-batch."""
        c = self.live.categorical if cats is None else cats
        for s in range(0, x.shape[0], size):
            num = {n: x[s : s + size, j] for j, n in enumerate(self.live.numeric_names)}
            cat = {n: c[s : s + size, j] for j, n in enumerate(self.live.categorical_names)}
            yield s, num, cat


def _stream(ds: Dataset, train_rows: int, name: str) -> Stream:
    idx = np.arange(len(ds))
    result = train(ds.subset(idx[:train_rows]), TrainOptions(name=name, folds=3))
    return Stream(card=result.card, result=result, live=ds.subset(idx[train_rows:]))


@pytest.fixture(scope="session")
def hyperplane() -> Stream:
    """A 20-feature hyperplane model trained on 5,000 rows; 40,000 live rows follow."""
    return _stream(synthetic("hyperplane", rows=45_000, seed=1, features=20), 5_000, "hp")


@pytest.fixture(scope="session")
def agrawal_stream() -> Stream:
    """Agrawal (numeric and categorical features, age bands): 4,000 training, 16,000 live."""
    return _stream(synthetic("agrawal", rows=20_000, seed=3), 4_000, "agr")


@pytest.fixture(scope="session")
def grouped_card(hyperplane: Stream) -> ModelCard:
    """The hyperplane card with a sensitive column ``grp`` (groups ``a``, ``b``)."""
    spec = SensitiveSpec(name="grp", column="grp", kind="column", groups=["a", "b"])
    return hyperplane.card.model_copy(update={"sensitive": spec})
