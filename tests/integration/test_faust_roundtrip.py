"""10,000 JSON events through a Faust agent on a real 4-partition Kafka topic."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import orjson

from streams.adapters.kafka_topics import create_topics
from tests.conftest import Endpoints
from tests.kit import collect, committed_all, produce

N_EVENTS = 10_000
N_KEYS = 64


def _events() -> Iterator[tuple[bytes, bytes]]:
    for i in range(N_EVENTS):
        key = f"entity-{i % N_KEYS}"
        yield key.encode(), orjson.dumps({"event_id": i, "key": key, "seq": i // N_KEYS})


def test_faust_agent_relays_each_event_once_in_partition_order(
    services: Endpoints, unique: str, tmp_path: Path
) -> None:
    source, sink = f"relay-src-{unique}", f"relay-dst-{unique}"
    asyncio.run(create_topics(services.kafka, [source, sink], partitions=4))
    env = {
        **os.environ,
        "RELAY_APP_ID": f"relay-{unique}",
        "RELAY_BOOTSTRAP": services.kafka,
        "RELAY_SOURCE": source,
        "RELAY_SINK": sink,
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("relay_app.py")), "worker", "-l", "warn"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        asyncio.run(produce(services.kafka, source, _events()))

        async def relayed_all() -> bool:  # committed after relaying: no event comes again
            return await committed_all(services.kafka, f"relay-{unique}", source)

        # every record of the sink once the relay committed its input: duplicates included
        received = asyncio.run(
            collect(
                services.kafka, sink, N_EVENTS, timeout_s=120, worker=worker, complete=relayed_all
            )
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
    assert worker.returncode is not None

    ids = [r["event_id"] for r in received]
    assert len(ids) == N_EVENTS, (tmp_path / "worker.log").read_text()[-2000:]
    assert sorted(ids) == list(range(N_EVENTS)), "every event exactly once"

    by_partition: dict[int, list[dict]] = defaultdict(list)
    for r in received:
        by_partition[r["_partition"]].append(r)
    assert len(by_partition) == 4, "keys spread over all four partitions"
    for partition, rows in by_partition.items():
        assert {r["src_partition"] for r in rows} == {partition}, "a key keeps its partition"
        offsets = [r["src_offset"] for r in rows]
        assert offsets == sorted(offsets), f"partition {partition} out of order"
        seq_by_key: dict[str, list[int]] = defaultdict(list)
        for r in rows:
            seq_by_key[r["key"]].append(r["seq"])
        assert all(s == sorted(s) for s in seq_by_key.values())
