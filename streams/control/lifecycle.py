"""What the retrainer keeps of every model's lifecycle: its decisions and its current stage.

Every decision is written to the registry history, to ``driftline:{<name>}:events`` in Redis
(and, with ``DRIFTLINE_HISTORY_DB``, to the SQL history sink) and, when it changes what
workers serve, as a :class:`~streams.contracts.messages.ModelUpdate` to ``model-updates``.
The stage (shadow or watch) lives in ``driftline:{<name>}:stage`` so that a restarted
retrainer carries on where the last one stopped.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from models.history import History
from models.registry import Registry
from streams.adapters.redis_client import async_redis
from streams.adapters.sql_history import SqlHistory
from streams.config.settings import Settings
from streams.contracts.messages import ModelUpdate
from streams.contracts.names import events_key, request_key, stage_key, stepper_key

log = logging.getLogger("driftline.retrainer")

# Deletes a lease only while it is still the caller's (one key: one Redis Cluster slot).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Sets a stage only while the stage is still what the caller saw (none: ARGV[2] empty).
_SWAP = """
local current = redis.call('GET', KEYS[1])
if (ARGV[2] == '' and not current) or current == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
REQUEST_MEMORY_S = 7 * 86_400  # how long a request's candidate is remembered

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
        self._release = self.redis.register_script(_RELEASE)
        self._swap = self.redis.register_script(_SWAP)
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
        raw = await self.stage_raw(model)
        return orjson.loads(raw) if raw else {}

    async def stage_raw(self, model: str) -> bytes | None:
        """The model's stage as stored (None when none): what a compare-and-set compares."""
        raw = await self.redis.get(stage_key(model))
        return raw.encode() if isinstance(raw, str) else raw

    async def set_stage(self, model: str, **state: Any) -> None:
        """Enter (or update) the model's stage."""
        await self.redis.set(stage_key(model), orjson.dumps(state))

    async def clear_stage(self, model: str) -> None:
        """Leave the model's stage: it is in none."""
        await self.redis.delete(stage_key(model))

    # -- one action per decision, however many retrainers run -------------------------
    async def lease(self, model: str, ttl_s: float) -> str | None:
        """Take the lease of stepping ``model`` for ``ttl_s``: its token, or None while
        another retrainer holds it."""
        token = uuid.uuid4().hex
        taken = await self.redis.set(stepper_key(model), token, nx=True, px=int(ttl_s * 1000))
        return token if taken else None

    async def release(self, model: str, token: str) -> None:
        """Give the lease back, if it is still ours."""
        await self._release(keys=[stepper_key(model)], args=[token])

    async def claim_stage(
        self, model: str, request_id: str, over: bytes | None = None, **carry: Any
    ) -> bool:
        """Enter the ``staging`` phase (a candidate is being registered) when ``model`` is in
        no stage, or (``over``) still in exactly the stage the caller saw; False otherwise
        (another candidate, a watch, a step since). ``carry`` is kept in the staging state
        (a watch the candidate's stage goes on with)."""
        state = {"phase": "staging", "request_id": request_id, "since": time.time(), **carry}
        taken = await self._swap(keys=[stage_key(model)], args=[orjson.dumps(state), over or b""])
        return bool(taken)

    async def restore_stage(self, model: str, raw: bytes | None) -> None:
        """Put back the stage a claim replaced (none when ``raw`` is None)."""
        if raw is None:
            await self.clear_stage(model)
        else:
            await self.redis.set(stage_key(model), raw)

    async def claim_request(self, model: str, request_id: str) -> bool:
        """Mark ``request_id`` as given its candidate; False when a retrainer already did."""
        key = request_key(model, request_id)
        return bool(await self.redis.set(key, b"1", nx=True, ex=REQUEST_MEMORY_S))


__all__ = ["Lifecycle", "Publish"]
