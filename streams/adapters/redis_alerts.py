"""Alerts in Redis, deduplicated across every process: :class:`RedisAlertSink`.

An alert is appended to the capped stream ``driftline:alerts`` and published on the channel
of the same name, unless any process raised the same one (model, version, kind, feature)
within the cooldown: one Lua script call per batch of alerts sets the dedupe key
(``driftline:alert:dedupe:<model>:<version>:<kind>:<feature>``, ``SET NX EX``) and writes the
alert in the same atomic step. Keys are named in :mod:`streams.contracts.names`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from streams.contracts.names import ALERT_DEDUPE_PREFIX, ALERTS_KEY

# KEYS: dedupe prefix, alerts stream. ARGV: cooldown_s, maxlen, then (dedupe suffix, json) pairs.
# An alert is appended only when no worker raised the same one within the cooldown.
_EMIT = """
local out = {}
for i = 3, #ARGV, 2 do
  if redis.call('SET', KEYS[1] .. ARGV[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'alert', ARGV[i + 1])
    redis.call('PUBLISH', KEYS[2], ARGV[i + 1])
    out[#out + 1] = ARGV[i + 1]
  end
end
return out
"""


def dedupe_suffix(alert: Mapping[str, Any]) -> str:
    """What makes two alerts the same one: ``<model>:<version>:<kind>:<feature>``."""
    feature = alert.get("feature") or ""
    return f"{alert['model']}:{alert.get('version', '')}:{alert['kind']}:{feature}"


class RedisAlertSink:
    """A :class:`monitoring.state.AlertSink` on the Redis stream and channel of alerts.

    ``cooldown_s`` is how long an alert silences the same one everywhere (at least a second);
    ``maxlen`` caps the stream (approximately).
    """

    def __init__(self, redis: aioredis.Redis, cooldown_s: float, maxlen: int) -> None:
        self.redis = redis
        self.cooldown_s = int(cooldown_s) or 1
        self.maxlen = maxlen
        self._emit = redis.register_script(_EMIT)

    async def emit(self, alerts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Deliver ``alerts`` not raised within the cooldown; return them, in order.

        One script call, whatever the number of alerts.
        """
        if not alerts:
            return []
        args: list[Any] = [self.cooldown_s, self.maxlen]
        by_json: dict[bytes, Mapping[str, Any]] = {}
        for alert in alerts:
            raw = orjson.dumps(alert)
            by_json[raw] = alert
            args += [dedupe_suffix(alert), raw]
        emitted = await self._emit(keys=[ALERT_DEDUPE_PREFIX, ALERTS_KEY], args=args)
        return [by_json[r if isinstance(r, bytes) else r.encode()] for r in emitted]


__all__ = ["RedisAlertSink", "dedupe_suffix"]
