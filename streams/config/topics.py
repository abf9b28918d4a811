"""The topics Driftline uses and how each is created: partitions, replicas, retention.

One plan for every topic, from the settings and the size of the cluster
(:func:`topic_plan`). Defaults:

- **partitions**: ``DRIFTLINE_TOPIC_PARTITIONS`` (12): as many workers of a model as that
  can share its events (12 divides evenly among 1, 2, 3, 4 or 6 of them).
- **replication factor**: ``DRIFTLINE_TOPIC_REPLICATION_FACTOR``, else min(3, brokers in the
  cluster): one broker per replica, and three survive the loss of one broker with room to spare.
- **min.insync.replicas**: ``DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS``, else the replication
  factor − 1 when that is at least 2 (one broker may be down and every write still lands on
  two), else 1. Every producer sends with ``acks=all``, so a write is acknowledged only once
  that many replicas hold it.
- **retention** per kind of topic (``DRIFTLINE_TOPIC_RETENTION_HOURS``, a JSON object of
  hours by kind, see :class:`Retention`): what is kept is what may still be read. Model updates
  are compacted instead: the last update of each model is what the topic is for.
- **names per model**: the names of the topics that belong to one model (events,
  predictions, labels, monitor input, dead letters) may contain ``{model}``, e.g.
  ``DRIFTLINE_TOPIC_EVENTS={model}.events``: each model then has topics of its own, and a
  worker reads only its model's events and labels. Alerts, retrain requests and model updates
  are shared by every model and keep one name. ``Settings.for_model`` resolves the names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from streams.errors import ConfigError

if TYPE_CHECKING:
    from streams.config.settings import Settings

TopicKind = Literal[
    "events",
    "predictions",
    "labels",
    "monitor",
    "alerts",
    "retrain_requests",
    "model_updates",
    "dlq",
]
TOPIC_KINDS: tuple[TopicKind, ...] = get_args(TopicKind)
HOUR_MS = 3_600_000
COMPACTED: frozenset[TopicKind] = frozenset({"model_updates"})
MODEL_PLACEHOLDER = "{model}"
# The topics one model's events, predictions and labels go through; the others are shared.
PER_MODEL: frozenset[TopicKind] = frozenset({"events", "predictions", "labels", "monitor", "dlq"})
# Kafka's own rule for a topic name (kafka.common.internals.Topic).
_LEGAL = re.compile(r"[a-zA-Z0-9._-]{1,249}")


class Retention(BaseModel):
    """How long each kind of topic keeps its messages, in hours.

    Examples
    --------
    >>> Retention.model_validate({"events": 24}).events
    24.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: float = Field(
        default=168.0, gt=0, description="A week: time to replay or backfill a model."
    )
    predictions: float = Field(default=168.0, gt=0, description="A week, like the events.")
    labels: float = Field(
        default=168.0,
        gt=0,
        description="A week: labels arrive late (up to DRIFTLINE_JOIN_TTL_S) and a model's "
        "label forwarder may be down for a while.",
    )
    monitor: float = Field(
        default=168.0,
        gt=0,
        description="A week: a model's monitors resume from the offset in their snapshot, so "
        "this bounds how long they may be down without losing what the workers sent.",
    )
    alerts: float = Field(default=720.0, gt=0, description="30 days of alerts to look back on.")
    retrain_requests: float = Field(
        default=168.0, gt=0, description="A week: a retrainer down that long still gets them."
    )
    dlq: float = Field(
        default=720.0, gt=0, description="30 days for an operator to read why events failed."
    )


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is to be: its name, partitions, replicas and configs."""

    kind: TopicKind
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


def replication_factor(settings: Settings, brokers: int) -> int:
    """The configured replication factor, else min(3, ``brokers``).

    Examples
    --------
    >>> from streams.config.settings import Settings
    >>> replication_factor(Settings(), 1), replication_factor(Settings(), 5)
    (1, 3)
    """
    if settings.topic_replication_factor is not None:
        return settings.topic_replication_factor
    return max(1, min(3, brokers))


def min_insync_replicas(settings: Settings, factor: int) -> int:
    """The configured ``min.insync.replicas``, else ``factor`` − 1 when that is ≥ 2, else 1.

    Examples
    --------
    >>> from streams.config.settings import Settings
    >>> [min_insync_replicas(Settings(), f) for f in (1, 2, 3, 5)]
    [1, 1, 2, 4]
    """
    if settings.topic_min_insync_replicas is not None:
        return settings.topic_min_insync_replicas
    return factor - 1 if factor - 1 >= 2 else 1


def name_problem(kind: TopicKind, name: str) -> str | None:
    """Why ``name`` cannot name the topic of ``kind``, or None when it can.

    Examples
    --------
    >>> name_problem("events", "{model}.events") is None
    True
    >>> name_problem("alerts", "{model}.alerts")
    'alerts topics are shared by every model, so their name may not contain {model}'
    >>> name_problem("labels", "labels/{user}")
    "'labels/{user}' is not a Kafka topic name: letters, digits, '.', '_', '-' and {model} only"
    """
    if MODEL_PLACEHOLDER in name and kind not in PER_MODEL:
        return f"{kind} topics are shared by every model, so their name may not contain {{model}}"
    if not _LEGAL.fullmatch(name.replace(MODEL_PLACEHOLDER, "m")):
        return (
            f"{name!r} is not a Kafka topic name: letters, digits, '.', '_', '-' and {{model}} only"
        )
    return None


def resolved_name(template: str, model: str) -> str:
    """The topic name ``template`` gives for ``model``.

    Examples
    --------
    >>> resolved_name("{model}.events", "credit"), resolved_name("events", "credit")
    ('credit.events', 'events')
    """
    name = template.replace(MODEL_PLACEHOLDER, model)
    if not _LEGAL.fullmatch(name):
        raise ValueError(f"model {model!r} gives {name!r}, which is not a Kafka topic name")
    return name


def unresolved(settings: Settings) -> list[TopicKind]:
    """The kinds whose topic name still holds ``{model}`` (settings of no one model)."""
    return [k for k in TOPIC_KINDS if MODEL_PLACEHOLDER in getattr(settings, f"topic_{k}")]


def topic_name(settings: Settings, kind: TopicKind) -> str:
    """The configured name of the topic of ``kind``."""
    name: str = getattr(settings, f"topic_{kind}")
    return name


def with_topic_names(settings: Settings, env: Mapping[str, str]) -> Settings:
    """``settings`` with the topic names that ``env`` (``DRIFTLINE_TOPIC_*``) gives.

    For a process that plans the topics of another one it starts (the demo, a test, the
    benchmark) with that process's environment.
    """
    from streams.config.settings import env_name  # settings imports this module

    names = {f"topic_{k}": env[env_name(f"topic_{k}")] for k in TOPIC_KINDS}
    return settings.model_copy(update=names)


def topic_plan(settings: Settings, brokers: int) -> list[TopicSpec]:
    """Every topic Driftline uses, as it is to be created on a cluster of ``brokers``.

    Examples
    --------
    >>> from streams.config.settings import Settings
    >>> plan = {t.kind: t for t in topic_plan(Settings(), brokers=3)}
    >>> plan["events"].replication_factor, plan["events"].configs["min.insync.replicas"]
    (3, '2')
    >>> plan["model_updates"].configs["cleanup.policy"], plan["alerts"].configs["retention.ms"]
    ('compact', '2592000000')
    """
    if pending := unresolved(settings):
        raise ConfigError(
            f"the names of the {', '.join(pending)} topics contain {{model}}: name the model "
            "whose topics these are (--model NAME, or DRIFTLINE_MODEL)"
        )
    factor = replication_factor(settings, brokers)
    insync = str(min_insync_replicas(settings, factor))
    retention = settings.topic_retention_hours
    plan = []
    for kind in TOPIC_KINDS:
        configs = {"min.insync.replicas": insync}
        if kind in COMPACTED:
            configs["cleanup.policy"] = "compact"
        else:
            configs["cleanup.policy"] = "delete"
            configs["retention.ms"] = str(int(getattr(retention, kind) * HOUR_MS))
        name = topic_name(settings, kind)
        plan.append(TopicSpec(kind, name, settings.topic_partitions, factor, configs))
    return plan


__all__ = [
    "COMPACTED",
    "MODEL_PLACEHOLDER",
    "PER_MODEL",
    "TOPIC_KINDS",
    "Retention",
    "TopicKind",
    "TopicSpec",
    "min_insync_replicas",
    "name_problem",
    "replication_factor",
    "resolved_name",
    "topic_name",
    "topic_plan",
    "unresolved",
    "with_topic_names",
]
