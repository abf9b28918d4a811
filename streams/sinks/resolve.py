"""PagerDuty incidents resolved when their condition clears: :class:`Resolver`.

A PagerDuty sink with ``resolve`` records each condition it triggered in the hash
``{driftline:alerts}:open:<sink>`` (dedup key → model, kind, feature, the alert's time). A
condition has cleared when the model's monitors published a health (``driftline:{<model>}:
health``, every snapshot interval) later than that trigger which no longer lists an active
finding of that kind and feature: a windowed check stays active until a later window of it
passes, a change detector's finding for its span (:mod:`monitoring.finding_ledger`). The
resolve is sent once; the condition is then forgotten, unless a trigger opened it again
meanwhile. A failed resolve is tried again at the next round.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson

from streams.adapters.redis_client import AsyncClient, as_text
from streams.contracts.names import HEALTH_FIELD, health_key, sink_open_hash
from streams.sinks.status import SinkStatus
from streams.sinks.transports import DeliveryError, Transport

log = logging.getLogger("driftline.sinks")

# KEYS: open hash. ARGV: field, the value read. Forget a resolved condition unless a trigger
# opened it again meanwhile.
_CLOSE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


class Resolver:
    """Resolves the cleared conditions of one sink (see the module docstring)."""

    def __init__(
        self,
        name: str,
        redis: AsyncClient,
        transport: Transport,
        status: SinkStatus,
        interval_s: float,
    ) -> None:
        self.name = name
        self.redis = redis
        self.transport = transport
        self.status = status
        self.interval_s = interval_s
        self._close = redis.register_script(_CLOSE)
        self._last_resolve = 0.0

    async def resolve_cleared(self, force: bool = False) -> None:
        """Resolve the conditions the monitors no longer find, every ``interval_s`` at most."""
        now = time.time()
        if not force and now - self._last_resolve < self.interval_s:
            return
        self._last_resolve = now
        key = sink_open_hash(self.name)
        open_ = {as_text(k): as_text(v) for k, v in (await self.redis.hgetall(key)).items()}
        health: dict[str, Mapping[str, Any] | None] = {}
        for dedup, raw in open_.items():
            cond = orjson.loads(raw)
            model = str(cond["model"])
            if model not in health:
                health[model] = await self._health(model)
            h = health[model]
            if h is None or float(h.get("at") or 0) <= float(cond["at"]):
                continue  # the monitors have not looked again since the trigger
            active = {(f.get("kind"), f.get("feature")) for f in h.get("active") or []}
            if (cond["kind"], cond.get("feature")) in active:
                continue
            try:
                await self.transport.resolve(dedup)
            except DeliveryError as exc:
                self.status.failure(exc, time.time())
                log.warning(
                    "sink %s: cannot resolve %s (%s); next round", self.name, dedup, exc.reason
                )
                continue
            self.status.success(time.time())
            self.status.resolved += 1
            await self._close(keys=[key], args=[dedup, raw])
            log.info("sink %s: resolved %s", self.name, dedup)

    async def _health(self, model: str) -> Mapping[str, Any] | None:
        raw = await self.redis.hget(health_key(model), HEALTH_FIELD)
        try:
            doc = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) else None


__all__ = ["Resolver"]
