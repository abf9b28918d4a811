"""What the retrainer keeps of every model's lifecycle: its decisions and its current stage.

Every decision is written to the registry history, to ``driftline:{<name>}:events`` in Redis
(and, with ``DRIFTLINE_HISTORY_DB``, to the SQL history sink) and, when it changes what
workers serve, as a :class:`~streams.contracts.messages.ModelUpdate` to ``model-updates``.
The stage (shadow or watch) lives in ``driftline:{<name>}:stage`` so that a restarted
retrainer carries on where the last one stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from models.history import History
from models.registry import Registry
from streams.adapters.redis_client import async_redis
from streams.adapters.sql_history import SqlHistory
from streams.config.settings import Settings
from streams.contracts.messages import ModelUpdate
from streams.contracts.names import events_key, stage_key

log = logging.getLogger("driftline.retrainer")

Publish = Callable[[ModelUpdate], Awaitable[None]]
"""Announce one update on ``model-updates`` and wait for the broker's ack."""


class Lifecycle:
    """The registry, the history and the Redis state the retrainer's decisions go to.

    ``publish`` is set by whoever owns a producer (the retrainer's Faust app, once built);
    without it a decision is recorded but not announced (workers still re-read the registry
    every ``reload_interval_s``).
    """

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.registry = Registry(settings.registry)
        self.history = History(settings.registry)
        self.redis = async_redis(redis_url, settings)
        self.publish: Publish | None = None
        self.sql: SqlHistory | None = (
            SqlHistory(settings.history_db, settings.history_flush_s)
            if settings.history_db
            else None
        )

    async def record(
        self, model: str, kind: str, *, update: ModelUpdate | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Write one decision to the history, Redis and (with ``update``) model-updates."""
        entry = self.history.record(model, kind, **fields)
        await self.redis.xadd(events_key(model), {"event": orjson.dumps(entry)}, maxlen=10_000)
        if self.sql is not None:
            self.sql.add_event(entry)
            await self.sql.flush()  # when the batch is due; the stage timer flushes the rest
        if update is not None and self.publish is not None:
            await self.publish(update)
        log.info("%s %s %s", model, kind, {k: v for k, v in fields.items() if k != "gates"})
        return entry

    async def stage(self, model: str) -> dict[str, Any]:
        """The stage a model is in (empty when none)."""
        raw = await self.redis.get(stage_key(model))
        return orjson.loads(raw) if raw else {}

    async def set_stage(self, model: str, **state: Any) -> None:
        """Enter (or update) the model's stage."""
        await self.redis.set(stage_key(model), orjson.dumps(state))

    async def clear_stage(self, model: str) -> None:
        """Leave the model's stage: it is in none."""
        await self.redis.delete(stage_key(model))


__all__ = ["Lifecycle", "Publish"]
