"""10,000 JSON events through a Faust agent on a real 4-partition Kafka topic."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.kafka_admin import create_topics
from tests.conftest import Endpoints

N_EVENTS = 10_000
N_KEYS = 64


async def _produce(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for i in range(N_EVENTS):
            key = f"entity-{i % N_KEYS}"
            body = {"event_id": i, "key": key, "seq": i // N_KEYS}
            await producer.send(topic, orjson.dumps(body), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _consume(
    bootstrap: str, topic: str, group: str, timeout_s: float, worker: subprocess.Popen[bytes]
) -> list[dict]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    received: list[dict] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        # Read past N_EVENTS for a moment so that duplicates would be seen too.
        quiet_until = None
        while asyncio.get_running_loop().time() < deadline and worker.poll() is None:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                for msg in messages:
                    value = orjson.loads(msg.value)
                    value["dst_partition"] = tp.partition
                    received.append(value)
            if len(received) >= N_EVENTS:
                quiet_until = quiet_until or asyncio.get_running_loop().time() + 2.0
                if asyncio.get_running_loop().time() > quiet_until:
                    break
    finally:
        await consumer.stop()
    return received


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
        asyncio.run(_produce(services.kafka, source))
        received = asyncio.run(_consume(services.kafka, sink, f"check-{unique}", 120, worker))
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
        by_partition[r["dst_partition"]].append(r)
    assert len(by_partition) == 4, "keys spread over all four partitions"
    for partition, rows in by_partition.items():
        assert {r["src_partition"] for r in rows} == {partition}, "a key keeps its partition"
        offsets = [r["src_offset"] for r in rows]
        assert offsets == sorted(offsets), f"partition {partition} out of order"
        seq_by_key: dict[str, list[int]] = defaultdict(list)
        for r in rows:
            seq_by_key[r["key"]].append(r["seq"])
        assert all(s == sorted(s) for s in seq_by_key.values())
