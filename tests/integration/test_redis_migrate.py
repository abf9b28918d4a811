"""Moving a model's keys from the layout before hash tags, on the session's real redis-server."""

from __future__ import annotations

import asyncio

from streams.adapters.redis_client import AsyncClient, async_redis
from streams.adapters.redis_join import RedisLabelJoin
from streams.adapters.redis_migrate import migrate_model_keys
from streams.contracts import names


async def _write_old_layout(client: AsyncClient, model: str) -> None:
    """The keys of ``model`` as Driftline wrote them before hash tags."""
    old, join = names.legacy_prefixes(model)
    await client.set(f"{old}:state", b'{"monitors": 3}')
    await client.hset(f"{old}:health", mapping={"monitor": b'{"ok": true}'})
    await client.xadd(f"{old}:history", {"point": b"1"}, id="1-0")
    await client.xadd(f"{old}:history", {"point": b"2"}, id="2-0")
    await client.xadd(f"{old}:window", {"event": b"w"}, id="5-0")
    await client.rpush(f"{old}:paired:v7", b"1,0", b"1,1")
    await client.set(f"{old}:stage", b"shadow", ex=600)
    # the old join: two predictions waiting in one generation, a label in another
    p_gen, l_gen = f"{join}:p:{3:012d}", f"{join}:l:{1:012d}"
    await client.hset(p_gen, mapping={"e1": b'{"v":"1","p":0.9}', "e2": b'{"v":"1","p":0.2}'})
    await client.hset(l_gen, mapping={"e3": b"1"})
    await client.zadd(f"{join}:pg", {p_gen: 100.0})
    await client.zadd(f"{join}:lg", {l_gen: 90.0})
    await client.hset(f"{join}:gen", mapping={"p": 3, "p:at": 100, "l": 1, "l:at": 90})
    await client.hset(
        f"{join}:stats",
        mapping={
            "joined": 40,
            "expired_predictions": 5,
            "expired_labels": 2,
            "evicted": 7,
            "pending_p": 2,
            "pending_l": 1,
        },
    )


async def _migrate(url: str, model: str) -> None:
    client = async_redis(url, None)
    join = RedisLabelJoin(client, model, ttl_s=1000, max_items=100)
    old, old_join = names.legacy_prefixes(model)
    try:
        await _write_old_layout(client, model)
        counts = await migrate_model_keys(client, model, join, now=1_000.0)
        assert counts == {"keys": 6, "kept": 0, "predictions": 2, "labels": 1, "joined": 0}
        # every plain key holds its old content under its new name
        assert await client.get(names.state_key(model)) == b'{"monitors": 3}'
        assert await client.hgetall(names.health_key(model)) == {b"monitor": b'{"ok": true}'}
        history = await client.xrange(names.history_key(model))
        assert history == [(b"1-0", {b"point": b"1"}), (b"2-0", {b"point": b"2"})]
        assert await client.xrange(names.window_key(model)) == [(b"5-0", {b"event": b"w"})]
        paired = f"{names.pairs_prefix(model)}:v7"
        assert await client.lrange(paired, 0, -1) == [b"1,0", b"1,1"]
        assert await client.get(names.stage_key(model)) == b"shadow"
        assert 590 < await client.ttl(names.stage_key(model)) <= 600
        assert await client.ttl(names.state_key(model)) == -1  # no TTL stays none
        # nothing is left under the old prefixes
        assert [k async for k in client.scan_iter(match=f"{old}:*")] == []
        assert [k async for k in client.scan_iter(match=f"{old_join}:*")] == []
        # the new join carries the old counters and the entries still waiting
        assert await join.stats() == {
            "joined": 40,
            "expired_predictions": 5,
            "expired_labels": 2,
            "evicted": 7,
            "pending_predictions": 2,
            "pending_labels": 1,
        }
        # a label for a migrated prediction joins, and a prediction for the migrated label
        got = await join.add_labels([("e1", 1)], now=1_001.0)
        assert got == [("e1", {"v": "1", "p": 0.9}, 1)]
        got = await join.add_predictions([("e3", {"v": "2", "p": 0.7})], now=1_002.0)
        assert got == [("e3", {"v": "2", "p": 0.7}, 1)]
        stats = await join.stats()
        assert stats["joined"] == 42
        assert stats["pending_predictions"] == 1 and stats["pending_labels"] == 0
        assert await client.get(names.keys_version_key(model)) == str(names.KEYS_VERSION).encode()
        # the marker makes a second call one GET: an old key written since stays where it is
        await client.set(f"{old}:state", b"stale")
        assert await migrate_model_keys(client, model, join, now=2_000.0) == {}
        assert await client.get(f"{old}:state") == b"stale"
        assert await client.get(names.state_key(model)) == b'{"monitors": 3}'
    finally:
        await client.aclose()


async def _keep_new(url: str, model: str) -> None:
    client = async_redis(url, None)
    join = RedisLabelJoin(client, model, ttl_s=1000, max_items=100)
    old, old_join = names.legacy_prefixes(model)
    try:
        await client.set(f"{old}:state", b"old")
        await client.set(f"{old}:deferred", b"request")
        await client.set(names.state_key(model), b"new")  # written since the upgrade
        await join.add_labels([("e1", 0)], now=10.0)  # a label that came to the new join
        p_gen = f"{old_join}:p:{1:012d}"
        await client.hset(p_gen, mapping={"e1": b'{"p":0.4}', "e2": b'{"p":0.6}'})
        await client.zadd(f"{old_join}:pg", {p_gen: 5.0})
        counts = await migrate_model_keys(client, model, join, now=20.0)
        assert counts == {"keys": 1, "kept": 1, "predictions": 2, "labels": 0, "joined": 1}
        assert await client.get(names.state_key(model)) == b"new"
        assert await client.get(names.deferred_key(model)) == b"request"
        assert await client.exists(f"{old}:state", f"{old}:deferred", p_gen) == 0
        stats = await join.stats()
        assert stats["joined"] == 1 and stats["pending_predictions"] == 1
        assert stats["pending_labels"] == 0
    finally:
        await client.aclose()


async def _nothing_old(url: str, model: str) -> None:
    client = async_redis(url, None)
    join = RedisLabelJoin(client, model)
    try:
        counts = await migrate_model_keys(client, model, join, now=0.0)
        assert counts == {"keys": 0, "kept": 0, "predictions": 0, "labels": 0, "joined": 0}
        assert [k async for k in client.scan_iter(match=f"*{model}*")] == [
            names.keys_version_key(model).encode()
        ]
        assert await client.get(names.keys_version_key(model)) == b"2"
    finally:
        await client.aclose()


def test_old_keys_and_join_move_once(any_redis: str, unique: str) -> None:
    asyncio.run(_migrate(any_redis, f"mig-{unique}"))


def test_a_new_key_written_since_the_upgrade_is_kept(any_redis: str, unique: str) -> None:
    asyncio.run(_keep_new(any_redis, f"keep-{unique}"))


def test_a_model_without_old_keys_only_gets_its_marker(any_redis: str, unique: str) -> None:
    asyncio.run(_nothing_old(any_redis, f"fresh-{unique}"))
