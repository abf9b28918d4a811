"""Start a local redis-server that ``driftline services up`` runs, and probe a Redis.

With ``DRIFTLINE_REDIS_PASSWORD`` (and ``DRIFTLINE_REDIS_USERNAME``) the server requires it
(and a cluster node's replica authenticates to its master with it); without, it starts plain,
with no password. A node of a local Redis Cluster is started here too, in cluster mode; the
cluster is formed by :mod:`~streams.local.redis_cluster`.
"""

from __future__ import annotations

from pathlib import Path

import redis

from streams.adapters.redis_client import redis_options
from streams.config.settings import Settings
from streams.local.kafka_local import write_private
from streams.local.processes import ServiceRecord, free_port, spawn
from streams.local.toolchain import find_redis_server


def redis_healthy(url: str, settings: Settings | None = None, timeout_s: float = 2.0) -> bool:
    """Return whether the Redis server at ``url`` answers PING (with the settings' credentials).

    That one server, even a node of a cluster: whether the cluster serves is another question.
    """
    client = node_client(url, settings, timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def node_client(url: str, settings: Settings | None, timeout_s: float = 2.0) -> redis.Redis:
    """A client of the one server at ``url``, never a cluster client."""
    return redis.Redis.from_url(
        url,
        **redis_options(url, settings),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )


# A node is failed over after this long without an answer. Two seconds rides out a busy
# machine's hiccups and lets a replica take over within about three.
CLUSTER_NODE_TIMEOUT_MS = 2000


def bus_port_file(data_dir: Path, name: str) -> Path:
    """Where the cluster node ``name`` keeps the port of its cluster bus."""
    return data_dir / name / "cluster.port"


def start_redis(
    settings: Settings,
    data_dir: Path,
    port: int | None = None,
    *,
    name: str = "redis",
    cluster: bool = False,
) -> ServiceRecord:
    """Start redis-server with an append-only file under ``data_dir/<name>``.

    Parameters
    ----------
    settings
        Where redis-server comes from, and the password it requires (if any).
    data_dir
        The services' folder: the server's data and log go to ``redis/``.
    port
        The port, to come back on the endpoint of a stopped server; None picks a free one.
    name
        The service's name, and its folder's.
    cluster
        Start it as a node of a Redis Cluster (its ``nodes.conf`` in its folder).

    Returns
    -------
    ServiceRecord
        The server's process, its endpoint a ``redis://`` URL without credentials.
    """
    found = find_redis_server(settings.services_from)
    server = found.path
    home = data_dir / name
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
    if cluster:
        # The cluster bus listens on a port of its own (by default port + 10,000, which may
        # not exist); kept in the node's folder, so that a restart comes back on it.
        bus = bus_port_file(data_dir, name)
        if not bus.exists():
            bus.write_text(str(free_port()))
        cmd += [
            "--cluster-port",
            bus.read_text().strip(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(CLUSTER_NODE_TIMEOUT_MS),
            # a replica takes over however long its master was gone (else it may refuse)
            "--cluster-replica-validity-factor",
            "0",
        ]
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    if password:
        # A private file keeps the password off `ps` (and out of other users' reach).
        conf = home / "auth.conf"
        user = settings.redis_username
        if user and user != "default":
            auth = f"user default off\nuser {user} on >{password} ~* &* +@all\n"
            auth += f"masteruser {user}\n" if cluster else ""
        else:
            auth = f"requirepass {password}\n"
        auth += f"masterauth {password}\n" if cluster else ""
        write_private(conf, auth)
        cmd.insert(1, str(conf))
    rec = spawn(cmd, home / "redis.log")
    rec.kind, rec.endpoint = "redis", f"redis://127.0.0.1:{port}/0"
    rec.program = found.line()
    return rec


__all__ = [
    "CLUSTER_NODE_TIMEOUT_MS",
    "bus_port_file",
    "node_client",
    "redis_healthy",
    "start_redis",
]
