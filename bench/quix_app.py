"""Peer contender: the Quix Streams application a Python user writes to score events.

Quix Streams (confluent-kafka underneath) as its documentation shows it: a streaming
dataframe over the events topic, one ``apply`` per event that scores it with onnxruntime,
and ``to_topic`` for the predictions, at its defaults and at least once. The prediction is
the same document the floor writes, and keeps its event's key, as every contender's does.

This file runs in the peers' environment (``bench/peers.py``) and imports nothing of
Driftline: the bench passes the topics in the same ``DRIFTLINE_*`` variables as to the other
contenders and the model as the registry's ONNX file and a description of its interface
(``BENCH_PEER_MODEL``, written by ``bench.world.World.peer_model``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from quixstreams import Application


def main() -> None:
    spec = json.loads(Path(os.environ["BENCH_PEER_MODEL"]).read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(spec["onnx"], options, providers=["CPUExecutionProvider"])
    names, feed_name = spec["features"], spec["input"]
    output, version = [spec["output"]], spec["version"]

    def score(event: dict[str, Any]) -> dict[str, Any]:
        features = event["features"]
        x = np.array([[features[n] for n in names]], dtype=np.float32)
        proba = session.run(output, {feed_name: x})[0][0].tolist()
        return {
            "event_id": event["event_id"],
            "version": version,
            "label": int(proba[1] >= 0.5),
            "probabilities": proba,
            "scored_at": time.time(),
        }

    events = os.environ["DRIFTLINE_TOPIC_EVENTS"]
    app = Application(
        broker_address=os.environ["DRIFTLINE_KAFKA_BOOTSTRAP"],
        consumer_group=f"bench-quix-{events}",
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
    )
    sdf = app.dataframe(app.topic(events, value_deserializer="json"))
    sdf = sdf.apply(score)
    sdf.to_topic(app.topic(os.environ["DRIFTLINE_TOPIC_PREDICTIONS"], value_serializer="json"))
    app.run()


if __name__ == "__main__":
    main()
