"""Every producer Driftline builds waits for all in-sync replicas and is idempotent."""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import SecretStr

from streams.adapters.faust_app import DurableProducer, ReadCommittedConsumer, faust_app
from streams.adapters.kafka_admin import consumer_options, producer_options
from streams.config.settings import Settings

STREAMS = Path(__file__).resolve().parents[3] / "streams"


def test_producer_options_are_durable_and_keep_the_security() -> None:
    assert producer_options(None) == {
        "acks": "all",
        "enable_idempotence": True,
        "request_timeout_ms": 5000,  # a frozen broker is left after 5 s, not 40
    }
    sasl = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="u",
        kafka_sasl_password=SecretStr("p"),
    )
    opts = producer_options(sasl)
    assert (opts["acks"], opts["enable_idempotence"]) == ("all", True)
    assert opts["security_protocol"] == "SASL_PLAINTEXT" and opts["sasl_plain_username"] == "u"


def test_the_faust_apps_producer_is_durable(tmp_path: Path) -> None:
    app = faust_app(Settings(data_dir=tmp_path), "127.0.0.1:9", "durability-test")
    producer = app.producer
    assert isinstance(producer, DurableProducer)
    extra = producer._settings_extra()
    assert (extra["acks"], extra["enable_idempotence"]) == ("all", True)


PRODUCERS = ("AIOKafkaProducer", "PatientProducer")


def _producers_without_the_options(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in PRODUCERS:
            spread = [k.value for k in node.keywords if k.arg is None]
            named = any(
                isinstance(v, ast.Call) and getattr(v.func, "id", "") == "producer_options"
                for v in spread
            ) or any(isinstance(v, ast.Name) and v.id == "producer_options" for v in spread)
            if not named:
                found.append(f"{path.relative_to(STREAMS.parent)}:{node.lineno}")
    return found


def test_every_aiokafka_producer_takes_the_producer_options() -> None:
    files = sorted(STREAMS.rglob("*.py"))
    assert any("PatientProducer(" in f.read_text() for f in files)
    assert [hit for f in files for hit in _producers_without_the_options(f)] == []


def test_every_producer_waits_for_room_rather_than_failing_a_send() -> None:
    """A bare AIOKafkaProducer would drop a send after request_timeout_ms of a full batch."""
    bare = [
        f"{f.relative_to(STREAMS.parent)}"
        for f in sorted(STREAMS.rglob("*.py"))
        for node in ast.walk(ast.parse(f.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AIOKafkaProducer"
    ]
    assert bare == []


async def test_the_faust_apps_consumer_reads_committed(tmp_path: Path) -> None:
    app = faust_app(Settings(data_dir=tmp_path), "127.0.0.1:9", "isolation-test")
    consumer = app.consumer
    assert isinstance(consumer, ReadCommittedConsumer)
    client = consumer._thread._create_worker_consumer(app.transport)  # built, not started
    assert client._isolation_level == "read_committed"
    await client.stop()


def _consumers_reading_uncommitted(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AIOKafkaConsumer":
            spread = [k.value for k in node.keywords if k.arg is None]
            options = any(
                isinstance(v, ast.Call) and getattr(v.func, "id", "") == "consumer_options"
                for v in spread
            )
            committed = any(
                k.arg == "isolation_level"
                and isinstance(k.value, ast.Constant)
                and k.value.value == "read_committed"
                for k in node.keywords
            )
            if not (options or committed):
                found.append(f"{path.relative_to(STREAMS.parent)}:{node.lineno}")
    return found


def test_every_consumer_reads_committed() -> None:
    """Exactly once, an aborted transaction's predictions must never be read."""
    assert consumer_options(None)["isolation_level"] == "read_committed"
    files = sorted(STREAMS.rglob("*.py"))
    assert [hit for f in files for hit in _consumers_reading_uncommitted(f)] == []
