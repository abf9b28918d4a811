"""Settings: env prefix, validation, and secrets that never show."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from streams.config.settings import Settings, env_name, load_settings


def test_env_prefix_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("DRIFTLINE_TOPIC_PARTITIONS", "8")
    monkeypatch.setenv("DRIFTLINE_BROKER", "tansu")
    s = load_settings()
    assert s.kafka_bootstrap == "broker:9092"
    assert s.topic_partitions == 8
    assert s.broker == "tansu"
    assert env_name("redis_url") == "DRIFTLINE_REDIS_URL"


def test_overrides_win_and_none_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_BROKER", "tansu")
    assert load_settings(broker="kafka").broker == "kafka"
    assert load_settings(broker=None).broker == "tansu"


def test_invalid_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_BROKER", "rabbitmq")
    with pytest.raises(ValidationError):
        load_settings()


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_KAFKA_SASL_PASSWORD", "hunter2-kafka")
    monkeypatch.setenv("DRIFTLINE_REDIS_PASSWORD", "hunter2-redis")
    s = Settings()
    masked = s.masked()
    assert masked["kafka_sasl_password"] == "**********"
    assert "hunter2" not in json.dumps(masked)
    assert "hunter2" not in repr(s)
    assert s.redis_password is not None
    assert s.redis_password.get_secret_value() == "hunter2-redis"


def test_config_command_masks_secrets() -> None:
    env = {"DRIFTLINE_REDIS_PASSWORD": "s3cret-value", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "config", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    values = json.loads(out.stdout)
    assert values["redis_password"] == "**********"
    assert "s3cret-value" not in out.stdout + out.stderr
