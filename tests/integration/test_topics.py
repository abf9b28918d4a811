"""Topics on a real broker: created as planned, and an existing weaker one never used silently."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.adapters.kafka_topics import Found, inspect_topics
from tests.kit import Deployment, Endpoints

HOUR_MS = 3_600_000


async def _admin(kafka: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    return admin


async def _precreate(kafka: str, topic: str, partitions: int, configs: dict[str, str]) -> None:
    admin = await _admin(kafka)
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()


async def _found(kafka: str, topics: list[str]) -> dict[str, Found]:
    admin = await _admin(kafka)
    try:
        return await inspect_topics(admin, topics)
    finally:
        await admin.close()


def test_a_weaker_topic_is_reported_and_refused_and_the_rest_created_as_planned(
    services: Endpoints, unique: str, tmp_path: Path
) -> None:
    dep = Deployment(services, unique, tmp_path)
    events = dep.topics["events"]
    asyncio.run(_precreate(services.kafka, events, 2, {"retention.ms": str(HOUR_MS)}))

    check = dep.cli("topics", "check", "--json")
    assert check.returncode == 1, check.stderr
    rows = {r["topic"]: r for r in orjson.loads(check.stdout)["topics"]}
    assert rows[events]["differences"] == [
        f"{events}: partitions is 2, planned 4 (weaker)",
        f"{events}: retention.ms is {HOUR_MS}, planned {168 * HOUR_MS} (weaker)",
    ]
    assert all(r["missing"] for name, r in rows.items() if name != events)

    worker = dep.cli("worker", timeout_s=120)
    assert worker.returncode == 2, worker.stderr
    assert "existing topics are weaker than planned" in worker.stderr
    assert f"{events}: partitions is 2, planned 4 (weaker)" in worker.stderr
    assert "driftline topics check" in worker.stderr

    # The worker created every other topic before it refused, each as planned.
    others = [dep.topics[k] for k in ("predictions", "updates", "alerts", "dlq")]
    found = asyncio.run(_found(services.kafka, others))
    assert {f.partitions for f in found.values()} == {4}
    assert {f.replication_factor for f in found.values()} == {1}  # min(3, one broker)
    assert found[dep.topics["updates"]].configs["cleanup.policy"] == "compact"
    assert found[dep.topics["alerts"]].configs["retention.ms"] == str(720 * HOUR_MS)
    assert found[dep.topics["dlq"]].configs["min.insync.replicas"] == "1"
    again = dep.cli("topics", "check")
    assert again.returncode == 1
    assert f"{dep.topics['predictions']:<24} 4 partitions, 1 replicas" in again.stdout


def test_a_topic_that_is_only_stronger_is_used_and_said(
    services: Endpoints, unique: str, tmp_path: Path
) -> None:
    dep = Deployment(services, unique, tmp_path)
    events = dep.topics["events"]
    forever = {"retention.ms": "-1"}
    asyncio.run(_precreate(services.kafka, events, 6, forever))
    check = dep.cli("topics", "check", "--create")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{events}: partitions is 6, planned 4 (differs)" in check.stdout
    assert f"{events}: retention.ms is -1, planned {168 * HOUR_MS} (differs)" in check.stdout
