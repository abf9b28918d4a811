"""Security against real services: SCRAM on Kafka, AUTH and TLS on Redis, secrets kept out of
every output, and models that come only from the registry with a matching sha256.

Kafka and Redis here are a real Apache Kafka broker with a SASL_PLAINTEXT (SCRAM-SHA-256)
listener and a redis-server with ``requirepass`` (see ``conftest.py``).
"""

from __future__ import annotations

import ast
import asyncio
import os
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
import trustme
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from models.errors import IntegrityError
from models.registry import Registry
from streams.adapters.kafka_admin import client_options, diagnose
from streams.adapters.redis_client import async_redis, sync_redis
from streams.config.settings import Settings
from streams.contracts import names
from streams.local.services import free_port, redis_healthy
from streams.local.toolchain import find_redis_server
from streams.worker.app import WorkerRuntime
from tests.conftest import Endpoints
from tests.kit import Background, Deployment, agrawal_events
from tests.reliability.conftest import KAFKA_USER, SecureServices, secret

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 300


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def _assert_no_secret(text: str, *secrets: str) -> None:
    for value in secrets:
        assert value not in text, "a secret reached the output"


# -- (1) a real scoring worker, through the SASL listener and a password-protected Redis ------
@dataclass(frozen=True)
class ScoredRun:
    deployment: Deployment
    events: list[dict[str, object]]
    predictions: list[dict[str, object]]
    monitor_state: bytes | None
    log: str


@pytest.fixture(scope="module")
def scored_run(
    secure_services: SecureServices, tmp_path_factory: pytest.TempPathFactory
) -> ScoredRun:
    """Run ``driftline worker`` with SCRAM and Redis AUTH settings: events in, predictions out."""
    svc = secure_services
    settings = svc.settings()
    dep = Deployment.up(
        Endpoints(kafka=svc.kafka, redis=svc.redis),
        "sec",
        tmp_path_factory.mktemp("scored"),
        champion="logreg",
        settings=settings,
    )
    # DEBUG: the chattiest the worker and its clients get, so the log check below is strict.
    dep.env.update(svc.env(), DRIFTLINE_LOG_LEVEL="DEBUG", DRIFTLINE_SNAPSHOT_INTERVAL_S="0.5")
    events: list[dict[str, object]] = list(agrawal_events(EVENTS, prefix="sec", entities=50))
    state_key = names.state_key(dep.model)
    client = sync_redis(svc.redis, settings)
    state = None
    with dep.worker() as worker:
        asyncio.run(dep.produce("events", events))
        preds = asyncio.run(dep.collect("predictions", EVENTS, timeout_s=150, worker=worker))
        deadline = time.monotonic() + 30
        while state is None and time.monotonic() < deadline and worker.poll() is None:
            state = client.get(state_key)
            time.sleep(0.5)
    client.close()
    log = (dep.root / "worker.log").read_text(errors="replace")
    return ScoredRun(dep, events, preds, state, log)


def test_worker_scores_through_scram_and_redis_auth(scored_run: ScoredRun) -> None:
    run = scored_run
    assert len(run.predictions) == EVENTS, run.log[-4000:]
    assert {p["event_id"] for p in run.predictions} == {e["event_id"] for e in run.events}
    assert {p["variant"] for p in run.predictions} == {"champion"}
    # The monitors inside the worker reached Redis with the password: their snapshot is there.
    assert run.monitor_state is not None, run.log[-4000:]


