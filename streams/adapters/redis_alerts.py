"""Alerts in Redis, deduplicated across every process: :class:`RedisAlertSink`.

An alert is appended to the capped stream ``driftline:alerts`` and published on the channel
of the same name, unless any process raised the same one (model, version, kind, feature)
within the cooldown: one Lua script call per batch of alerts sets the dedupe key
(``{driftline:alerts}:dedupe:<model>:<version>:<kind>:<feature>``, ``SET NX EX``) and writes
the alert in the same atomic step. Every key the script touches is passed in ``KEYS``, and the
dedupe keys' hash tag is the stream's name: on a Redis Cluster they share the stream's slot.
Keys are named in :mod:`streams.contracts.names`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from streams.adapters.redis_client import AsyncClient
from streams.contracts.names import ALERT_DEDUPE_PREFIX, ALERTS_KEY

# KEYS: alerts stream, then one dedupe key per alert. ARGV: cooldown_s, maxlen, then the
# alerts' JSON in the order of their keys. An alert is appended only when no worker raised the
# same one within the cooldown.
_EMIT = """
local out = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'alert', ARGV[i + 1])
    redis.call('PUBLISH', KEYS[1], ARGV[i + 1])
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

    def __init__(self, redis: AsyncClient, cooldown_s: float, maxlen: int) -> None:
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
        keys: list[str] = [ALERTS_KEY]
        args: list[Any] = [self.cooldown_s, self.maxlen]
        by_json: dict[bytes, Mapping[str, Any]] = {}
        for alert in alerts:
            raw = orjson.dumps(alert)
            by_json[raw] = alert
            keys.append(ALERT_DEDUPE_PREFIX + dedupe_suffix(alert))
            args.append(raw)
        emitted = await self._emit(keys=keys, args=args)
        return [by_json[r if isinstance(r, bytes) else r.encode()] for r in emitted]


__all__ = ["RedisAlertSink", "dedupe_suffix"]
