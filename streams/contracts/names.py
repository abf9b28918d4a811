"""The names Driftline's processes agree on: Redis keys and Kafka consumer groups.

Each name is spelled here once; every module that reads or writes it calls the helper, so that
a worker, a monitor, the retrainer and the CLI cannot disagree. (Topic names are settings,
``DRIFTLINE_TOPIC_*``.)

Every Redis key of a model ``<name>`` carries the hash tag ``{<name>}``, so that on a Redis
Cluster all of them live in one slot: a Lua script may touch several of them at once, and a
model's state moves between nodes as one piece. Per model:

- ``driftline:{<name>}:state`` — the monitors' snapshot (:mod:`streams.monitors.runtime`);
- ``driftline:{<name>}:health`` — a hash: the monitors' health in field ``monitor``;
- ``driftline:{<name>}:history`` — the capped stream of the monitoring timeline;
- ``driftline:{<name>}:window`` — the stream of recent labelled events (training window);
- ``driftline:{<name>}:paired:<version>`` — paired (champion, shadow) correctness;
- ``driftline:{<name>}:events``, ``:stage``, ``:deferred``, ``:champion_seen`` — the
  retrainer's decisions and state (:mod:`streams.control.lifecycle`, :mod:`streams.control.stages`);
- ``driftline:{<name>}:join:*`` — the label join (:mod:`streams.adapters.redis_join`);
- ``driftline:{<name>}:keys`` — the version of this layout, once the model's keys from before
  it were moved (:mod:`streams.adapters.redis_migrate`).

Shared by every model: ``driftline:alerts``, the capped stream (and channel) of alerts,
deduplicated across workers by ``{driftline:alerts}:dedupe:<name>:...`` keys. Their hash tag
is the stream's whole name, so one script can check a dedupe key and append to the stream.
The alert sinks (:mod:`streams.sinks`) read that stream, one consumer group per sink, and keep
under the same hash tag the alerts each sink delivered (``...:sent:<sink>:<alert_id>``) and the
PagerDuty conditions it left open (``...:open:<sink>``); their health is the hash
``driftline:sinks:health``, one field per sink.

>>> state_key("sea"), health_key("sea"), HEALTH_FIELD
('driftline:{sea}:state', 'driftline:{sea}:health', 'monitor')
>>> join_prefix("sea"), ALERTS_KEY, ALERT_DEDUPE_PREFIX
('driftline:{sea}:join', 'driftline:alerts', '{driftline:alerts}:dedupe:')
>>> scorer_group("sea"), monitors_group("sea"), RETRAINER_GROUP
('driftline-scorer-sea', 'driftline-monitors-sea', 'driftline-retrainer')
>>> scorer_transactional_id("sea", "host-1")
'driftline-scorer-sea-host-1'
>>> sink_group("ops"), sink_delivery_mark("ops", "a1"), sink_open_hash("ops")
('driftline-sink-ops', '{driftline:alerts}:sent:ops:a1', '{driftline:alerts}:open:ops')
"""

from __future__ import annotations

# -- Redis ------------------------------------------------------------------------------------
ALERTS_KEY = "driftline:alerts"
ALERT_DEDUPE_PREFIX = "{driftline:alerts}:dedupe:"
HEALTH_FIELD = "monitor"  # one owner per model: one field of driftline:{<name>}:health
KEYS_VERSION = 2  # the layout above; 1 had no hash tags (see legacy_prefixes)
SINKS_HEALTH_KEY = "driftline:sinks:health"
_ALERTS_TAG = "{driftline:alerts}"  # the alerts stream's slot (its whole name)


def model_prefix(model: str) -> str:
    """The prefix of every key of ``model``, its hash tag included."""
    return f"driftline:{{{model}}}"


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


def pairs_key(model: str, version: str) -> str:
    """The Redis stream of shadow ``version``'s outcomes beside the champion's: entries keep
    their ids when the stream is trimmed, so a reader resumes after the last one it read."""
    return f"{pairs_prefix(model)}:{version}:stream"


