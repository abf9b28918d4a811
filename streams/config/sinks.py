"""Where alerts go: the sinks of ``DRIFTLINE_SINKS``, validated when the settings load.

``DRIFTLINE_SINKS`` is a JSON object, sink name → sink. Each sink has a ``type`` (``webhook``,
``slack``, ``pagerduty`` or ``smtp``), what it needs to reach its receiver, and its routing:
``models`` and ``kinds`` (empty: all) and ``min_severity`` (alerts below it are not sent).
Delivery is tuned per sink: ``timeout_s`` per attempt, a backoff from ``first_backoff_s``
doubling up to ``max_backoff_s`` between attempts, and ``failing_after`` consecutive failed
attempts before health and metrics report the sink failing. For example::

    {"ops": {"type": "webhook", "url": "https://hooks.example.com/driftline"},
     "chat": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/X",
              "kinds": ["data_drift", "performance"]},
     "pager": {"type": "pagerduty", "routing_key": "R0UT1NGKEY", "min_severity": "error"},
     "mail": {"type": "smtp", "host": "smtp.example.com", "port": 587, "starttls": true,
              "sender": "driftline@example.com", "to": ["oncall@example.com"],
              "username": "driftline", "password": "..."}}

Secrets (a Slack URL, a routing key, a password, header values) are
:class:`pydantic.SecretStr`, masked wherever settings are shown.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from monitoring.findings import FindingKind

Severity = Literal["info", "warning", "error", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")
SinkName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
    return url


def _secret_http_url(url: SecretStr) -> SecretStr:
    try:
        _http_url(url.get_secret_value())
    except ValueError:
        # the URL is the secret: say what is wrong without quoting it
        raise ValueError("expected an http:// or https:// URL with a host") from None
    return url


HttpUrl = Annotated[str, AfterValidator(_http_url)]
SecretHttpUrl = Annotated[SecretStr, AfterValidator(_secret_http_url)]


class _Sink(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[str, ...] = Field(default=(), description="Models routed here; empty: all.")
    kinds: tuple[FindingKind, ...] = Field(default=(), description="Kinds routed; empty: all.")
    min_severity: Severity = "info"
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    first_backoff_s: float = Field(default=1.0, gt=0, le=3600)
    max_backoff_s: float = Field(default=60.0, gt=0, le=3600)
    failing_after: int = Field(default=3, ge=1, le=1000)


class WebhookSink(_Sink):
    """A JSON POST of the alert (the ``Alert`` contract, plus its severity)."""

    type: Literal["webhook"]
    url: HttpUrl
    headers: dict[str, SecretStr] = Field(default_factory=dict)


class SlackSink(_Sink):
    """A message to a Slack incoming webhook."""

    type: Literal["slack"]
    url: SecretHttpUrl


class PagerDutySink(_Sink):
    """PagerDuty Events API v2: trigger per condition, resolve when it clears."""

    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    resolve: bool = True
    source: str = "driftline"


class SmtpSink(_Sink):
    """One email per alert over SMTP (plain, STARTTLS or implicit TLS)."""

    type: Literal["smtp"]
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65_535)
    sender: str = Field(min_length=3, pattern=r"@")
    to: tuple[str, ...] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    subject_prefix: str = "[driftline]"


SinkConfig = Annotated[
    WebhookSink | SlackSink | PagerDutySink | SmtpSink, Field(discriminator="type")
]
Sinks = dict[SinkName, SinkConfig]

__all__ = [
    "SEVERITIES",
    "HttpUrl",
    "PagerDutySink",
    "Severity",
    "SinkConfig",
    "SinkName",
    "Sinks",
    "SlackSink",
    "SmtpSink",
    "WebhookSink",
]
