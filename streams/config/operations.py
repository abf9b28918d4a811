"""The settings of operating Driftline: alert sinks, metrics and health, the watchdog, the
console. :class:`~streams.config.settings.Settings` inherits them: they are read, validated
and masked with every other setting (``DRIFTLINE_<FIELD>``); this module only keeps the
settings module to the settings that shape the data path.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from streams.config.sinks import Sinks


class OperationsSettings(BaseSettings):
    """Alert sinks, ``/metrics`` and ``/health``, the liveness watchdog, the console."""

    # Alert sinks: `driftline sinks` delivers the alerts stream to them (streams/sinks/).
    sinks: Sinks = Field(
        default_factory=dict,
        description='Alert sinks (JSON), name -> sink, e.g. {"ops": {"type": "webhook", '
        '"url": "https://example.com/hook"}}; types webhook, slack, pagerduty, smtp '
        "(streams/config/sinks.py).",
    )
    sinks_metrics_port: int = Field(
        default=9465,
        ge=0,
        le=65_535,
        description="Port of `driftline sinks`' /metrics and /health (on metrics_host); 0 "
        "picks a free one (written to <data_dir>/metrics/sinks-<pid>.json).",
    )
    sinks_resolve_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="How often `driftline sinks` looks for PagerDuty conditions that cleared.",
    )
    sinks_claim_after_s: float = Field(
        default=60.0,
        gt=0,
        description="`driftline sinks` takes over the alerts another consumer (a process gone "
        "under another worker_id) read and left this long.",
    )

    # Observability: Prometheus /metrics and /health per worker, liveness watchdog.
    metrics_enabled: bool = Field(
        default=True, description="Serve /metrics and /health over HTTP from each worker."
    )
    metrics_host: str = Field(default="0.0.0.0", description="Address the HTTP server binds.")
    metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65_535,
        description="Port of /metrics and /health; 0 picks a free one (logged, and written "
        "to <data_dir>/metrics/worker-<pid>.json).",
    )
    watchdog_s: float = Field(
        default=60.0,
        ge=0,
        description="Exit (code 70, for a restart) when events wait this long without a "
        "committed batch, or the event loop is blocked this long; 0 disables.",
    )
    fault_stall_after_batches: int = Field(
        default=0,
        ge=0,
        description="Fault injection, for tests only: after this many batches the scoring "
        "loop stops (the watchdog must restart the worker); 0: never.",
    )

    # The live web console, `driftline ui` (streams/ui/): read-only.
    ui_host: str = Field(
        default="127.0.0.1",
        description="Address the console binds: loopback unless told otherwise.",
    )
    ui_port: int = Field(
        default=8765, ge=0, le=65_535, description="Port of the console; 0 picks a free one."
    )
    ui_token: SecretStr | None = Field(
        default=None,
        description="When set, every request to the console must carry it (?token= once, "
        "then a cookie; or Authorization: Bearer).",
    )


__all__ = ["OperationsSettings"]
