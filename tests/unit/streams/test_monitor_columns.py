"""The monitors in the worker read the numeric features as the scorer read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from models.scorer import OnnxScorer
from models.workflow import TrainResult
from streams.config.settings import load_settings
from streams.contracts.messages import card_event_model
from streams.monitors.runtime import MonitorRuntime
from streams.scoring.batch import BatchScorer, ModelSet, RawRecord, Scored


async def _no_send(topic: str, payloads: list[bytes]) -> None:
    return None


def test_the_scorers_columns_are_what_the_features_would_give(
    sea_result: TrainResult, tmp_path: Path
) -> None:
    scorer = OnnxScorer(sea_result.card, sea_result.payload)
    features = [{"x0": 1.0 + i, "x1": None if i % 3 == 0 else 2.0 * i, "x2": i} for i in range(9)]
    records = [
        RawRecord(orjson.dumps({"event_id": f"e{i}", "features": f}), b"k", "events", 0, i, 1)
        for i, f in enumerate(features)
    ]
    models = ModelSet(scorer, card_event_model(scorer.card))
    (part,) = BatchScorer("sea").process(records, models).scored
    assert part.numeric is not None, "the ONNX scorer gives the columns it was fed"
    runtime = MonitorRuntime(
        load_settings(data_dir=tmp_path), "sea", scorer.card, "redis://127.0.0.1:1/0", _no_send
    )
    given, _ = runtime.feature_columns(part)
    read = Scored(
        part.variant, part.version, part.event_ids, part.features, part.labels, part.scores
    )  # as from the monitor-input topic: features only
    from_features, _ = runtime.feature_columns(read)
    assert list(given) == list(from_features) == ["x0", "x1", "x2"]
    for name in given:
        assert np.array_equal(given[name], from_features[name], equal_nan=True), name
    assert np.isnan(given["x1"][0]) and given["x2"][4] == 4.0
    # Columns that lack a monitored feature (another version's schema) are not used.
    partial = Scored(
        part.variant,
        part.version,
        part.event_ids,
        part.features,
        part.labels,
        part.scores,
        {"x0": np.zeros(9)},
    )
    fallback, _ = runtime.feature_columns(partial)
    assert fallback["x0"].tolist() == [1.0 + i for i in range(9)]
