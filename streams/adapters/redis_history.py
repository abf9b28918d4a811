"""A model's live history as the workers and the retrainer left it in Redis, read back.

What the report (``driftline report``) and the console (``driftline ui``) show over time: the
monitoring points of ``driftline:{<name>}:history`` (written by
:class:`~streams.monitors.runtime.MonitorRuntime`), the model's alerts in ``driftline:alerts``,
its lifecycle records in ``driftline:{<name>}:events`` (written by the retrainer), the
registry's own alias history (promotions and rollbacks made by hand), and the per-slice
metrics of the monitors' health. Plain blocking reads: both callers are short-lived requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from models.registry import Registry
from models.report import VersionChange
from streams.adapters.redis_client import SyncClient
from streams.contracts.names import ALERTS_KEY, HEALTH_FIELD, events_key, health_key, history_key

LIFECYCLE = ("promote", "rollback", "reject", "register")


def epoch(iso: Any) -> float | None:
    """An ISO-8601 time as UNIX seconds, or None when it is not one."""
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return None


def lifecycle_change(record: Mapping[str, Any]) -> VersionChange | None:
    """A version change from a lifecycle record (registry history), or None for other kinds."""
    kind, at = record.get("kind"), epoch(record.get("at"))
    if kind not in LIFECYCLE or at is None or record.get("version") is None:
        return None
    version, reason = str(record["version"]), str(record.get("reason") or "")
    if kind == "rollback":  # the record names the version rolled back, and the one restored
        return VersionChange(at, "rollback", str(record.get("restored", "?")), version, reason)
    previous = record.get("previous")
    return VersionChange(
        at, str(kind), version, None if previous is None else str(previous), reason
    )


def registry_changes(registry: Registry, name: str) -> list[VersionChange]:
    """Champion promotions and rollbacks recorded by the registry itself."""
    state = registry.aliases(name).get("champion")
    out = []
    for event in state.history if state else []:
        at = epoch(event.at)
        if at is not None:
            out.append(VersionChange(at, event.action, event.version, event.previous))
    return out


def read_history(
    client: SyncClient, name: str, points: int | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[VersionChange]]:
    """History points, alerts (from the oldest point on, if any) and lifecycle changes."""
    key = history_key(name)
    if points:
        newest: Any = client.xrevrange(key, count=points)
        raw: Any = newest[::-1]
    else:
        raw = client.xrange(key)
    found = [orjson.loads(fields[b"point"]) for _, fields in raw if b"point" in fields]
    # stream ids are millisecond timestamps: read alerts from an hour before the oldest point
    start = f"{max(int(found[0]['at'] * 1000) - 3_600_000, 0)}" if found else "-"
    entries: Any = client.xrange(ALERTS_KEY, min=start)
    alerts = [orjson.loads(f[b"alert"]) for _, f in entries if b"alert" in f]
    records: Any = client.xrange(events_key(name))
    changes = [lifecycle_change(orjson.loads(f[b"event"])) for _, f in records if b"event" in f]
    return (
        found,
        [a for a in alerts if a.get("model") == name],
        [c for c in changes if c is not None],
    )


def read_slices(client: SyncClient, name: str) -> dict[str, Any]:
    """Per ``"<version>/<variant>"``, the slices in the monitors' health now (empty when
    they do not slice or have written no health yet)."""
    raw: Any = client.hget(health_key(name), HEALTH_FIELD)
    metrics = (orjson.loads(raw) if raw else {}).get("metrics") or {}
    return {scope: m["slices"] for scope, m in metrics.items() if m.get("slices")}


__all__ = [
    "LIFECYCLE",
    "epoch",
    "lifecycle_change",
    "read_history",
    "read_slices",
    "registry_changes",
]
