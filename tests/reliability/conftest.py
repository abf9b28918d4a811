"""Security fixtures: a Kafka broker with a SCRAM-SHA-256 listener and a password-protected
Redis, started through :class:`streams.local.services.LocalServices` like every other service.

The secrets are fresh random strings for each run, so that a test can search any output for
them. A service that cannot start ends the run with the reason (``tests/conftest.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.config.settings import Settings, env_name, load_settings
from streams.local.services import LocalServices
from tests.conftest import Endpoints, start_or_fail
from tests.kit import Background

KAFKA_USER = "driftline-test"
MECHANISM = "SCRAM-SHA-256"


@dataclass(frozen=True)
class SecureServices:
    """Where the secured broker and Redis listen, and the secrets that open them."""

    kafka: str
    redis: str
    kafka_password: str
    redis_password: str
    data_dir: Path

    def _values(self) -> dict[str, str]:
        return {
            "kafka_bootstrap": self.kafka,
            "redis_url": self.redis,
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": MECHANISM,
            "kafka_sasl_username": KAFKA_USER,
            "kafka_sasl_password": self.kafka_password,
            "redis_password": self.redis_password,
        }

    def env(self, **overrides: str) -> dict[str, str]:
        """The ``DRIFTLINE_*`` variables of a process that uses these services."""
        return {env_name(k): v for k, v in {**self._values(), **overrides}.items()}

    def settings(self, **overrides: Any) -> Settings:
        """Client settings for these services (the right secrets unless overridden)."""
        return Settings(**{**self._values(), **overrides})

    def secrets(self) -> tuple[str, str]:
        return self.kafka_password, self.redis_password


def secret(kind: str) -> str:
    """A password that no log line could contain by chance (and SCRAM-storage safe)."""
    return f"{kind}-{secrets.token_hex(12)}"


@pytest.fixture(scope="module")
def secure_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServices]:
    """A broker whose SASL_PLAINTEXT listener knows one SCRAM user, and a Redis with a password."""
    data_dir = tmp_path_factory.mktemp("secure-services")
    kafka_password, redis_password = secret("kafka"), secret("redis")
    settings = load_settings(
        data_dir=data_dir,
        broker="kafka",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism=MECHANISM,
        kafka_sasl_username=KAFKA_USER,
        kafka_sasl_password=kafka_password,
        redis_password=redis_password,
    )
    # The environment must not point this fixture at someone else's services.
    settings = settings.model_copy(update={"kafka_bootstrap": None, "redis_url": None})
    local = LocalServices(settings)
    start_or_fail(local, "SASL Kafka and password Redis")
    try:
        yield SecureServices(
            kafka=local.kafka_bootstrap(),
            redis=local.redis_url(),
            kafka_password=kafka_password,
            redis_password=redis_password,
            data_dir=data_dir,
        )
    finally:
        local.down()


# -- fault-injection scenarios (test_faults.py, test_load.py) --------------------------------
# What each scenario measured goes to one JSON file under the session's tmp dir, and the
# terminal summary prints it: `pytest tests/reliability` shows the figures without `-s`.
REPORT_FILE = "reliability-report.json"
_REPORT_PATH = pytest.StashKey[Path]()


class ScenarioReport:
    """Collects one line of figures per scenario: sent, lost, duplicated, recovery, runtime."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[dict[str, Any]]:
        return orjson.loads(self.path.read_bytes()) if self.path.exists() else []

    def record(self, scenario: str, **figures: Any) -> str:
        """Keep ``figures`` for the summary; print and return their one-line form."""
        entries = [e for e in self.entries() if e["scenario"] != scenario]
        entries.append({"scenario": scenario, **figures})
        self.path.write_bytes(orjson.dumps(entries, option=orjson.OPT_INDENT_2))
        line = summary_line({"scenario": scenario, **figures})
        print(f"\n{line}")
        return line


def summary_line(entry: dict[str, Any]) -> str:
    """``scenario: key=value ...`` with floats rounded."""
    parts = [
        f"{k}={round(v, 2) if isinstance(v, float) else v}"
        for k, v in entry.items()
        if k != "scenario"
    ]
    return f"{entry['scenario']}: " + " ".join(parts)


@pytest.fixture(scope="session")
def scenario_report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ScenarioReport:
    """Where a scenario records what it measured (printed at the end of the session)."""
    path = tmp_path_factory.getbasetemp() / REPORT_FILE
    request.config.stash[_REPORT_PATH] = path
    return ScenarioReport(path)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    path = config.stash.get(_REPORT_PATH, None)
    if path is None or not path.exists():
        return
    terminalreporter.section("reliability scenarios: what was measured")
    for entry in orjson.loads(path.read_bytes()):
        terminalreporter.write_line(summary_line(entry))
    terminalreporter.write_line(f"(JSON: {path})")


@dataclass
class OwnServices:
    """A broker or a Redis of one test's own, that the test may stop and start again."""

    kafka: str
    redis: str
    local: LocalServices

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(kafka=self.kafka, redis=self.redis)


def own_services(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    kafka: str | None,
    redis: str | None,
    brokers: int = 1,
    redis_cluster: bool = False,
) -> Iterator[OwnServices]:
    """Start what is not given (a broker of ``brokers`` nodes, a Redis or a Redis Cluster) in
    a folder of its own; stop it all when the caller is done."""
    data_dir = tmp_path_factory.mktemp(f"own-{name}")
    settings = load_settings(
        data_dir=data_dir, broker="kafka", kafka_brokers=brokers, redis_cluster=redis_cluster
    )
    settings = settings.model_copy(update={"kafka_bootstrap": kafka, "redis_url": redis})
    local = LocalServices(settings)  # starts only what is not given
    start_or_fail(local, f"{name} of the test's own")
    try:
        yield OwnServices(kafka=local.kafka_bootstrap(), redis=local.redis_url(), local=local)
    finally:
        local.down()


@pytest.fixture(scope="session")
def kafka_cluster(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServices]:
    """A KRaft cluster of three brokers (the session's Redis), shared by the cluster
    scenarios: each one leaves every broker running and every replica in sync."""
    yield from own_services(tmp_path_factory, "cluster", None, services.redis, brokers=3)


@pytest.fixture
def own_kafka(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServices]:
    """A Kafka broker of this test's own (the session's Redis): the test may restart it."""
    yield from own_services(tmp_path_factory, "kafka", None, services.redis)


@pytest.fixture
def own_redis(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServices]:
    """A Redis of this test's own (the session's broker): the test may stop and restart it."""
    yield from own_services(tmp_path_factory, "redis", services.kafka, None)


@pytest.fixture
def bg() -> Iterator[Background]:
    """An event loop in a thread for the test's producers and collectors."""
    loop = Background()
    try:
        yield loop
    finally:
        loop.close()
