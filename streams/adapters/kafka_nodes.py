"""Which broker an aiokafka client asks for metadata: one that answers, first.

aiokafka refreshes its metadata (who leads each partition) from a broker it picks at random.
A frozen broker (SIGSTOP, a long GC pause, a hung disk) still accepts TCP connections and
never answers, so a refresh that picks it waits a whole request timeout before it asks the
next one. On a three-broker cluster a third of the refreshes after a freeze cost that long,
and a producer or consumer waiting for the new leaders waits with them: with a 5 s request
timeout, events on a frozen leader's partitions waited 10 s for their predictions where 5
would do (aiokafka's own tracker proposes the same remedy: aio-libs/aiokafka#187).

:func:`prefer_responsive_brokers` makes every aiokafka client in the process ask, in this
order, brokers whose connection answered lately (or has nothing outstanding), then brokers it
holds no connection to, then brokers whose connection failed lately or has requests
outstanding with no answer for a while; in random order within each group, as aiokafka
does, so that the load of refreshes spreads. A broker that fails a refresh goes last for
``SUSPECT_S``. Everything else about the refresh is aiokafka's: the same request, the same
handling of an empty answer and of the bootstrap connection.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiokafka
from aiokafka.client import AIOKafkaClient, ConnectionGroup
from aiokafka.conn import CloseReason
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

log = logging.getLogger(__name__)

# The aiokafka release whose metadata refresh this replaces (the constraints pin it; a unit
# test fails on another, so that an upgrade is checked rather than silently patched).
AIOKAFKA_VERSION = "0.14.0"
# How long a broker whose connection failed, or that failed a refresh, is asked last.
SUSPECT_S = 30.0
# A connection with requests outstanding and no answer for this long counts as stalled.
STALLED_S = 1.0
ANSWERING, UNKNOWN, SUSPECT = 0, 1, 2
BOOTSTRAP = "bootstrap"


def rank(connected: bool, outstanding: bool, idle_s: float, failed_s: float | None) -> int:
    """How readily to ask a broker for metadata (lower first).

    ``connected``: a connection to it is open; ``outstanding``: requests on it await an answer;
    ``idle_s``: since its last answer; ``failed_s``: since its connection last failed (None:
    not lately).

    Examples
    --------
    >>> rank(True, False, 40.0, None), rank(True, True, 0.2, None), rank(False, False, 0, None)
    (0, 0, 1)
    >>> rank(True, True, 5.0, None), rank(False, False, 0.0, 3.0), rank(True, False, 0, 90.0)
    (2, 2, 0)
    """
    if failed_s is not None and failed_s < SUSPECT_S:
        return SUSPECT
    if not connected:
        return UNKNOWN
    return SUSPECT if outstanding and idle_s > STALLED_S else ANSWERING


def order(ranks: Mapping[Any, int], rng: random.Random | None = None) -> list[Any]:
    """The brokers of ``ranks`` by rank, shuffled within a rank.

    Examples
    --------
    >>> order({1: SUSPECT, 2: ANSWERING, 3: UNKNOWN})
    [2, 3, 1]
    """
    draw = rng or random
    return sorted(ranks, key=lambda node: (ranks[node], draw.random()))


def _failures(client: AIOKafkaClient) -> dict[Any, float]:
    failed: dict[Any, float] | None = getattr(client, "_driftline_failed", None)
    if failed is None:
        failed = {}
        setattr(client, "_driftline_failed", failed)  # noqa: B010
    return failed


def _ranks(client: AIOKafkaClient, nodes: Iterable[Any]) -> dict[Any, int]:
    now = time.monotonic()
    failed = _failures(client)
    ranks = {}
    for node in nodes:
        conn = client._conns.get((node, ConnectionGroup.DEFAULT))
        connected = conn is not None and conn.connected()
        since = now - failed[node] if node in failed else None
        idle = now - conn._last_action if connected else 0.0
        ranks[node] = rank(connected, bool(connected and conn._requests), idle, since)
    return ranks


async def _metadata_update(
    self: AIOKafkaClient, cluster_metadata: Any, topics: Iterable[str]
) -> bool:
    """aiokafka's refresh, asking the brokers in :func:`order` rather than at random."""
    request = MetadataRequest(list(topics) if topics else None)
    nodes: list[Any] = [b.nodeId for b in self.cluster.brokers()]
    bootstrap_id = (BOOTSTRAP, ConnectionGroup.DEFAULT)
    if bootstrap_id in self._conns:
        nodes.append(BOOTSTRAP)
    for node in order(_ranks(self, nodes)):
        conn = await self._get_conn(node)
        if conn is None:
            _failures(self)[node] = time.monotonic()
            continue
        try:
            metadata = await conn.send(request)
        except (TimeoutError, KafkaError) as err:
            _failures(self)[node] = time.monotonic()
            log.warning("kafka: no metadata from broker %s (%r); asking another", node, err)
            continue
        if not metadata.brokers:
            return False  # a topic still being created: aiokafka's answer too
        _failures(self).pop(node, None)
        cluster_metadata.update_metadata(metadata)
        if bootstrap_id in self._conns and len(self.cluster.brokers()):
            self._conns.pop(bootstrap_id).close()  # the cluster's layout is known now
        return True
    log.error("kafka: no broker answered a metadata request (%s)", nodes)
    cluster_metadata.failed_update(None)
    return False


_closed = AIOKafkaClient._on_connection_closed


def _on_connection_closed(self: AIOKafkaClient, conn: Any, reason: Any) -> None:
    """aiokafka's callback, which also remembers the broker whose connection failed."""
    if reason in (CloseReason.CONNECTION_BROKEN, CloseReason.CONNECTION_TIMEOUT):
        for (node, _), held in list(self._conns.items()):
            if held is conn:
                _failures(self)[node] = time.monotonic()
    _closed(self, conn, reason)


def prefer_responsive_brokers() -> None:
    """Make every aiokafka client of this process refresh metadata from a broker that answers
    (idempotent; every Kafka client's options are built through
    :func:`~streams.adapters.kafka_admin.client_options`, which calls it)."""
    if AIOKafkaClient._metadata_update is _metadata_update:
        return
    if aiokafka.__version__ != AIOKAFKA_VERSION:
        log.warning(
            "kafka: aiokafka %s is not %s, whose metadata refresh Driftline orders; a frozen "
            "broker may then cost a request timeout per refresh",
            aiokafka.__version__,
            AIOKAFKA_VERSION,
        )
        return
    setattr(AIOKafkaClient, "_metadata_update", _metadata_update)  # noqa: B010
    setattr(AIOKafkaClient, "_on_connection_closed", _on_connection_closed)  # noqa: B010


__all__ = ["SUSPECT_S", "order", "prefer_responsive_brokers", "rank"]
