"""Topics on the cluster as the plan says: created when missing, reported when they differ.

:func:`ensure_topics` creates each missing topic of :func:`~streams.config.topics.topic_plan`
with its partitions, replicas and configs, and compares every existing one with the plan.
Nothing that exists is changed: a topic with fewer partitions, fewer replicas, a lower
``min.insync.replicas``, a shorter retention or another cleanup policy than planned is a
:class:`Difference`, and :func:`refuse_weaker` stops a process that would otherwise use it
silently (``driftline topics check`` prints the plan and every difference).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from streams.adapters.kafka_admin import client_options, diagnose
from streams.config.settings import Settings
from streams.config.topics import TopicSpec, topic_plan
from streams.errors import ConfigError, ServiceError

CHECKED_CONFIGS = ("min.insync.replicas", "cleanup.policy", "retention.ms")


@dataclass(frozen=True)
class Found:
    """A topic as it is on the cluster."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


@dataclass(frozen=True)
class Difference:
    """One way an existing topic differs from the plan.

    ``weaker``: it keeps less, survives fewer broker losses or spreads over fewer workers
    than planned (more partitions or a longer retention are differences that are not).
    """

    topic: str
    what: str
    planned: str
    found: str
    weaker: bool

    def describe(self) -> str:
        """One line for an operator."""
        mark = "weaker" if self.weaker else "differs"
        return f"{self.topic}: {self.what} is {self.found}, planned {self.planned} ({mark})"


@dataclass
class TopicReport:
    """What :func:`ensure_topics` found and did."""

    brokers: int
    plan: list[TopicSpec]
    created: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    @property
    def weaker(self) -> list[Difference]:
        """The differences that make a topic weaker than planned."""
        return [d for d in self.differences if d.weaker]


def _retention(value: str) -> float:
    number = int(value)
    return float("inf") if number < 0 else float(number)  # -1: kept forever


def differences(spec: TopicSpec, found: Found) -> list[Difference]:
    """How ``found`` differs from ``spec``.

    Examples
    --------
    >>> spec = TopicSpec("events", "events", 4, 3, {"min.insync.replicas": "2"})
    >>> found = Found("events", 4, 1, {"min.insync.replicas": "1"})
    >>> [d.describe() for d in differences(spec, found)]  # doctest: +NORMALIZE_WHITESPACE
    ['events: replication factor is 1, planned 3 (weaker)',
     'events: min.insync.replicas is 1, planned 2 (weaker)']
    """
    out: list[Difference] = []

    def differ(what: str, planned: object, got: object, weaker: bool) -> None:
        out.append(Difference(spec.name, what, str(planned), str(got), weaker))

    if found.partitions != spec.partitions:
        differ("partitions", spec.partitions, found.partitions, found.partitions < spec.partitions)
    if found.replication_factor != spec.replication_factor:
        weaker = found.replication_factor < spec.replication_factor
        differ("replication factor", spec.replication_factor, found.replication_factor, weaker)
    for key, planned in spec.configs.items():
        got = found.configs.get(key)
        if got is None or got == planned:
            continue
        if key == "retention.ms":
            weaker = _retention(got) < _retention(planned)
        elif key == "min.insync.replicas":
            weaker = int(got) < int(planned)
        else:
            weaker = True  # another cleanup policy deletes what the plan keeps, or the reverse
        differ(key, planned, got, weaker)
    return out


async def inspect_topics(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, Found]:
    """The partitions, replication factor and checked configs of existing topics ``names``."""
    if not names:
        return {}
    described = await admin.describe_topics(list(names))
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    configs: dict[str, dict[str, str]] = {n: {} for n in names}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            entries = resource["config_entries"]
            configs[resource["resource_name"]] = {
                e["config_names"]: e["config_value"]
                for e in entries
                if e["config_names"] in CHECKED_CONFIGS
            }
    found: dict[str, Found] = {}
    for topic in described:
        parts = topic["partitions"]
        factor = min((len(p["replicas"]) for p in parts), default=0)
        found[topic["topic"]] = Found(topic["topic"], len(parts), factor, configs[topic["topic"]])
    return found