# -- (2) a wrong Kafka password is refused, clearly, without echoing any password ------------
def test_wrong_kafka_password_is_refused_with_a_clear_error(
    secure_services: SecureServices, tmp_path: Path
) -> None:
    svc = secure_services
    wrong = secret("wrong")
    bad = svc.settings(kafka_sasl_password=wrong)

    async def start(settings: Settings) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=svc.kafka, request_timeout_ms=5000, **client_options(settings)
        )
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(start(bad))
    # Neither can a client that does not authenticate at all use the SASL listener.
    with pytest.raises(KafkaConnectionError):
        asyncio.run(start(svc.settings(kafka_security_protocol="PLAINTEXT")))
    asyncio.run(start(svc.settings()))  # the right password is let in

    reason = asyncio.run(diagnose(svc.kafka, bad))
    assert f"authentication failed as user {KAFKA_USER!r} (SCRAM-SHA-256)" in reason
    assert "DRIFTLINE_KAFKA_SASL_PASSWORD" in reason
    _assert_no_secret(reason, wrong, svc.kafka_password)

    # What an operator sees: the worker stops at once with that reason, and no password.
    env = svc.env(kafka_sasl_password=wrong)
    env.update(
        DRIFTLINE_DATA_DIR=str(tmp_path / "data"),
        DRIFTLINE_REGISTRY=str(tmp_path / "registry"),
        DRIFTLINE_MODEL="credit",
        DRIFTLINE_LOG_LEVEL="DEBUG",
    )
    done = _cli(env, "worker", timeout=90)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "authentication failed as user" in output
    assert "Traceback" not in output
    _assert_no_secret(output, wrong, svc.kafka_password, svc.redis_password)


# -- (3) Redis refuses clients without the password, or with a wrong one --------------------
def test_redis_requires_its_password(secure_services: SecureServices) -> None:
    svc = secure_services
    wrong = secret("wrong")
    for settings in (
        svc.settings(redis_password=None),
        svc.settings(redis_password=wrong),
    ):
        client = sync_redis(svc.redis, settings)
        with pytest.raises(redis.AuthenticationError) as info:
            client.ping()
        client.close()
        _assert_no_secret(str(info.value), wrong, svc.redis_password)
        assert not redis_healthy(svc.redis, settings)

    good = svc.settings()
    client = sync_redis(svc.redis, good)
    assert client.ping()
    client.set("driftline:test:security", b"ok", ex=60)
    assert client.get("driftline:test:security") == b"ok"
    client.close()
    assert redis_healthy(svc.redis, good)

    async def async_ping() -> bool:
        aclient = async_redis(svc.redis, good)
        try:
            return bool(await aclient.ping())
        finally:
            await aclient.aclose()

    assert asyncio.run(async_ping())


