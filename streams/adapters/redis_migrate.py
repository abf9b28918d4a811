"""Move a model's Redis keys from the layout before hash tags to the current one, once.

Before :data:`~streams.contracts.names.KEYS_VERSION` 2 a model's keys were
``driftline:model:<model>:<suffix>`` and its label join lived under ``driftline:join:<model>``
(see :func:`~streams.contracts.names.legacy_prefixes`). :func:`migrate_model_keys` moves them
to their names in :mod:`streams.contracts.names` and then writes the layout's version to
``driftline:{<model>}:keys``: every later call is one ``GET``.

Old and new names lie in different Cluster slots, so nothing here spans both in one command,
script or transaction: each command names one key. A plain key moves by ``DUMP``, ``PTTL``
and ``RESTORE`` without ``REPLACE`` (a new key that exists already wins: it holds state
written since the upgrade), then the old key is deleted. An old join generation is read,
then deleted, and re-stored through :class:`~streams.adapters.redis_join.RedisLabelJoin` only
by the caller whose ``DEL`` removed it, so that two migrations at once store it once (a crash
between the two steps loses that generation's pending entries, which wait at most a TTL
anyway). Re-stored entries wait a full TTL again from ``now``.
"""

from __future__ import annotations

import re

from redis.exceptions import ResponseError

from streams.adapters.redis_client import AsyncClient, as_text
from streams.adapters.redis_join import RedisLabelJoin
from streams.contracts.names import (
    KEYS_VERSION,
    champion_seen_key,
    deferred_key,
    events_key,
    health_key,
    history_key,
    keys_version_key,
    legacy_prefixes,
    pairs_prefix,
    stage_key,
    state_key,
    window_key,
)

# The old suffixes of the plain keys and the helpers that name them now.
_PLAIN = {
    "state": state_key,
    "health": health_key,
    "history": history_key,
    "window": window_key,
    "events": events_key,
    "stage": stage_key,
    "deferred": deferred_key,
    "champion_seen": champion_seen_key,
}

# The old join's counters carried over (pending_p / pending_l count again as entries return).
_COUNTERS = ("joined", "expired_predictions", "expired_labels", "evicted")

# Entries per call of the new join: its generations roll between calls, as they do in service.
_BATCH = 2000


async def migrate_model_keys(
    client: AsyncClient, model: str, join: RedisLabelJoin, now: float
) -> dict[str, int]:
    """Move ``model``'s keys from the layout before hash tags, unless done already.

    Parameters
    ----------
    client
        An asyncio Redis client (one server or a cluster).
    model
        The model whose keys move.
    join
        ``model``'s label join in the current layout: the old join's entries are stored again
        through it.
    now
        The time (``time.time()``) the re-stored entries are written at.

    Returns
    -------
    dict[str, int]
        Empty when the keys were in the current layout already. Otherwise ``keys``, the plain
        keys moved; ``kept``, old keys dropped because their new name held a key already;
        ``predictions`` and ``labels``, the pending entries of the old join stored again; and
        ``joined``, those of them that met their other side in the new join (counted there
        too, and not returned).
    """
    marker = keys_version_key(model)
    version = await client.get(marker)
    if version is not None and int(version) >= KEYS_VERSION:
        return {}
    old, old_join = legacy_prefixes(model)
    counts = dict.fromkeys(("keys", "kept", "predictions", "labels", "joined"), 0)
    moves = [(f"{old}:{suffix}", name(model)) for suffix, name in _PLAIN.items()]
    async for key in client.scan_iter(match=f"{_glob(old)}:paired:*"):
        version_ = as_text(key)[len(f"{old}:paired:") :]
        moves.append((as_text(key), f"{pairs_prefix(model)}:{version_}"))
    for src, dst in moves:
        moved = await _move(client, src, dst)
        if moved is not None:
            counts["keys" if moved else "kept"] += 1
    await _carry_counters(client, f"{old_join}:stats", join.keys[0])
    for side, name in (("p", "predictions"), ("l", "labels")):
        for gen in await client.zrange(f"{old_join}:{side}g", 0, -1):
            stored, joined = await _restore_generation(client, as_text(gen), side, join, now)
            counts[name] += stored
            counts["joined"] += joined
    strays = client.scan_iter(match=f"{_glob(old_join)}:[pl]:" + "[0-9]" * 12)
    old_keys = [as_text(key) async for key in strays]
    for key in [*(f"{old_join}:{k}" for k in ("stats", "gen", "pg", "lg")), *old_keys]:
        await client.delete(key)
    await client.set(marker, KEYS_VERSION)
    return counts


async def _move(client: AsyncClient, src: str, dst: str) -> bool | None:
    """Move ``src`` to ``dst`` with its TTL: True if moved, False if ``dst`` existed (and
    ``src`` went), None if there was no ``src``."""
    dumped = await client.dump(src)
    ttl_ms = await client.pttl(src)
    if dumped is None or ttl_ms == -2:  # absent, or gone since the DUMP
        return None
    try:
        await client.restore(dst, max(ttl_ms, 0), dumped)
        moved = True
    except ResponseError as exc:
        if not str(exc).startswith("BUSYKEY"):
            raise
        moved = False
    await client.delete(src)
    return moved


async def _carry_counters(client: AsyncClient, src: str, dst: str) -> None:
    """Add the old join's counters to the new join's, once (whoever deletes ``src``)."""
    old = {as_text(k): int(v) for k, v in (await client.hgetall(src)).items()}
    if not old or not await client.delete(src):
        return
    for name in _COUNTERS:
        if old.get(name):
            await client.hincrby(dst, name, old[name])


async def _restore_generation(
    client: AsyncClient, gen: str, side: str, join: RedisLabelJoin, now: float
) -> tuple[int, int]:
    """Store the entries of the old generation ``gen`` again through ``join``; return how
    many entries were stored and how many of them joined."""
    entries: dict[str, bytes] = {}
    async for event_id, value in client.hscan_iter(gen, count=1000):
        entries[as_text(event_id)] = value
    if not entries or not await client.delete(gen):  # empty, or another caller took it
        return 0, 0
    add = join.add_prediction_lines if side == "p" else join.add_label_lines
    ids, lines = list(entries), list(entries.values())
    joined = 0
    for a in range(0, len(ids), _BATCH):
        joined += len(await add(ids[a : a + _BATCH], lines[a : a + _BATCH], now))
    return len(ids), joined


def _glob(text: str) -> str:
    """``text`` with the characters special to Redis's ``MATCH`` escaped."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


__all__ = ["migrate_model_keys"]
