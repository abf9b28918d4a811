"""A local Redis Cluster on loopback: ``driftline services up --redis-cluster``.

Three masters share the 16,384 slots, and each has one replica that takes over when it dies
(after :data:`~streams.local.redis_process.CLUSTER_NODE_TIMEOUT_MS`). The nodes are named
``redis`` (the first master, whose URL clients are given), ``redis-2`` … ``redis-6``, each
with its own port, folder and ``nodes.conf``; a node stopped and started again on the same
port rejoins from its ``nodes.conf``. The cluster is formed with the ``CLUSTER`` commands
themselves (``MEET``, ``ADDSLOTSRANGE``, ``REPLICATE``): no ``redis-cli`` needed, which the
Valkey wheel does not ship.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis

from streams.adapters.redis_client import as_text
from streams.config.settings import Settings
from streams.errors import ServiceError
from streams.local.processes import ServiceRecord, free_ports
from streams.local.redis_process import bus_port_file, node_client, start_redis

MASTERS = 3
SLOTS = 16_384


def redis_node_name(n: int) -> str:
    """The name of node ``n`` (from 1): ``redis``, ``redis-2``, …

    >>> [redis_node_name(n) for n in (1, 2, 6)]
    ['redis', 'redis-2', 'redis-6']
    """
    return "redis" if n == 1 else f"redis-{n}"


def start_redis_cluster(settings: Settings, data_dir: Path) -> dict[str, ServiceRecord]:
    """Start ``2 * MASTERS`` cluster-mode servers on free ports; they form no cluster yet."""
    names = [redis_node_name(n) for n in range(1, 2 * MASTERS + 1)]
    ports = free_ports(2 * len(names))  # each node's, then its cluster bus's
    for name, bus in zip(names, ports[len(names) :], strict=True):
        bus_port_file(data_dir, name).parent.mkdir(parents=True, exist_ok=True)
        bus_port_file(data_dir, name).write_text(str(bus))
    return {
        name: start_redis(settings, data_dir, port, name=name, cluster=True)
        for name, port in zip(names, ports, strict=False)
    }


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _info(client: redis.Redis) -> dict[str, str]:
    info = client.cluster("INFO")  # parsed by redis-py
    return {str(k): as_text(v) for k, v in info.items()}


def form_cluster(
    nodes: Mapping[str, ServiceRecord],
    settings: Settings,
    data_dir: Path,
    timeout_s: float = 60.0,
) -> None:
    """Join the started nodes into one cluster: slots to the first ``MASTERS``, one replica
    each from the others; return once every node says the cluster is ``ok``.

    Nodes that already know each other (restarted from their ``nodes.conf``) are left as
    they are.

    Raises
    ------
    ServiceError
        The cluster is not ``ok`` within ``timeout_s``.
    """
    names = list(nodes)
    clients = {n: node_client(nodes[n].endpoint, settings) for n in names}
    try:
        first = clients[names[0]]
        if int(_info(first).get("cluster_known_nodes", "1")) < len(names):
            ids = {n: as_text(c.cluster("MYID")) for n, c in clients.items()}
            for n in names[1:]:
                bus = int(bus_port_file(data_dir, n).read_text())
                first.cluster("MEET", "127.0.0.1", _port(nodes[n].endpoint), bus)
            per = SLOTS // MASTERS
            for i, n in enumerate(names[:MASTERS]):
                last = SLOTS - 1 if i == MASTERS - 1 else (i + 1) * per - 1
                clients[n].cluster("ADDSLOTSRANGE", i * per, last)
            _until(
                lambda: all(
                    int(_info(c).get("cluster_known_nodes", "1")) == len(names)
                    for c in clients.values()
                ),
                timeout_s,
                "the nodes did not meet",
            )
            for master, replica in zip(names[:MASTERS], names[MASTERS:], strict=False):
                clients[replica].cluster("REPLICATE", ids[master])
        _until(
            lambda: (
                all(_info(c).get("cluster_state") == "ok" for c in clients.values())
                and all(len(_replicas(clients[n])) >= 1 for n in names[:MASTERS])
            ),
            timeout_s,
            "the cluster did not reach state ok with a replica per master",
        )
    finally:
        for c in clients.values():
            c.close()


def _replicas(client: redis.Redis) -> list[Any]:
    role = client.role()
    return list(role[2]) if as_text(role[0]) == "master" else []


def _until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.2)
    raise ServiceError("redis", f"{what} within {timeout_s:.0f}s")


def cluster_ok(url: str, settings: Settings) -> bool:
    """Whether the node at ``url`` says its cluster serves every slot (``cluster_state:ok``)."""
    client = node_client(url, settings)
    try:
        return _info(client).get("cluster_state") == "ok"
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def node_roles(nodes: Mapping[str, ServiceRecord], settings: Settings) -> dict[str, str]:
    """Each live node's role now (``master`` or ``replica``)."""
    roles: dict[str, str] = {}
    for name, rec in nodes.items():
        if not rec.alive():
            continue
        client = node_client(rec.endpoint, settings)
        try:
            role = as_text(client.role()[0])
            roles[name] = "replica" if role == "slave" else role
        except (redis.RedisError, OSError):
            roles[name] = "not answering"
        finally:
            client.close()
    return roles


__all__ = [
    "MASTERS",
    "cluster_ok",
    "form_cluster",
    "node_roles",
    "redis_node_name",
    "start_redis_cluster",
]
