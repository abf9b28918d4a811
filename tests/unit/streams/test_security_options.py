"""Security settings reach every client: aiokafka, Faust and Redis (no network needed)."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
import trustme
from cryptography.hazmat.primitives import serialization
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from streams.adapters.faust_app import faust_app
from streams.adapters.kafka_admin import client_options, faust_credentials
from streams.adapters.redis_client import async_redis, redis_options, sync_redis
from streams.config.settings import Settings, redact_url
from streams.errors import ConfigError, ServiceError
from streams.local.kafka_local import ScramUser, kafka_properties, scram_argfile
from streams.local.services import LocalServices

KEY_PASSWORD = "key-pass-9d3f"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test CA and a client certificate whose key is encrypted with ``KEY_PASSWORD``."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    client = ca.issue_cert("client")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(d / "client.pem"))
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
    )
    (d / "client.key").write_bytes(encrypted)
    return d


def _tls(pki: Path, protocol: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "kafka_security_protocol": protocol,
        "kafka_ssl_cafile": pki / "ca.pem",
        "kafka_ssl_certfile": pki / "client.pem",
        "kafka_ssl_keyfile": pki / "client.key",
        "kafka_ssl_key_password": KEY_PASSWORD,
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


def test_plaintext_adds_nothing() -> None:
    settings = Settings()
    assert client_options(settings) == {}
    assert client_options(None) == {}
    assert faust_credentials(settings) is None


def test_scram_reaches_aiokafka_and_faust_alike() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="alice",
        kafka_sasl_password="pw-1",
    )
    opts = client_options(settings)
    assert opts == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "pw-1",
    }
    creds = faust_credentials(settings)
    assert isinstance(creds, SASLCredentials)
    # What Faust hands its own consumers, producers and admin client is what we hand ours.
    auth = credentials_to_aiokafka_auth(creds)
    assert {k: v for k, v in auth.items() if k != "ssl_context"} == opts
    assert auth["ssl_context"] is None
    assert "pw-1" not in repr(creds)


def test_sasl_ssl_with_mutual_tls(pki: Path) -> None:
    settings = _tls(
        pki,
        "SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="alice",
        kafka_sasl_password="pw-2",
    )
    opts = client_options(settings)
    assert opts["security_protocol"] == "SASL_SSL"
    context = opts["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    ours = ssl.create_default_context(cafile=pki / "ca.pem").get_ca_certs()
    assert context.get_ca_certs() == ours and len(ours) == 1, "exactly the configured CA"
    creds = faust_credentials(settings)
    assert isinstance(creds, SASLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_ssl_only_and_hostname_check_setting(pki: Path) -> None:
    settings = _tls(pki, "SSL", kafka_ssl_check_hostname=False)
    opts = client_options(settings)
    assert opts["security_protocol"] == "SSL" and not opts["ssl_context"].check_hostname
    creds = faust_credentials(settings)
    assert isinstance(creds, SSLCredentials)
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"


def test_faust_app_carries_the_credentials(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="alice",
        kafka_sasl_password="pw-3",
    )
    app = faust_app(settings, "127.0.0.1:9092", "driftline-test")
    creds = app.conf.broker_credentials
    assert isinstance(creds, SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == (
        "alice",
        "pw-3",
        "SCRAM-SHA-256",
    )
    assert faust_app(Settings(data_dir=tmp_path), "h:1", "x").conf.broker_credentials is None


def test_bad_tls_files_are_a_config_error_without_the_password(pki: Path) -> None:
    wrong = "not-the-key-pass-77"
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_certfile=pki / "client.pem",
        kafka_ssl_keyfile=pki / "client.key",
        kafka_ssl_key_password=wrong,
    )
    with pytest.raises(ConfigError) as info:
        client_options(settings)
    assert wrong not in str(info.value)
    with pytest.raises(ConfigError):
        client_options(_tls(pki, "SSL", kafka_ssl_cafile=pki / "missing.pem"))


def test_incomplete_security_settings_are_refused_without_echoing_secrets() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_password="hunter2-x")
    assert "DRIFTLINE_KAFKA_SASL_USERNAME" in str(info.value)
    assert "hunter2-x" not in str(info.value)
    with pytest.raises(ValidationError) as info:
        Settings(kafka_sasl_password=["hunter2-y"])  # type: ignore[arg-type]
    assert "hunter2-y" not in str(info.value)


def test_redis_options_auth_and_tls(pki: Path) -> None:
    assert redis_options("redis://h:1/0", None) == {}
    auth = Settings(redis_username="app", redis_password="pw-4")
    assert redis_options("redis://h:1/0", auth) == {"username": "app", "password": "pw-4"}
    tls = Settings(redis_password="pw-5", redis_ssl_cafile=pki / "ca.pem")
    opts = redis_options("rediss://h:1/0", tls)
    assert opts["ssl_ca_certs"] == str(pki / "ca.pem")
    assert opts["ssl_cert_reqs"] == "required"
    with pytest.raises(ConfigError, match="rediss://"):
        redis_options("redis://h:1/0", tls)

    sync = sync_redis("rediss://h:1/0", tls)
    kwargs = sync.connection_pool.connection_kwargs
    assert sync.connection_pool.connection_class is redis.SSLConnection
    assert kwargs["password"] == "pw-5" and kwargs["ssl_ca_certs"] == str(pki / "ca.pem")
    asynced = async_redis("rediss://h:1/0", tls, socket_timeout=2.0)
    akwargs = asynced.connection_pool.connection_kwargs
    assert asynced.connection_pool.connection_class is aioredis.SSLConnection
    assert akwargs["password"] == "pw-5" and akwargs["socket_timeout"] == 2.0


def test_urls_with_passwords_are_redacted_wherever_shown() -> None:
    assert redact_url("redis://:pw-6@h:1/0") == "redis://:**********@h:1/0"
    assert redact_url("rediss://app:pw-6@h:1/0") == "rediss://app:**********@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
    settings = Settings(redis_url="redis://:pw-6@h:1/0")
    assert "pw-6" not in repr(settings)
    assert "pw-6" not in str(settings.masked())


def test_local_broker_security(tmp_path: Path) -> None:
    props = kafka_properties(1, 2, tmp_path, sasl_port=3)
    assert "SASL_PLAINTEXT://127.0.0.1:3" in props
    assert "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512" in props
    assert "SASL" not in kafka_properties(1, 2, tmp_path), "the default broker is unchanged"

    arg = scram_argfile(tmp_path / "scram.args", [ScramUser("SCRAM-SHA-256", "alice", "pw-7")])
    assert arg == f"@{tmp_path / 'scram.args'}"
    assert stat.S_IMODE((tmp_path / "scram.args").stat().st_mode) == 0o600
    with pytest.raises(ServiceError) as info:
        ScramUser("SCRAM-SHA-256", "alice", "pw,8]")
    assert "pw,8]" not in str(info.value)
    with pytest.raises(ServiceError, match="SCRAM-SHA-256 or SCRAM-SHA-512"):
        ScramUser("PLAIN", "alice", "pw")

    tls = Settings(
        data_dir=tmp_path,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="alice",
        kafka_sasl_password="pw-9",
    )
    with pytest.raises(ServiceError, match="DRIFTLINE_KAFKA_BOOTSTRAP"):
        LocalServices(tls).up()
