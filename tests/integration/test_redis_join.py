"""The Redis label join on the session's real redis-server."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from streams.redis_join import RedisLabelJoin
from tests.conftest import Endpoints


async def _scenario(url: str, model: str) -> None:
    client = aioredis.Redis.from_url(url)
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
        # bound: beyond max_items the oldest are evicted
        await join.add_predictions([(f"e{i}", {"i": i}) for i in range(8)], now=300)
        swept = await join.sweep(now=301)
        assert swept["evicted"] == 3
        stats = await join.stats()
        assert stats["pending_predictions"] == 5
        assert stats["joined"] == 2
        assert stats["expired_predictions"] == 1 and stats["evicted"] == 3
        assert await join.add_labels([("e0", 1), ("e7", 0)], now=302) == [("e7", {"i": 7}, 0)]
    finally:
        await client.aclose()


def test_join_in_either_order_with_ttl_and_bound(services: Endpoints, unique: str) -> None:
    asyncio.run(_scenario(services.redis, f"m-{unique}"))
