"""Shared fixtures: real local Kafka and Redis for integration and e2e tests.

The services are started through :class:`streams.services.LocalServices`, the same code path
as ``driftline services up``. With ``CI=true`` a service that cannot be reached fails the run;
elsewhere the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from streams.errors import ServiceError
from streams.services import LocalServices
from streams.settings import load_settings


@dataclass(frozen=True)
class Endpoints:
    """Where the test session's broker and Redis listen."""

    kafka: str
    redis: str


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def start_or_fail(local: LocalServices, what: str) -> None:
    """Start ``local``'s services; when they cannot start, fail in CI and skip elsewhere."""
    try:
        status = local.up()
        if not all(entry["healthy"] for entry in status.values()):
            raise ServiceError(what, f"unhealthy after start: {status}")
    except ServiceError as exc:
        local.down()
        if _in_ci():
            pytest.fail(f"CI needs a real {what}: {exc}", pytrace=False)
        pytest.skip(f"no {what} here: {exc}")


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """Start a real Kafka broker and Redis for the session (or use the configured ones)."""
    data_dir = tmp_path_factory.mktemp("services")
    local = LocalServices(load_settings(data_dir=data_dir, broker="kafka"))
    start_or_fail(local, "Kafka and Redis")
    try:
        yield Endpoints(kafka=local.kafka_bootstrap(), redis=local.redis_url())
    finally:
        local.down()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for this test's topics and consumer group."""
    return uuid.uuid4().hex[:10]