async def _create(admin: AIOKafkaAdminClient, specs: Iterable[TopicSpec]) -> None:
    new = [
        NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.configs))
        for s in specs
    ]
    if not new:
        return
    response = await admin.create_topics(new)
    # Another process winning the race is fine: the topic is there, and is compared below.
    failed = {
        name: (code, message)
        for name, code, message in (e[:3] for e in response.topic_errors)
        if code not in (0, TopicAlreadyExistsError.errno)
    }
    if failed:
        raise ServiceError("kafka", f"cannot create topics: {failed} (error code, message)")


async def ensure_topics(
    bootstrap: str,
    settings: Settings,
    *,
    create: bool = True,
    only: Sequence[str] | None = None,
    timeout_s: float = 30.0,
) -> TopicReport:
    """Create the planned topics that are missing (unless ``create`` is false) and compare
    every planned topic that exists with the plan.

    ``only``: these topics instead of the configured ones (a test's or a benchmark's), each
    planned like the events topic.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        **client_options(settings),
    )
    try:
        await admin.start()
        brokers = len((await admin.describe_cluster())["brokers"])
        plan = topic_plan(settings, brokers)
        if only is not None:
            plan = [_like(plan[0], name) for name in dict.fromkeys(only)]
        report = TopicReport(brokers=brokers, plan=plan)
        existing = set(await admin.list_topics())
        missing = [s for s in plan if s.name not in existing]
        if create:
            await _create(admin, missing)
            report.created = [s.name for s in missing]
        else:
            report.missing = [s.name for s in missing]
        present = [s for s in plan if s.name in existing]
        found = await inspect_topics(admin, list(dict.fromkeys(s.name for s in present)))
        for spec in present:
            report.differences += differences(spec, found[spec.name])
        return report
    except KafkaError as exc:
        reason = (
            await diagnose(bootstrap, settings) if isinstance(exc, KafkaConnectionError) else ""
        )
        raise ServiceError(
            "kafka", f"cannot check the topics on {bootstrap}: {reason or exc}"
        ) from exc
    finally:
        await admin.close()


def _like(spec: TopicSpec, name: str) -> TopicSpec:
    return TopicSpec(spec.kind, name, spec.partitions, spec.replication_factor, spec.configs)


async def create_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    settings: Settings | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create each of ``topics`` that does not exist yet, planned like the events topic with
    ``partitions`` partitions; return those created.

    Topics are always created explicitly: a broker that auto-creates them may pick another
    partition count than the one the app expects.
    """
    base = settings if settings is not None else Settings()
    shaped = base.model_copy(update={"topic_partitions": partitions})
    report = await ensure_topics(bootstrap, shaped, only=list(topics), timeout_s=timeout_s)
    return report.created


def refuse_weaker(report: TopicReport) -> None:
    """Raise :class:`~streams.errors.ConfigError` naming every topic weaker than planned."""
    if report.weaker:
        lines = "; ".join(d.describe() for d in report.weaker)
        raise ConfigError(
            f"existing topics are weaker than planned, and Driftline does not use them "
            f"silently: {lines}. See `driftline topics check`; recreate or alter them, or set "
            f"the DRIFTLINE_TOPIC_* settings to what they are"
        )


def plan_rows(report: TopicReport) -> list[dict[str, Any]]:
    """The plan as rows for printing: one per topic, with its differences."""
    by_topic: dict[str, list[str]] = {}
    for d in report.differences:
        by_topic.setdefault(d.topic, []).append(d.describe())
    return [
        {
            "topic": s.name,
            "kind": s.kind,
            "partitions": s.partitions,
            "replication_factor": s.replication_factor,
            "configs": dict(s.configs),
            "created": s.name in report.created,
            "missing": s.name in report.missing,
            "differences": by_topic.get(s.name, []),
        }
        for s in report.plan
    ]


__all__ = [
    "CHECKED_CONFIGS",
    "Difference",
    "Found",
    "TopicReport",
    "create_topics",
    "differences",
    "ensure_topics",
    "inspect_topics",
    "plan_rows",
    "refuse_weaker",
]
