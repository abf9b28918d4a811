"""Where a worker's scored batches go: its own monitors while it owns them, else the topic."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from models.scorer import OnnxScorer
from models.workflow import TrainResult
from streams.config.settings import load_settings
from streams.contracts.messages import card_event_model
from streams.monitors.agents import MonitorFeed
from streams.monitors.runtime import MonitorRuntime
from streams.scoring.batch import BatchResult, BatchScorer, ModelSet, RawRecord


async def _no_send(topic: str, payloads: list[bytes]) -> None:
    return None


def _batch(scorer: OnnxScorer, n: int, first: int = 0) -> BatchResult:
    records = [
        RawRecord(
            orjson.dumps({"event_id": f"e{i}", "features": {"x0": i, "x1": 1.0, "x2": 2.0}}),
            b"k",
            "events",
            0,
            i,
            1,
        )
        for i in range(first, first + n)
    ]
    return BatchScorer("sea").process(records, ModelSet(scorer, card_event_model(scorer.card)))


def test_batches_stay_in_process_only_while_the_monitors_are_owned(
    sea_result: TrainResult, tmp_path: Path
) -> None:
    scorer = OnnxScorer(sea_result.card, sea_result.payload)
    runtime = MonitorRuntime(
        load_settings(data_dir=tmp_path), "sea", scorer.card, "redis://127.0.0.1:1/0", _no_send
    )
    feed = MonitorFeed("sea", runtime, runtime.reducer, max_events=20)

    # not (yet) the owner: every event goes to the monitor-input topic, keyed by the model
    records = feed.route(_batch(scorer, 5))
    assert [k for k, _ in records] == [b"sea"] and feed.queue.empty()
    (sent,) = (orjson.loads(v) for _, v in records)
    assert sent["kind"] == "summary" and sent["parts"][0]["ids"] == [f"e{i}" for i in range(5)]
    assert sent["parts"][0]["summary"]["rows"] == 5

    runtime.owned = True  # what the assignment of the key's partition sets
    assert feed.route(_batch(scorer, 8, first=5)) == []
    assert feed.queue.qsize() == 1 and feed.queued_events == 8

    # the monitors fell max_events behind: the topic again, so scoring never waits on them
    assert feed.route(_batch(scorer, 12, first=13)) == []
    assert feed.queued_events == 20
    assert len(feed.route(_batch(scorer, 4, first=25))) == 1

    # handed over (a revocation): what follows must reach the next owner, through the topic
    runtime.release()
    assert runtime.owned is False
    assert len(feed.route(_batch(scorer, 3, first=29))) == 1
    assert feed.queue.qsize() == 2
    asyncio.run(runtime.redis.aclose())


def test_without_the_local_feed_the_owners_batches_take_the_topic_too(
    sea_result: TrainResult, tmp_path: Path
) -> None:
    scorer = OnnxScorer(sea_result.card, sea_result.payload)
    settings = load_settings(data_dir=tmp_path, monitor_local_feed=False)
    runtime = MonitorRuntime(settings, "sea", scorer.card, "redis://127.0.0.1:1/0", _no_send)
    feed = MonitorFeed("sea", runtime, runtime.reducer)
    runtime.owned = True
    records = feed.route(_batch(scorer, 6))
    assert [k for k, _ in records] == [b"sea"] and feed.queue.empty()
    assert orjson.loads(records[0][1])["parts"][0]["summary"]["rows"] == 6
    asyncio.run(runtime.redis.aclose())
