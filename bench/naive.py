"""Baseline *naive*: the Faust agent one writes first, and what it costs.

One event at a time: parse it, ask scikit-learn's ``predict_proba`` about that one row, and
await the send of its prediction before the next event. The model is the same kind of
pipeline as the benchmark's (trained here from the same synthetic stream, since the
registry holds ONNX only and nothing is ever unpickled).

Reads the same ``DRIFTLINE_*`` settings as ``driftline worker``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from operator import itemgetter

import faust
import numpy as np
import orjson

from bench.world import FEATURES
from models.data import synthetic
from models.training import build_pipeline
from streams.config.settings import load_settings
from streams.monitors.agents import faust_worker


def create() -> faust.App:
    settings = load_settings()
    ds = synthetic("hyperplane", rows=4000, seed=1, features=FEATURES)
    pipeline = build_pipeline("gbdt", FEATURES, 0, seed=1).fit(ds.numeric, ds.y)
    row = itemgetter(*ds.numeric_names)
    (settings.data_dir / "naive").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"bench-naive-{settings.topic_events}",
        broker=f"kafka://{settings.kafka_bootstrap}",
        datadir=str(settings.data_dir / "naive"),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.topic_partitions,
    )
    events = app.topic(settings.topic_events, key_type=bytes, value_type=bytes)
    predictions = app.topic(settings.topic_predictions, key_type=bytes, value_type=bytes)

    @app.agent(events)
    async def score(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            doc = orjson.loads(event.value)
            x = np.array([row(doc["features"])], dtype=np.float64)
            proba = pipeline.predict_proba(x)[0].tolist()
            out = {
                "event_id": doc["event_id"],
                "version": "naive",
                "label": int(proba[1] >= 0.5),
                "probabilities": proba,
                "scored_at": time.time(),
            }
            await predictions.send(key=event.key, value=orjson.dumps(out))
            yield None

    return app


if __name__ == "__main__":
    faust_worker(create(), "warning").execute_from_commandline()  # run as Driftline runs it
