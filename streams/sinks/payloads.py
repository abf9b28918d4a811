"""What each receiver is sent for an alert: plain values in, JSON-able dicts or an email out.

- a webhook gets the alert contract (``streams.contracts.messages.Alert``) with its
  ``severity`` and a one-line ``summary``;
- Slack, an incoming-webhook message: ``text`` (the notification line) and ``blocks``;
  Slack, PagerDuty and email add what explains the alert (an "Explained by" field:
  :func:`~streams.sinks.routing.explanation`) when its details say;
- PagerDuty, an Events API v2 ``trigger`` whose ``dedup_key`` is the condition
  (:func:`~streams.sinks.routing.condition_key`), so that repeats of one condition update one
  incident, and the ``resolve`` of that key when the condition clears;
- email, one message per alert whose ``Message-ID`` derives from the alert and the sink.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import orjson

from streams.config.sinks import PagerDutySink, SmtpSink
from streams.sinks.routing import condition_key, explanation, severity, summary

_SLACK_ICON = {"info": ":information_source:", "warning": ":warning:", "error": ":rotating_light:"}
_PD_SUMMARY_MAX = 1024  # the Events API refuses a longer summary


def _when(alert: Mapping[str, Any]) -> str:
    return datetime.fromtimestamp(float(alert["at"]), UTC).isoformat(timespec="seconds")


def webhook_body(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The generic webhook's JSON: the alert, its severity and summary."""
    return {**alert, "severity": severity(alert), "summary": summary(alert)}


def slack_body(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message (``text`` for notifications, ``blocks`` to read)."""
    level = severity(alert)
    line = f"{_SLACK_ICON.get(level, ':fire:')} *{level.upper()}* {summary(alert)}"
    fields = [
        ("Model", f"{alert['model']} v{alert.get('version') or '?'}"),
        ("Kind", str(alert["kind"])),
        ("Feature", str(alert.get("feature") or "-")),
        ("Detector", f"{alert['detector']}: {float(alert['statistic']):.4g}"),
        ("Threshold", f"{float(alert['threshold']):.4g}"),
        ("Raised", _when(alert)),
    ]
    why = explanation(alert)
    if why is not None:
        fields.append(("Explained by", why))
    return {
        "text": line,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": line}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields],
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"alert `{alert['alert_id']}`"}],
            },
        ],
    }


def pagerduty_trigger(sink: PagerDutySink, alert: Mapping[str, Any]) -> dict[str, Any]:
    """An Events API v2 trigger, deduplicated by the alert's condition."""
    return {
        "routing_key": sink.routing_key.get_secret_value(),
        "event_action": "trigger",
        "dedup_key": condition_key(alert),
        "client": "Driftline",
        "payload": {
            "summary": summary(alert)[:_PD_SUMMARY_MAX],
            "source": sink.source,
            "severity": severity(alert),
            "timestamp": _when(alert),
            "component": str(alert["model"]),
            "group": str(alert.get("version") or ""),
            "class": str(alert["kind"]),
            "custom_details": _explained(alert),
        },
    }


def _explained(alert: Mapping[str, Any]) -> dict[str, Any]:
    why = explanation(alert)
    return dict(alert) if why is None else {**alert, "Explained by": why}


def pagerduty_resolve(sink: PagerDutySink, dedup_key: str) -> dict[str, Any]:
    """An Events API v2 resolve of the incident ``dedup_key``."""
    return {
        "routing_key": sink.routing_key.get_secret_value(),
        "event_action": "resolve",
        "dedup_key": dedup_key,
    }


def email_message(sink: SmtpSink, name: str, alert: Mapping[str, Any]) -> EmailMessage:
    """One email for ``alert``; its ``Message-ID`` names the alert and the sink ``name``."""
    msg = EmailMessage()
    level = severity(alert)
    why = explanation(alert)
    msg["Subject"] = f"{sink.subject_prefix} {level.upper()} {summary(alert)}".strip()
    msg["From"] = sink.sender
    msg["To"] = ", ".join(sink.to)
    msg["Message-ID"] = f"<{alert['alert_id']}.{name}@driftline>"
    msg["X-Driftline-Alert-Id"] = str(alert["alert_id"])
    msg["X-Driftline-Severity"] = level
    lines = [
        summary(alert),
        "",
        f"model:     {alert['model']}",
        f"version:   {alert.get('version') or '-'}",
        f"kind:      {alert['kind']}",
        f"feature:   {alert.get('feature') or '-'}",
        f"detector:  {alert['detector']}",
        f"statistic: {float(alert['statistic']):.6g}",
        f"threshold: {float(alert['threshold']):.6g}",
        f"raised:    {_when(alert)}",
        f"severity:  {level}",
        *([] if why is None else [f"explained by: {why}"]),
        "",
        "The alert as JSON:",
        orjson.dumps(dict(alert), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode(),
    ]
    msg.set_content("\n".join(lines))
    return msg


__all__ = ["email_message", "pagerduty_resolve", "pagerduty_trigger", "slack_body", "webhook_body"]
