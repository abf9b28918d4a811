"""The names Driftline's processes agree on: Redis keys and Kafka consumer groups.

Each name is spelled here once; every module that reads or writes it calls the helper, so that
a worker, a monitor, the retrainer and the CLI cannot disagree. (Topic names are settings,
``DRIFTLINE_TOPIC_*``.) Redis keys, per model ``<name>``:

- ``driftline:model:<name>:state`` — the monitors' snapshot (:mod:`streams.monitors.runtime`);
- ``driftline:model:<name>:health`` — a hash: the monitors' health in field ``monitor``;
- ``driftline:model:<name>:history`` — the capped stream of the monitoring timeline;
- ``driftline:model:<name>:window`` — the stream of recent labelled events (training window);
- ``driftline:model:<name>:paired:<version>`` — paired (champion, shadow) correctness;
- ``driftline:model:<name>:events``, ``:stage``, ``:deferred``, ``:champion_seen`` — the
  retrainer's decisions and state (:mod:`streams.control.lifecycle`, :mod:`streams.control.stages`);
- ``driftline:join:<name>:*`` — the label join (:mod:`streams.adapters.redis_join`);
- ``driftline:alerts`` — the capped stream (and channel) of every model's alerts, deduplicated
  across workers by ``driftline:alert:dedupe:<name>:...`` keys.

>>> state_key("sea"), health_key("sea"), HEALTH_FIELD
('driftline:model:sea:state', 'driftline:model:sea:health', 'monitor')
>>> join_prefix("sea"), ALERTS_KEY
('driftline:join:sea', 'driftline:alerts')
>>> scorer_group("sea"), monitors_group("sea"), RETRAINER_GROUP
('driftline-scorer-sea', 'driftline-monitors-sea', 'driftline-retrainer')
"""

from __future__ import annotations

# -- Redis ------------------------------------------------------------------------------------
ALERTS_KEY = "driftline:alerts"
ALERT_DEDUPE_PREFIX = "driftline:alert:dedupe:"
HEALTH_FIELD = "monitor"  # one owner per model: one field of driftline:model:<name>:health


def model_prefix(model: str) -> str:
    """The prefix of every key of ``model`` but its label join's."""
    return f"driftline:model:{model}"


def state_key(model: str) -> str:
    """The monitors' snapshot of ``model`` (JSON, written with one ``SET``)."""
    return f"{model_prefix(model)}:state"


def health_key(model: str) -> str:
    """The hash of ``model``'s health summaries (the monitors' in field ``HEALTH_FIELD``)."""
    return f"{model_prefix(model)}:health"


def window_key(model: str) -> str:
    """The Redis stream of the most recent labelled events of ``model`` (training window)."""
    return f"{model_prefix(model)}:window"


def history_key(model: str) -> str:
    """The capped Redis stream of ``model``'s monitoring timeline (one point per interval)."""
    return f"{model_prefix(model)}:history"


def pairs_prefix(model: str) -> str:
    """Prefix of the lists of paired (champion, shadow) correctness, one per shadow version."""
    return f"{model_prefix(model)}:paired"


def events_key(model: str) -> str:
    """The stream of ``model``'s lifecycle decisions (written by the retrainer)."""
    return f"{model_prefix(model)}:events"


def stage_key(model: str) -> str:
    """The retrainer's stage of ``model`` (shadow or watch), so that a restart carries on."""
    return f"{model_prefix(model)}:stage"


def deferred_key(model: str) -> str:
    """A retrain request of ``model`` waiting for enough labelled events."""
    return f"{model_prefix(model)}:deferred"


def champion_seen_key(model: str) -> str:
    """The champion version of ``model`` the retrainer saw last (to notice promotions)."""
    return f"{model_prefix(model)}:champion_seen"


def join_prefix(model: str) -> str:
    """The prefix of ``model``'s label-join keys."""
    return f"driftline:join:{model}"


# -- Kafka consumer groups --------------------------------------------------------------------
RETRAINER_GROUP = "driftline-retrainer"


def scorer_group(model: str) -> str:
    """The consumer group whose members share ``model``'s events between their scoring loops."""
    return f"driftline-scorer-{model}"


def monitors_group(model: str) -> str:
    """The consumer group whose members take turns at running ``model``'s monitors."""
    return f"driftline-monitors-{model}"


def worker_app_id(model: str) -> str:
    """The Faust app (and consumer group of its agents) of ``model``'s scoring workers."""
    return f"driftline-worker-{model}"


def monitor_app_id(model: str) -> str:
    """The Faust app of ``driftline monitor``, a process of its own for ``model``'s monitors."""
    return f"driftline-monitor-{model}"


__all__ = [
    "ALERTS_KEY",
    "ALERT_DEDUPE_PREFIX",
    "HEALTH_FIELD",
    "RETRAINER_GROUP",
    "champion_seen_key",
    "deferred_key",
    "events_key",
    "health_key",
    "history_key",
    "join_prefix",
    "model_prefix",
    "monitor_app_id",
    "monitors_group",
    "pairs_prefix",
    "scorer_group",
    "stage_key",
    "state_key",
    "window_key",
    "worker_app_id",
]
