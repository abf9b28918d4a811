"""The shadow test's first pairs: holdout rows labelled after the champion was registered."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from models.data import synthetic
from models.gates import dataset_rows
from models.registry import Registry
from models.scorer import OnnxScorer
from models.workflow import TrainOptions, train
from streams.control.holdout_pairs import unseen_pairs


def test_only_rows_labelled_after_the_champion_was_registered_are_paired(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    fitted = train(synthetic("sea", rows=600, seed=1), TrainOptions(name="sea", folds=3, seed=1))
    champion = registry.load(f"sea@{registry.register(fitted.payload, fitted.card).version}")
    candidate = train(synthetic("sea", rows=900, seed=2), TrainOptions(name="sea", folds=3))
    born = datetime.fromisoformat(champion.card.created_at).timestamp() * 1000
    live = synthetic("sea", rows=300, seed=3)
    rows = [
        {"f": f, "y": int(y), "t": born + (i - 99)}  # the first 100 labelled before it was
        for i, (f, y) in enumerate(zip(dataset_rows(live), live.y, strict=True))
    ]
    rows[150].pop("t")  # a row of a SQL window: when it was labelled is unknown

    cand, champ = unseen_pairs(
        (candidate.card, candidate.payload), (champion.card, champion.payload), rows
    )

    assert cand.shape == champ.shape == (199,)
    paired = [r for r in rows if r.get("t", 0) > born]
    truth = np.array([r["y"] for r in paired])
    assert 0.8 < champ.mean() <= 1.0 and 0.8 < cand.mean() <= 1.0
    served, _ = OnnxScorer(champion.card, champion.payload).predict_batch([r["f"] for r in paired])
    assert np.array_equal(champ, np.asarray(served) == truth), "as the champion serves them"
