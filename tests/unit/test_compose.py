"""docker-compose.yml is valid compose YAML and speaks the settings' language."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.settings import ENV_PREFIX, Settings, env_name

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_the_services_with_healthchecks() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "worker", "retrainer"} <= set(services)
    for name in ("kafka", "redis", "worker", "retrainer"):
        assert "test" in services[name]["healthcheck"], name
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "--appendonly" in services["redis"]["command"]
    for name in ("worker", "retrainer"):
        assert services[name]["command"][0] == "driftline"
        assert any(v.endswith(":/registry") for v in services[name]["volumes"])
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_env_vars_are_settings() -> None:
    known = {env_name(field) for field in Settings.model_fields}
    used: set[str] = set()
    for service in _compose()["services"].values():
        env = service.get("environment", {})
        used.update(k for k in env if k.startswith(ENV_PREFIX))
    assert used, "the driftline services are configured through DRIFTLINE_ variables"
    assert used <= known, f"unknown settings: {sorted(used - known)}"
    assert {"DRIFTLINE_KAFKA_BOOTSTRAP", "DRIFTLINE_REDIS_URL", "DRIFTLINE_REGISTRY"} <= used