# -- (4) secrets never reach logs, config output or files ------------------------------------
def test_secrets_never_appear_in_logs_config_or_files(
    secure_services: SecureServices, scored_run: ScoredRun
) -> None:
    svc = secure_services
    secrets = svc.secrets()
    # The log under test is that of a worker that ran (DEBUG), not of one that never started.
    assert f"worker for {scored_run.deployment.model}" in scored_run.log
    assert "[DEBUG]" in scored_run.log
    _assert_no_secret(scored_run.log, *secrets)

    key_password = secret("keypass")
    url_password = secret("urlpass")
    env = svc.env(
        kafka_ssl_certfile="client.pem",
        kafka_ssl_key_password=key_password,
        redis_url=svc.redis.replace("redis://", f"redis://:{url_password}@"),
    )
    for args in (("config",), ("config", "--json")):
        done = _cli(env, *args)
        assert done.returncode == 0, done.stderr
        _assert_no_secret(done.stdout + done.stderr, *secrets, key_password, url_password)
        assert "**********" in done.stdout
    values = orjson.loads(_cli(env, "config", "--json").stdout)
    assert values["kafka_sasl_password"] == values["redis_password"] == "**********"
    assert values["kafka_ssl_key_password"] == "**********"
    assert values["redis_url"].startswith("redis://:**********@")

    # `services status` authenticates to both (healthy) and shows no secret either.
    done = _cli(svc.env(), "services", "status", "--json", "--data-dir", str(svc.data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    status = orjson.loads(done.stdout)
    assert status["kafka"]["healthy"] and status["redis"]["healthy"]
    assert status["kafka"]["security"] == "SASL_PLAINTEXT"
    _assert_no_secret(done.stdout + done.stderr, *secrets)

    # On disk: the broker keeps salted SCRAM hashes; only Redis's own config holds its
    # password, readable by this user alone.
    for path in svc.data_dir.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name == "auth.conf":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert svc.kafka_password.encode() not in data
            continue
        for value in secrets:
            assert value.encode() not in data, f"a secret is written in {path.name}"


# -- (5) models come only from the registry, checked; nothing is unpickled -------------------
def test_a_tampered_model_is_never_served(tmp_path: Path) -> None:
    """The registry refuses a model file whose sha256 differs from its card
    (tests/unit/models/test_registry.py::test_tampered_model_is_refused); here the worker,
    the only thing that serves models, neither starts on one nor swaps to one."""
    dep = Deployment(Endpoints(kafka="", redis=""), "tamper", tmp_path)
    v1 = dep.add_version(seed=1)
    dep.registry.promote(dep.model, v1)
    settings = Settings(registry=dep.registry.root, data_dir=tmp_path / "data")
    runtime = WorkerRuntime(settings, dep.model, Registry(dep.registry.root))
    assert runtime.current.champion.version == v1

    v2 = dep.add_version(seed=2)
    onnx = dep.registry.root / dep.model / v2 / "model.onnx"
    onnx.chmod(0o644)
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    dep.registry.promote(dep.model, v2)

    assert not asyncio.run(runtime.reconcile()), "a tampered version was swapped in"
    assert runtime.current.champion.version == v1
    with pytest.raises(IntegrityError):
        WorkerRuntime(settings, dep.model, Registry(dep.registry.root))


_UNPICKLERS = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}


def test_nothing_is_unpickled_anywhere_in_the_packages() -> None:
    """JSON on the wire and ONNX in the registry: no module can turn bytes into objects."""
    found: list[str] = []
    for package in ("streams", "models", "monitoring"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            where = path.relative_to(ROOT)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name.split(".")[0] for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module.split(".")[0]]
                else:
                    names = []
                found += [f"{where}:{node.lineno} imports {n}" for n in names if n in _UNPICKLERS]
                if isinstance(node, ast.Attribute) and node.attr in ("read_pickle", "from_pickle"):
                    found.append(f"{where}:{node.lineno} calls {node.attr}")
                if (
                    isinstance(node, ast.keyword)
                    and node.arg == "allow_pickle"
                    and not (isinstance(node.value, ast.Constant) and node.value.value is False)
                ):
                    found.append(f"{where}:{node.lineno} allows pickle")
    assert not found, found


# -- TLS: a real Redis behind TLS, trusted through redis_ssl_cafile ---------------------------
# The server is the one `services up` runs (the system's redis-server or the packaged Valkey,
# which is built without TLS), so TLS is terminated in front of it, as stunnel or a managed
# proxy would: what is under test is the client, which must trust only the configured CA.
async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _tls_front(backend_port: int, context: ssl.SSLContext) -> asyncio.Server:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", backend_port)
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    return await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)


@pytest.fixture
def tls_redis(tmp_path: Path, bg: Background) -> Iterator[tuple[str, Path, str]]:
    """A Redis with a password that speaks TLS only, certified for 127.0.0.1 by a test CA."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    password, port = secret("tls"), free_port()
    conf = tmp_path / "redis.conf"
    conf.write_text(
        f'port {port}\nbind 127.0.0.1\nrequirepass {password}\nsave ""\ndir {tmp_path}\n'
    )
    server = find_redis_server().path
    proc = subprocess.Popen([server, str(conf)], stdout=subprocess.DEVNULL)
    front = bg.run(_tls_front(port, context))
    tls_port = front.sockets[0].getsockname()[1]
    try:
        yield f"rediss://127.0.0.1:{tls_port}/0", tmp_path / "ca.pem", password
    finally:
        front.close()
        proc.terminate()
        proc.wait(timeout=30)


def test_redis_over_tls_trusts_only_the_configured_ca(tls_redis: tuple[str, Path, str]) -> None:
    url, ca, password = tls_redis
    good = Settings(redis_ssl_cafile=ca, redis_password=password)
    deadline = time.monotonic() + 15
    while not redis_healthy(url, good) and time.monotonic() < deadline:
        time.sleep(0.2)
    client = sync_redis(url, good)
    assert client.ping()
    client.close()
    # Without our CA the server's certificate is not trusted: no connection, no fallback.
    untrusted = sync_redis(url, Settings(redis_password=password))
    with pytest.raises(redis.ConnectionError):
        untrusted.ping()
    untrusted.close()
    # And over plain TCP nothing answers on a TLS port.
    assert not redis_healthy(
        url.replace("rediss://", "redis://"), Settings(redis_password=password)
    )
