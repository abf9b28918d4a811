"""The clients that carry an alert to its receiver: HTTP (aiohttp) and SMTP (the stdlib's).

Each :class:`Transport` makes one attempt per call and says how it failed with
:class:`DeliveryError`: ``permanent`` when sending the same request again cannot succeed (an
HTTP 4xx but 408, 425 and 429; an SMTP 5xx, refused recipients), else it is worth a retry
(connection refused, timeout, HTTP 5xx, SMTP 4xx). The HTTP requests carry the alert's id as
``Idempotency-Key``, so that a receiver can drop the repeat of an alert whose delivery was
interrupted after the receiver took it but before it was recorded; an email's ``Message-ID``
does the same for mail clients.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any, Protocol

import aiohttp
import orjson

from streams.config.sinks import PagerDutySink, SinkConfig, SlackSink, SmtpSink, WebhookSink
from streams.errors import StreamsError
from streams.sinks.payloads import (
    email_message,
    pagerduty_resolve,
    pagerduty_trigger,
    slack_body,
    webhook_body,
)

_RETRYABLE_4XX = frozenset({408, 425, 429})


class DeliveryError(StreamsError):
    """One attempt at a sink failed; ``permanent``: retrying the same request is pointless."""

    def __init__(self, sink: str, reason: str, *, permanent: bool) -> None:
        super().__init__(f"sink {sink}: {reason}")
        self.sink = sink
        self.reason = reason
        self.permanent = permanent


class Transport(Protocol):
    """One sink's client: one attempt per call."""

    async def send(self, alert: Mapping[str, Any]) -> None:
        """Deliver ``alert`` once, or raise :class:`DeliveryError`."""

    async def resolve(self, dedup_key: str) -> None:
        """Tell the receiver the condition ``dedup_key`` cleared (PagerDuty only)."""

    async def close(self) -> None:
        """Release the client's connections."""


class HttpTransport:
    """A JSON POST per alert: the generic webhook, Slack and PagerDuty."""

    def __init__(self, name: str, sink: WebhookSink | SlackSink | PagerDutySink) -> None:
        self.name = name
        self.sink = sink
        self._session: aiohttp.ClientSession | None = None

    def _url(self) -> str:
        url = self.sink.url
        return url if isinstance(url, str) else url.get_secret_value()

    async def post(self, body: Mapping[str, Any], key: str) -> None:
        """POST ``body``; a 2xx answer is a delivery."""
        if self._session is None:
            self._session = aiohttp.ClientSession(json_serialize=lambda o: orjson.dumps(o).decode())
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if isinstance(self.sink, WebhookSink):
            headers.update({k: v.get_secret_value() for k, v in self.sink.headers.items()})
        timeout = aiohttp.ClientTimeout(total=self.sink.timeout_s)
        try:
            async with self._session.post(
                self._url(), data=orjson.dumps(body), headers=headers, timeout=timeout
            ) as resp:
                text = (await resp.text(errors="replace"))[:200]
                if 200 <= resp.status < 300:
                    return
                permanent = 400 <= resp.status < 500 and resp.status not in _RETRYABLE_4XX
                raise DeliveryError(self.name, f"HTTP {resp.status}: {text}", permanent=permanent)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # a Slack URL is a secret: never let it reach a log line
            reason = f"{type(exc).__name__}: {exc}".replace(self._url(), "<url>")
            raise DeliveryError(self.name, reason, permanent=False) from None

    async def send(self, alert: Mapping[str, Any]) -> None:
        """Deliver ``alert`` in the format of the sink's type."""
        body: Mapping[str, Any]
        if isinstance(self.sink, PagerDutySink):
            body = pagerduty_trigger(self.sink, alert)
        elif isinstance(self.sink, SlackSink):
            body = slack_body(alert)
        else:
            body = webhook_body(alert)
        await self.post(body, str(alert["alert_id"]))

    async def resolve(self, dedup_key: str) -> None:
        """Resolve a PagerDuty incident (other sinks have nothing to resolve)."""
        if isinstance(self.sink, PagerDutySink):
            await self.post(pagerduty_resolve(self.sink, dedup_key), f"resolve:{dedup_key}")

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class SmtpTransport:
    """One email per alert; smtplib runs in a thread, off the event loop."""

    def __init__(self, name: str, sink: SmtpSink) -> None:
        self.name = name
        self.sink = sink

    def _send(self, msg: EmailMessage) -> None:
        s = self.sink
        smtp: smtplib.SMTP
        if s.ssl:
            smtp = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout_s, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        with smtp:
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.username:
                password = s.password.get_secret_value() if s.password else ""
                smtp.login(s.username, password)
            smtp.send_message(msg)

    async def send(self, alert: Mapping[str, Any]) -> None:
        """Send ``alert`` by email to every recipient of the sink."""
        msg = email_message(self.sink, self.name, alert)
        try:
            await asyncio.to_thread(self._send, msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(self.name, f"recipients refused: {exc}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                self.name,
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                permanent=exc.smtp_code >= 500,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                self.name, f"{type(exc).__name__}: {exc}", permanent=False
            ) from None

    async def resolve(self, dedup_key: str) -> None:
        """Email has nothing to resolve."""

    async def close(self) -> None:
        """Each email opened and closed its own connection."""


def transport(name: str, sink: SinkConfig) -> Transport:
    """The client of ``sink``."""
    if isinstance(sink, SmtpSink):
        return SmtpTransport(name, sink)
    return HttpTransport(name, sink)


__all__ = ["DeliveryError", "HttpTransport", "SmtpTransport", "Transport", "transport"]
