"""The Redis label join on the session's real redis-server."""

from __future__ import annotations

import asyncio

from streams.adapters.redis_client import async_redis
from streams.adapters.redis_join import RING, RedisLabelJoin


async def _scenario(url: str, model: str) -> None:
    client = async_redis(url, None)
    join = RedisLabelJoin(client, model, ttl_s=100, max_items=5)
    try:
        # prediction first, then its label
        assert await join.add_predictions([("a", {"v": "1", "p": 0.9})], now=0) == []
        assert await join.add_labels([("a", 1)], now=10) == [("a", {"v": "1", "p": 0.9}, 1)]
        # label first, then its prediction
        assert await join.add_labels([("b", 0)], now=20) == []
        assert await join.add_predictions([("b", {"v": "2"})], now=21) == [("b", {"v": "2"}, 0)]
        # a joined event does not join twice
        assert await join.add_labels([("a", 1)], now=22) == []
        # TTL: old entries expire, counted per side
        await join.add_predictions([("old", {"v": "1"})], now=30)
        swept = await join.sweep(now=200)
        assert swept["expired_predictions"] == 1
        assert swept["expired_labels"] == 1  # the second label of "a" never found a prediction
        # bound: beyond max_items the oldest generations go (one entry each here: 5 // 8 < 1)
        for i in range(8):
            await join.add_predictions([(f"e{i}", {"i": i})], now=300)
        swept = await join.sweep(now=301)
        assert swept["evicted"] == 3
        stats = await join.stats()
        assert stats["pending_predictions"] == 5
        assert stats["joined"] == 2
        assert stats["expired_predictions"] == 1 and stats["evicted"] == 3
        assert await join.add_labels([("e0", 1), ("e7", 0)], now=302) == [("e7", {"i": 7}, 0)]
    finally:
        await client.aclose()


async def _generations(url: str, model: str) -> None:
    client = async_redis(url, None)
    # a generation opens every ttl/8 = 10 s or every 16 // 8 = 2 entries
    join = RedisLabelJoin(client, model, ttl_s=80, max_items=16)
    try:
        for t in range(6):  # six batches of two, one generation each
            await join.add_predictions([(f"p{t}a", {"t": t}), (f"p{t}b", {"t": t})], now=t)
        gens = await client.zrange(f"{join.prefix}:pg", 0, -1)
        assert len(gens) == 6
        # labels find their predictions in any generation, once, even when sent twice
        got = await join.add_labels([("p0a", 1), ("p5b", 0), ("p0a", 1), ("zz", 1)], now=10)
        assert sorted((e, p["t"], y) for e, p, y in got) == [("p0a", 0, 1), ("p5b", 5, 0)]
        stats = await join.stats()
        assert stats["joined"] == 2
        assert stats["pending_predictions"] == 10 and stats["pending_labels"] == 1
        # expiry drops whole generations not written since the cutoff, counting what is left
        swept = await join.sweep(now=82.5)  # cutoff 2.5: generations written at 0, 1, 2
        assert swept["expired_predictions"] == 5  # p0b, p1a, p1b, p2a, p2b
        assert (await join.stats())["pending_predictions"] == 5
        assert await join.add_labels([("p1a", 1)], now=83) == []
    finally:
        await client.aclose()


async def _bound(url: str, model: str) -> None:
    client = async_redis(url, None)
    join = RedisLabelJoin(client, model, ttl_s=80, max_items=16)  # generations of 2 entries
    try:
        for t in range(20):  # 40 entries in 20 generations: 24 beyond the bound
            await join.add_predictions([(f"p{t}a", {"t": t}), (f"p{t}b", {"t": t})], now=t)
        swept = await join.sweep(now=20)  # nothing has expired yet
        assert swept == {"expired_predictions": 0, "expired_labels": 0, "evicted": 24}
        assert (await join.stats())["pending_predictions"] == 16
        assert len(await client.zrange(f"{join.prefix}:pg", 0, -1)) == 8
        got = await join.add_labels([("p11b", 1), ("p12a", 0)], now=21)
        assert [(e, p["t"], y) for e, p, y in got] == [("p12a", 12, 0)]  # p11 was evicted
        # a batch larger than the bound: its generation goes whole once newer ones exist
        await join.add_predictions([(f"big{i}", {"i": i}) for i in range(20)], now=22)
        await join.add_predictions([("last", {"i": -1})], now=23)
        swept = await join.sweep(now=23)
        assert swept["evicted"] == 15 + 20  # the 15 older entries, then the big generation
        assert (await join.stats())["pending_predictions"] == 1
    finally:
        await client.aclose()


async def _ring(url: str, model: str) -> None:
    client = async_redis(url, None)
    join = RedisLabelJoin(client, model, ttl_s=800, max_items=16)  # 2 entries fill a generation
    try:
        for t in range(40):  # 32 generations fill the ring; the last one then keeps growing
            await join.add_predictions([(f"p{t}a", {"t": t}), (f"p{t}b", {"t": t})], now=t / 100)
        assert await client.zcard(f"{join.prefix}:pg") == RING
        stats = await join.stats()
        assert stats["pending_predictions"] == 80 and stats["evicted"] == 0
        # an eighth of the TTL later the next generation opens where the oldest one was
        await join.add_predictions([("late", {"t": -1})], now=200)
        stats = await join.stats()
        assert stats["evicted"] == 2 and stats["pending_predictions"] == 79
        got = await join.add_labels([("p0a", 1), ("p1a", 0), ("p39b", 1), ("late", 0)], now=201)
        assert sorted(e for e, _, _ in got) == ["late", "p1a", "p39b"]  # p0 went with its slot
    finally:
        await client.aclose()


def test_a_full_ring_grows_its_newest_generation_until_time_rolls_it(
    any_redis: str, unique: str
) -> None:
    asyncio.run(_ring(any_redis, f"r-{unique}"))


def test_whole_generations_go_beyond_the_bound(any_redis: str, unique: str) -> None:
    asyncio.run(_bound(any_redis, f"b-{unique}"))


def test_generations_join_once_and_expire_whole(any_redis: str, unique: str) -> None:
    asyncio.run(_generations(any_redis, f"g-{unique}"))


def test_join_in_either_order_with_ttl_and_bound(any_redis: str, unique: str) -> None:
    asyncio.run(_scenario(any_redis, f"m-{unique}"))


async def _large(url: str, model: str) -> None:
    client = async_redis(url, None)
    join = RedisLabelJoin(client, model, ttl_s=1000, max_items=100_000)
    n = 20_000  # several slices of Lua's unpack() limit, on every path of the script
    try:
        half = [(f"e{i}", i) for i in range(n // 2)]
        assert await join.add_labels(half, now=0) == []  # labels first for half of them
        lines = [b'{"i":%d}' % i for i in range(n)]
        joined = await join.add_prediction_lines([f"e{i}" for i in range(n)], lines, now=1)
        assert sorted((e, p["i"], y) for e, p, y in joined) == [(e, y, y) for e, y in sorted(half)]
        rest = [(f"e{i}", i) for i in range(n // 2, n)]
        later = await join.add_labels(rest, now=2)
        assert len(later) == n // 2 and all(p["i"] == y for _, p, y in later)
        stats = await join.stats()
        assert stats["joined"] == n
        assert stats["pending_predictions"] == 0 and stats["pending_labels"] == 0
    finally:
        await client.aclose()


def test_a_batch_larger_than_a_script_slice_joins_whole(any_redis: str, unique: str) -> None:
    asyncio.run(_large(any_redis, f"big-{unique}"))
