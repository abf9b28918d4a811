"""The state path of a model's monitors: the snapshot, health and history in Redis.

- the snapshot (``driftline:{<name>}:state``): the monitors, the alert and retrain
  policies, the online challenger and the next ``monitor-input`` offset, in the format
  documented in :mod:`monitoring.monitor_snapshot`, saved through a
  :class:`monitoring.state.StateStore` (one atomic ``SET`` in Redis) and read back when a
  process takes the monitors over;
- health (``driftline:{<name>}:health``, field ``monitor``) and, every
  ``history_interval_s``, one compact history point (:mod:`monitoring.timeline`) on
  ``driftline:{<name>}:history``: one round trip; with ``DRIFTLINE_HISTORY_DB``, the point
  also goes to the SQL history sink (:mod:`streams.adapters.sql_history`).
"""

from __future__ import annotations

from typing import Any

import orjson

from monitoring.alerts import AlertPolicy
from monitoring.challenger import OnlineChallenger
from monitoring.model_monitor import ModelMonitor
from monitoring.retrain_policy import RetrainPolicy
from monitoring.state import StateStore, load_state, save_state
from monitoring.timeline import history_point
from streams.adapters.redis_state import RedisMonitorRecords
from streams.adapters.sql_history import SqlHistory
from streams.monitors.guard import RedisGuard


class Parts:
    """What a snapshot holds, besides the input offset: the stateful parts of the monitors."""

    def __init__(
        self,
        monitor: ModelMonitor,
        policy: AlertPolicy,
        retrain: RetrainPolicy,
        challenger: OnlineChallenger | None,
    ) -> None:
        self.monitor = monitor
        self.policy = policy
        self.retrain = retrain
        self.challenger = challenger

    def snapshot(self, input_next: int | None, now: float) -> dict[str, Any]:
        """The JSON-able snapshot of every part, with ``input_next`` and the time."""
        return {
            "monitor": self.monitor.snapshot(),
            "policy": self.policy.snapshot(),
            "retrain": self.retrain.snapshot(),
            "challenger": self.challenger.snapshot() if self.challenger else None,
            "input_next": input_next,
            "at": now,
        }

    def restore(self, state: dict[str, Any]) -> int | None:
        """Continue every part from a :meth:`snapshot`; the ``input_next`` it holds."""
        self.monitor.restore(state["monitor"])
        self.policy.restore(state["policy"])
        self.retrain.restore(state.get("retrain", {}))
        if self.challenger is not None and state.get("challenger"):
            self.challenger.restore(state["challenger"])
        input_next: int | None = state.get("input_next")
        return input_next


class StatePath:
    """Saves and loads the snapshot, publishes health and history, through ``guard``."""

    def __init__(
        self,
        store: StateStore,
        key: str,
        records: RedisMonitorRecords,
        guard: RedisGuard,
        history_interval_s: float,
        history: SqlHistory | None = None,
        model: str = "",
    ) -> None:
        self.store = store
        self.history = history
        self.model = model
        self.key = key
        self.records = records
        self.guard = guard
        self.history_interval_s = history_interval_s
        self.last_history = 0.0

    async def load(self) -> tuple[bool, dict[str, Any] | None]:
        """(whether the store answered, the snapshot or None when there is none)."""
        state = await self.guard("load", load_state(self.store, self.key))
        if state is None and self.guard.degraded is not None:
            return False, None
        return True, state

    async def save(self, state: dict[str, Any]) -> None:
        """Replace the snapshot (atomic); a Redis failure degrades."""
        await self.guard("snapshot", save_state(self.store, self.key, state))

    async def publish(
        self, health: dict[str, Any], monitor: ModelMonitor, champion: str, now: float
    ) -> None:
        """Write ``health`` and, once per interval, a history point: one round trip."""
        point = None
        if now - self.last_history >= self.history_interval_s:
            self.last_history = now
            made = history_point(health, monitor.drift_statistics(), champion)
            point = orjson.dumps(made)
            if self.history is not None:
                self.history.add_point(self.model, made)
        await self.guard("health", self.records.publish(orjson.dumps(health), point))
        if self.history is not None:
            await self.history.flush()  # when the batch is due; a failure stays in the sink


__all__ = ["Parts", "StatePath"]
