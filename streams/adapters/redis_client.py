"""Every Redis client Driftline builds: one place that applies the settings' AUTH and TLS.

``redis_url`` says where (``redis://`` or ``rediss://`` for TLS, optionally with the user and
password in it); ``redis_username`` / ``redis_password`` and the ``redis_ssl_*`` files complete
it. A password written into the URL wins over ``redis_password``.

A URL may name any node of a Redis Cluster: the first client of a URL asks that node
``CLUSTER INFO`` and, when it answers, every client of the URL is a cluster client
(``RedisCluster``), which finds the other nodes itself and follows their slots through
failovers. Nothing else needs setting. Every key Driftline writes carries its model's hash tag
(:mod:`streams.contracts.names`), so scripts and pipelines never cross slots.
"""

from __future__ import annotations

import logging
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff as SyncBackoff
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.retry import Retry as SyncRetry

from streams.config.settings import Settings, env_name, redact_url
from streams.errors import ConfigError

log = logging.getLogger(__name__)

SyncClient: TypeAlias = redis.Redis | SyncRedisCluster
AsyncClient: TypeAlias = aioredis.Redis | AsyncRedisCluster

# What each URL turned out to be (True: a cluster), asked once per process.
_kinds: dict[str, bool] = {}


def redis_options(url: str, settings: Settings | None) -> dict[str, Any]:
    """Return the keyword arguments that secure a client of ``url`` as ``settings`` say.

    Raises
    ------
    ConfigError
        TLS files are set but ``url`` is not ``rediss://``: the client would send them nowhere
        and talk in clear text, which is never what was meant.
    """
    if settings is None:
        return {}
    opts: dict[str, Any] = {}
    if settings.redis_username:
        opts["username"] = settings.redis_username
    if settings.redis_password is not None:
        opts["password"] = settings.redis_password.get_secret_value()
    files = {
        "ssl_ca_certs": settings.redis_ssl_cafile,
        "ssl_certfile": settings.redis_ssl_certfile,
        "ssl_keyfile": settings.redis_ssl_keyfile,
    }
    given = {k: str(v) for k, v in files.items() if v is not None}
    if given:
        if urlsplit(url).scheme != "rediss":
            raise ConfigError(
                f"{env_name('redis_ssl_cafile')} and the other Redis TLS files need a rediss:// "
                f"{env_name('redis_url')}"
            )
        opts.update(given, ssl_cert_reqs="required")
    return opts


def as_text(value: object) -> str:
    """A Redis reply (bytes, or str from a decoding client) as text.

    >>> as_text(b"ok"), as_text("ok"), as_text(7)
    ('ok', 'ok', '7')
    """
    return value.decode() if isinstance(value, bytes) else str(value)


def is_cluster(url: str, settings: Settings | None, timeout_s: float = 2.0) -> bool:
    """Whether ``url`` names a node of a Redis Cluster (asked once per process and URL).

    A server that does not answer is taken for a single node, with a warning, and asked again
    by the next client: a cluster node that is down at start is found out once it is back.
    """
    if url in _kinds:
        return _kinds[url]
    probe = redis.Redis.from_url(
        url,
        **redis_options(url, settings),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    try:
        info = probe.cluster("INFO")
    except redis.ResponseError:  # "cluster support disabled": one server
        _kinds[url] = False
        return False
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "Redis at %s did not answer (%s): using a single-node client", redact_url(url), exc
        )
        return False
    finally:
        probe.close()
    # parsed into a dict by redis-py or raw, depending on the protocol: its text says it
    _kinds[url] = "cluster_state" in (info.decode() if isinstance(info, bytes) else str(info))
    return _kinds[url]


def sync_redis(url: str, settings: Settings | None, **kwargs: Any) -> SyncClient:
    """A blocking client of ``url`` with the settings' credentials and TLS (a cluster client
    when ``url`` names a cluster node)."""
    opts = redis_options(url, settings)
    if is_cluster(url, settings):
        kwargs.setdefault("retry", SyncRetry(SyncBackoff(cap=0.5, base=0.05), 3))
        return SyncRedisCluster.from_url(url, **opts, **kwargs)
    kwargs.setdefault("retry", SyncRetry(SyncBackoff(cap=0.2, base=0.05), 1))
    return redis.Redis.from_url(url, **opts, **kwargs)


def async_redis(url: str, settings: Settings | None, **kwargs: Any) -> AsyncClient:
    """An asyncio client of ``url`` with the settings' credentials and TLS (a cluster client
    when ``url`` names a cluster node).

    A command that fails on a connection is retried on a fresh one: after a Redis restart,
    pooled connections are dead, and the first use of each would fail otherwise. A cluster
    client retries a few times more, re-reading the slots, to ride through a failover.
    """
    opts = redis_options(url, settings)
    if is_cluster(url, settings):
        kwargs.setdefault("retry", AsyncRetry(SyncBackoff(cap=0.5, base=0.05), 3))
        return AsyncRedisCluster.from_url(url, **opts, **kwargs)
    kwargs.setdefault("retry", AsyncRetry(SyncBackoff(cap=0.2, base=0.05), 1))
    return aioredis.Redis.from_url(url, **opts, **kwargs)


__all__ = [
    "AsyncClient",
    "SyncClient",
    "as_text",
    "async_redis",
    "is_cluster",
    "redis_options",
    "sync_redis",
]
