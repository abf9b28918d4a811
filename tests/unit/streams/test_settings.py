"""Settings: env prefix, validation, and secrets that never show."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from streams.config.settings import Settings, env_name, explain, load_settings
from streams.config.topics import topic_plan
from streams.errors import ConfigError


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


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.batch_size = 3  # type: ignore[misc]


def test_json_settings_load_as_typed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from models.gate_config import GateConfig
    from monitoring.config import MonitorConfig

    monkeypatch.setenv("DRIFTLINE_MONITOR", '{"window": "500", "concept_detectors": ["ddm"]}')
    monkeypatch.setenv("DRIFTLINE_GATES", '{"metric": "f1", "max_dp_gap": null}')
    monkeypatch.setenv("DRIFTLINE_RETRAIN_POLICY", '{"min_interval_s": 60}')
    monkeypatch.setenv("DRIFTLINE_SEQUENTIAL", '{"alpha": 0.01}')
    s = load_settings()
    assert s.monitor == MonitorConfig(window=500, concept_detectors=("ddm",))
    assert s.gates == GateConfig(metric="f1", max_dp_gap=None)
    assert dict(s.retrain_policy) == {"min_interval_s": 60.0}
    assert dict(s.sequential) == {"alpha": 0.01}
    with pytest.raises(TypeError):  # read-only: a process cannot change what others read
        s.sequential["alpha"] = 0.5  # type: ignore[index]
    assert load_settings().masked()["monitor"]["window"] == 500


@pytest.mark.parametrize(
    ("env", "value", "said"),
    [
        ("DRIFTLINE_MONITOR", '{"window": 10}', "DRIFTLINE_MONITOR: window must be >= 50, got 10"),
        ("DRIFTLINE_MONITOR", '{"windw": 500}', "DRIFTLINE_MONITOR: windw: Extra inputs"),
        (
            "DRIFTLINE_MONITOR",
            '{"false_alarms_per_million": 0}',
            "DRIFTLINE_MONITOR: false_alarms_per_million must be > 0.0, got 0",
        ),
        ("DRIFTLINE_GATES", '{"metric": "auc"}', "DRIFTLINE_GATES: metric: Input should be 'f1'"),
        ("DRIFTLINE_RETRAIN_POLICY", '{"min_interval_s": "soon"}', "min_interval_s: Input should"),
        ("DRIFTLINE_SEQUENTIAL", '{"alpha": "x"}', "DRIFTLINE_SEQUENTIAL: alpha: Input should"),
        ("DRIFTLINE_SEQUENTIAL", "[1, 2]", "DRIFTLINE_SEQUENTIAL: expected a JSON object"),
        ("DRIFTLINE_GATES", "{nope", "DRIFTLINE_GATES is not valid JSON"),
        ("DRIFTLINE_BATCH_SIZE", "0", "DRIFTLINE_BATCH_SIZE: Input should be greater than"),
    ],
)
def test_a_bad_setting_stops_the_command_at_start_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: str,
    value: str,
    said: str,
) -> None:
    from streams.cli.main import main

    monkeypatch.setenv(env, value)
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("driftline: invalid setting ") and said in err, err
    assert err.count("\n") == 1


def test_topic_names_per_model_resolve_for_the_worker_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFTLINE_TOPIC_EVENTS", "{model}.events")
    monkeypatch.setenv("DRIFTLINE_TOPIC_LABELS", "labels.{model}")
    s = load_settings(model="credit")
    assert (s.topic_events, s.topic_labels, s.topic_alerts) == (
        "credit.events",
        "labels.credit",
        "drift-alerts",
    )
    # a worker of another model, derived from the first one's settings
    assert s.for_model("fraud").topic_events == "fraud.events"
    # without a model the names stay templates, and a plan of them is refused
    with pytest.raises(ConfigError, match=r"events, labels topics contain \{model\}"):
        topic_plan(load_settings(), brokers=1)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DRIFTLINE_TOPIC_ALERTS", "{model}.alerts", "shared by every model"),
        ("DRIFTLINE_TOPIC_MODEL_UPDATES", "updates-{model}", "shared by every model"),
        ("DRIFTLINE_TOPIC_EVENTS", "events/{model}", "not a Kafka topic name"),
        ("DRIFTLINE_TOPIC_EVENTS", "{tenant}.events", "not a Kafka topic name"),
    ],
)
def test_a_topic_name_that_cannot_be_is_refused_naming_its_variable(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{variable.removeprefix("DRIFTLINE_").lower(): value})
    message = explain(caught.value)
    assert message.startswith(variable) and expected in message, message


def test_a_model_name_that_makes_no_topic_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a Kafka topic name"):
        Settings(topic_events="{model}.events").for_model("a/b")


def test_a_bad_processing_guarantee_says_what_was_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFTLINE_PROCESSING_GUARANTEE", "exactly-once")
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert explain(caught.value) == (
        "DRIFTLINE_PROCESSING_GUARANTEE: Input should be 'at_least_once' or 'exactly_once'"
    )
    monkeypatch.setenv("DRIFTLINE_PROCESSING_GUARANTEE", "exactly_once")
    assert load_settings().processing_guarantee == "exactly_once"
