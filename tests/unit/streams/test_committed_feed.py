"""Exactly once, the owner's monitors take a batch in process only once its transaction
committed; an aborted transaction's batches never reach them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from models.scorer import OnnxScorer
from models.workflow import TrainResult
from streams.config.settings import load_settings
from streams.monitors.agents import MonitorFeed
from streams.monitors.runtime import MonitorRuntime
from streams.worker.app import CommittedFeed
from tests.unit.streams.test_monitor_feed import _batch, _no_send


def test_the_owner_sees_a_batch_at_its_commit_and_never_an_aborted_one(
    sea_result: TrainResult, tmp_path: Path
) -> None:
    scorer = OnnxScorer(sea_result.card, sea_result.payload)
    runtime = MonitorRuntime(
        load_settings(data_dir=tmp_path), "sea", scorer.card, "redis://127.0.0.1:1/0", _no_send
    )
    runtime.owned = True
    feed = MonitorFeed("sea", runtime, runtime.reducer, max_events=4)
    held = CommittedFeed(feed)

    assert held.route(_batch(scorer, 4)) == []
    assert feed.queue.empty()  # not before the commit
    held.ended(committed=False)  # aborted: scored again, never seen twice
    assert feed.queue.empty()

    assert held.route(_batch(scorer, 4, first=4)) == []
    assert held.route(_batch(scorer, 8, first=8)) == []
    held.ended(committed=True)
    # the first fills the queue; the second goes to the topic with the next batch
    assert feed.queue.qsize() == 1 and feed.queued_events == 4
    runtime.owned = False  # handed over: the next batch goes to the topic, behind the carried one
    records = held.route(_batch(scorer, 2, first=16))
    ids = [orjson.loads(v)["parts"][0]["ids"] for _, v in records]
    assert ids == [[f"e{i}" for i in range(8, 16)], ["e16", "e17"]]
    asyncio.run(runtime.redis.aclose())


def test_records_carried_into_an_aborted_transaction_are_carried_again(
    sea_result: TrainResult, tmp_path: Path
) -> None:
    """A committed batch whose monitors were handed over rides in the next transaction; when
    that one aborts, the batch is not scored again (it committed), so its records must be
    sent again; what no batch takes goes out as leftovers (the loop's settle sends them)."""
    scorer = OnnxScorer(sea_result.card, sea_result.payload)
    runtime = MonitorRuntime(
        load_settings(data_dir=tmp_path), "sea", scorer.card, "redis://127.0.0.1:1/0", _no_send
    )
    runtime.owned = True
    held = CommittedFeed(MonitorFeed("sea", runtime, runtime.reducer))
    assert held.route(_batch(scorer, 3)) == []
    runtime.owned = False  # handed over before the commit
    held.ended(committed=True)
    assert held.leftovers() != []  # sent in the open transaction ...
    held.ended(committed=False)  # ... which aborted
    records = held.leftovers()
    ids = [orjson.loads(v)["parts"][0]["ids"] for _, v in records]
    assert ids == [["e0", "e1", "e2"]]
    held.ended(committed=True)
    assert held.leftovers() == []  # sent once it committed, never again
    asyncio.run(runtime.redis.aclose())
