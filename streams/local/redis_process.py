"""Start the local redis-server that ``driftline services up`` runs, and probe a Redis.

With ``DRIFTLINE_REDIS_PASSWORD`` (and ``DRIFTLINE_REDIS_USERNAME``) the server requires it;
without, it starts plain, with no password.
"""

from __future__ import annotations

from pathlib import Path

import redis

from streams.adapters.redis_client import sync_redis
from streams.config.settings import Settings
from streams.local.kafka_local import write_private
from streams.local.processes import ServiceRecord, free_port, spawn
from streams.local.toolchain import find_redis_server


def redis_healthy(url: str, settings: Settings | None = None, timeout_s: float = 2.0) -> bool:
    """Return whether a Redis server answers PING at ``url`` (with the settings' credentials)."""
    client = sync_redis(url, settings, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def start_redis(settings: Settings, data_dir: Path, port: int | None = None) -> ServiceRecord:
    """Start redis-server with an append-only file under ``data_dir/redis``.

    Parameters
    ----------
    settings
        Where redis-server comes from, and the password it requires (if any).
    data_dir
        The services' folder: the server's data and log go to ``redis/``.
    port
        The port, to come back on the endpoint of a stopped server; None picks a free one.

    Returns
    -------
    ServiceRecord
        The server's process, its endpoint a ``redis://`` URL without credentials.
    """
    found = find_redis_server(settings.services_from)
    server = found.path
    home = data_dir / "redis"
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [
        server,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(home),
        "--appendonly",
        "yes",
        # The label join replaces its whole content every ~max_items events, so the AOF
        # outgrows its base quickly: at the default 100 % a rewrite (a forked child that
        # takes a core for 1-3 s on two cores) came every 35-60 s at 14,000 events/s.
        # 400 % makes them four times rarer, for an AOF of at most five times its base.
        "--auto-aof-rewrite-percentage",
        "400",
        "--save",
        "",
        "--daemonize",
        "no",
    ]
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    if password:
        # A private file keeps the password off `ps` (and out of other users' reach).
        conf = home / "auth.conf"
        user = settings.redis_username
        if user and user != "default":
            auth = f"user default off\nuser {user} on >{password} ~* &* +@all\n"
        else:
            auth = f"requirepass {password}\n"
        write_private(conf, auth)
        cmd.insert(1, str(conf))
    rec = spawn(cmd, home / "redis.log")
    rec.kind, rec.endpoint = "redis", f"redis://127.0.0.1:{port}/0"
    rec.program = found.line()
    return rec


__all__ = ["redis_healthy", "start_redis"]
