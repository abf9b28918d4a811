"""Every Redis client Driftline builds: one place that applies the settings' AUTH and TLS.

``redis_url`` says where (``redis://`` or ``rediss://`` for TLS, optionally with the user and
password in it); ``redis_username`` / ``redis_password`` and the ``redis_ssl_*`` files complete
it. A password written into the URL wins over ``redis_password``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff as SyncBackoff
from redis.retry import Retry as SyncRetry

from streams.config.settings import Settings, env_name
from streams.errors import ConfigError


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


def sync_redis(url: str, settings: Settings | None, **kwargs: Any) -> redis.Redis:
    """A blocking client of ``url`` with the settings' credentials and TLS."""
    kwargs.setdefault("retry", SyncRetry(SyncBackoff(cap=0.2, base=0.05), 1))
    return redis.Redis.from_url(url, **redis_options(url, settings), **kwargs)


def async_redis(url: str, settings: Settings | None, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client of ``url`` with the settings' credentials and TLS.

    A command that fails on a connection is retried once on a fresh one: after a Redis
    restart, pooled connections are dead, and the first use of each would fail otherwise.
    """
    kwargs.setdefault("retry", AsyncRetry(SyncBackoff(cap=0.2, base=0.05), 1))
    return aioredis.Redis.from_url(url, **redis_options(url, settings), **kwargs)


__all__ = ["async_redis", "redis_options", "sync_redis"]
