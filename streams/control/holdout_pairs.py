"""The pairs a candidate's shadow test starts from: its holdout rows that neither model saw.

A candidate holds out the most recent labelled events of its window. Those labelled after the
champion was registered were seen by neither model (the champion could not have trained on
them, the candidate left them out), and both models score them exactly as they would serve
(ONNX Runtime, each card's thresholds): they are the pairs the shadow would have collected had
the candidate been serving then. The shadow test (:class:`~monitoring.sequential.PairedMSPRT`)
takes them first and goes on with live pairs, so a candidate much better than the champion is
promoted without waiting for hundreds of new labels. The test's interval is valid over any
sequence of pairs, so starting from these keeps its bound on false promotions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.card import ModelCard
from models.scorer import OnnxScorer

Outcomes = tuple[NDArray[np.bool_], NDArray[np.bool_]]


def unseen_pairs(
    candidate: tuple[ModelCard, bytes],
    champion: tuple[ModelCard, bytes],
    holdout: list[dict[str, Any]],
) -> Outcomes:
    """(candidate correct, champion correct) on the ``holdout`` window rows labelled after the
    champion's registration (rows with their window time ``t``, in ms; rows without one, from
    a SQL window, are left out)."""
    born = datetime.fromisoformat(champion[0].created_at).timestamp() * 1000
    rows = [r for r in holdout if r.get("t", 0.0) > born]
    if not rows:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    features = [r["f"] for r in rows]
    truth = np.array([r["y"] for r in rows], dtype=np.int64)
    outcomes = []
    for card, payload in (candidate, champion):
        labels, _ = OnnxScorer(card, payload).predict_batch(features)
        outcomes.append(np.asarray(labels, dtype=np.int64) == truth)
    return outcomes[0], outcomes[1]


__all__ = ["Outcomes", "unseen_pairs"]
