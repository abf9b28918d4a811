"""What the console shows, read from the registry and from the Redis state the workers write.

Nothing here writes. Each function takes a blocking Redis client (the console calls them in
a thread, one request at a time each) and returns plain JSON-able values:

- :func:`overview`: every model of the registry with its versions and aliases, its routing
  (off, shadow, canary), the retrainer's stage, and its monitors' health (status, counters,
  active findings) from ``driftline:{<name>}:health``;
- :func:`model_detail`: one model's overview plus its timeline (the monitoring points of
  ``driftline:{<name>}:history``, its alerts, its version changes merged as the report merges
  them) and its lifecycle records (retrain requests, gates, shadow tests, promotions);
- :func:`recent_alerts`: the newest alerts of ``driftline:alerts``, filtered by model and kind,
  each with its stream id (what the live feed resumes from).

The history readers are the report's (:mod:`streams.adapters.redis_history`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson

from models.registry import Registry
from models.report import merge_changes
from streams.adapters.redis_client import SyncClient, as_text
from streams.adapters.redis_history import read_history, registry_changes
from streams.contracts.names import ALERTS_KEY, HEALTH_FIELD, events_key, health_key, stage_key
from streams.scoring.routing import load_routing

MAX_RECORDS = 50  # lifecycle records shown per model, newest first
MAX_ALERTS = 200  # the most alerts one request returns


def _json(raw: Any) -> Any:
    return orjson.loads(raw) if raw else None


def _health(client: SyncClient, name: str) -> dict[str, Any] | None:
    health = _json(client.hget(health_key(name), HEALTH_FIELD))
    if not isinstance(health, dict):
        return None
    keep = ("at", "worker", "status", "version", "events", "labels", "active", "counts")
    return {k: health.get(k) for k in keep}


def summary(registry: Registry, client: SyncClient, name: str) -> dict[str, Any]:
    """One model: versions, aliases, routing, stage and health (None before its monitors ran)."""
    aliases = registry.aliases(name)
    routing = load_routing(registry, name)
    return {
        "name": name,
        "versions": registry.versions(name),
        "aliases": {alias: state.version for alias, state in sorted(aliases.items())},
        "routing": {"mode": routing.mode, "percent": routing.percent},
        "stage": _json(client.get(stage_key(name))),
        "health": _health(client, name),
    }


def overview(registry: Registry, client: SyncClient) -> list[dict[str, Any]]:
    """Every model of the registry, by name (:func:`summary` each)."""
    return [summary(registry, client, name) for name in registry.names()]


def lifecycle_records(client: SyncClient, name: str, count: int = MAX_RECORDS) -> list[Any]:
    """The retrainer's records of ``name`` (request, gates, register, test, promote...),
    newest first."""
    entries: Any = client.xrevrange(events_key(name), count=count)
    return [_json(fields[b"event"]) for _, fields in entries if b"event" in fields]


def model_detail(
    registry: Registry, client: SyncClient, name: str, points: int | None
) -> dict[str, Any]:
    """:func:`summary` plus the timeline (``points`` most recent, all if None) and records.

    Raises
    ------
    models.errors.RegistryError
        ``name`` is not in the registry.
    """
    registry.resolve(name)  # an unknown model is refused before anything is read
    found, alerts, recorded = read_history(client, name, points)
    changes = merge_changes([*registry_changes(registry, name), *recorded], found)
    return {
        **summary(registry, client, name),
        "points": found,
        "alerts": alerts,
        "changes": [asdict(c) for c in changes],
        "records": lifecycle_records(client, name),
    }


def recent_alerts(
    client: SyncClient, *, model: str | None, kind: str | None, count: int
) -> list[dict[str, Any]]:
    """The newest alerts (at most ``count``, newest first) of ``model`` and ``kind`` if given.

    Each is the alert as raised, with ``stream_id``: its id in ``driftline:alerts``.
    """
    out: list[dict[str, Any]] = []
    last = "+"
    while len(out) < count:
        # filtered out alerts cost a page each: read pages until enough matched or none is left
        page: Any = client.xrevrange(ALERTS_KEY, max=last, count=MAX_ALERTS)
        if last != "+":
            page = page[1:]  # the bound is inclusive: its entry was read with the last page
        if not page:
            break
        for entry_id, fields in page:
            alert = _json(fields.get(b"alert"))
            if isinstance(alert, dict) and matches(alert, model, kind):
                out.append({**alert, "stream_id": as_text(entry_id)})
        last = as_text(page[-1][0])
    return out[:count]


def matches(alert: dict[str, Any], model: str | None, kind: str | None) -> bool:
    """Whether ``alert`` is of ``model`` and ``kind`` (either None: any).

    >>> matches({"model": "sea", "kind": "data_drift"}, "sea", None)
    True
    >>> matches({"model": "sea", "kind": "data_drift"}, None, "fairness")
    False
    """
    return (model is None or alert.get("model") == model) and (
        kind is None or alert.get("kind") == kind
    )


__all__ = [
    "MAX_ALERTS",
    "MAX_RECORDS",
    "lifecycle_records",
    "matches",
    "model_detail",
    "overview",
    "recent_alerts",
    "summary",
]