def owner_key(model: str) -> str:
    """The ownership epoch of ``model``'s monitors: raised by each process that takes them
    over, and checked inside every write of theirs (a stale owner's writes are refused)."""
    return f"{model_prefix(model)}:owner"


def stepper_key(model: str) -> str:
    """The lease of the one retrainer stepping ``model``'s stage right now."""
    return f"{model_prefix(model)}:stepper"


def request_key(model: str, request_id: str) -> str:
    """Marks retrain request ``request_id`` as given its candidate (by one retrainer)."""
    return f"{model_prefix(model)}:request:{request_id}"


def events_key(model: str) -> str:
    """The stream of ``model``'s lifecycle decisions (written by the retrainer)."""
    return f"{model_prefix(model)}:events"


def stage_key(model: str) -> str:
    """The retrainer's stage of ``model`` (shadow or watch), so that a restart carries on."""
    return f"{model_prefix(model)}:stage"


def deferred_key(model: str) -> str:
    """A retrain request of ``model`` waiting for enough labelled events."""
    return f"{model_prefix(model)}:deferred"


def refit_key(model: str) -> str:
    """The retrainer's refit schedule of ``model`` after a drift-triggered promotion."""
    return f"{model_prefix(model)}:refit"


def champion_seen_key(model: str) -> str:
    """The champion version of ``model`` the retrainer saw last (to notice promotions)."""
    return f"{model_prefix(model)}:champion_seen"


def join_prefix(model: str) -> str:
    """The prefix of ``model``'s label-join keys."""
    return f"{model_prefix(model)}:join"


def keys_version_key(model: str) -> str:
    """Which layout of keys ``model``'s state is in (absent: not yet checked for old keys)."""
    return f"{model_prefix(model)}:keys"


def legacy_prefixes(model: str) -> tuple[str, str]:
    """Where ``model``'s keys lived before hash tags: its state's prefix and its join's.

    >>> legacy_prefixes("sea")
    ('driftline:model:sea', 'driftline:join:sea')
    """
    return f"driftline:model:{model}", f"driftline:join:{model}"


# -- Kafka consumer groups --------------------------------------------------------------------
RETRAINER_GROUP = "driftline-retrainer"


def scorer_group(model: str) -> str:
    """The consumer group whose members share ``model``'s events between their scoring loops."""
    return f"driftline-scorer-{model}"


def scorer_transactional_id(model: str, worker_id: str) -> str:
    """The transactional id of a worker's scoring producer (``exactly_once``): stable across
    the worker's restarts, so that a restarted worker aborts what its predecessor left open."""
    return f"{scorer_group(model)}-{worker_id}"


def monitors_group(model: str) -> str:
    """The consumer group whose members take turns at running ``model``'s monitors."""
    return f"driftline-monitors-{model}"


def sink_delivery_mark(sink: str, alert_id: str) -> str:
    """Set once ``sink`` delivered the alert ``alert_id`` (expires after a week)."""
    return f"{_ALERTS_TAG}:sent:{sink}:{alert_id}"


def sink_open_hash(sink: str) -> str:
    """The hash of the conditions ``sink`` triggered and has not resolved (dedup key → JSON)."""
    return f"{_ALERTS_TAG}:open:{sink}"


def sink_group(sink: str) -> str:
    """The Redis consumer group on the alerts stream that delivers to ``sink``."""
    return f"driftline-sink-{sink}"


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
    "KEYS_VERSION",
    "RETRAINER_GROUP",
    "SINKS_HEALTH_KEY",
    "champion_seen_key",
    "deferred_key",
    "events_key",
    "health_key",
    "history_key",
    "join_prefix",
    "keys_version_key",
    "legacy_prefixes",
    "model_prefix",
    "monitor_app_id",
    "monitors_group",
    "owner_key",
    "pairs_key",
    "pairs_prefix",
    "refit_key",
    "request_key",
    "scorer_group",
    "scorer_transactional_id",
    "sink_delivery_mark",
    "sink_group",
    "sink_open_hash",
    "stage_key",
    "state_key",
    "stepper_key",
    "window_key",
    "worker_app_id",
]
