"""Alert sinks: what each receiver is sent (generic webhook, Slack, PagerDuty v2, email)."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import orjson
from pydantic import TypeAdapter

from streams.config.sinks import PagerDutySink, SinkConfig, SmtpSink
from streams.sinks.payloads import (
    email_message,
    pagerduty_resolve,
    pagerduty_trigger,
    slack_body,
    webhook_body,
)
from tests.unit.streams.test_sinks_routing import alert

SINK = TypeAdapter(SinkConfig)


def pagerduty(**over: Any) -> PagerDutySink:
    sink = SINK.validate_python({"type": "pagerduty", "routing_key": "R0UT1NG", **over})
    assert isinstance(sink, PagerDutySink)
    return sink


def smtp(**over: Any) -> SmtpSink:
    base = {"type": "smtp", "host": "mx", "sender": "driftline@example.com"}
    sink = SINK.validate_python({**base, "to": ["a@example.com", "b@example.com"], **over})
    assert isinstance(sink, SmtpSink)
    return sink


def test_the_webhook_gets_the_alert_contract_with_severity_and_summary() -> None:
    body = webhook_body(alert(kind="performance", feature=None, detector="f1_drop"))
    assert {k: body[k] for k in ("alert_id", "kind", "model", "version", "feature")} == {
        "alert_id": "a1",
        "kind": "performance",
        "model": "sea",
        "version": "3",
        "feature": None,
    }
    assert body["severity"] == "error"
    assert body["summary"] == "sea v3: performance (f1_drop 0.41, threshold 0.2)"
    assert orjson.loads(orjson.dumps(body)) == body  # JSON as it is


def test_slack_gets_a_notification_line_and_blocks() -> None:
    body = slack_body(alert())
    assert body["text"] == ":warning: *WARNING* sea v3: data drift of x1 (psi 0.41, threshold 0.2)"
    header, facts, context = body["blocks"]
    assert header == {"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}
    texts = [f["text"] for f in facts["fields"]]
    assert texts == [
        "*Model*\nsea v3",
        "*Kind*\ndata_drift",
        "*Feature*\nx1",
        "*Detector*\npsi: 0.41",
        "*Threshold*\n0.2",
        "*Raised*\n2023-11-14T22:13:20+00:00",
    ]
    assert all(f["type"] == "mrkdwn" for f in facts["fields"])
    assert context["elements"][0]["text"] == "alert `a1`"
    assert len(facts["fields"]) <= 10  # Slack's limit for a section's fields
    error = slack_body(alert(kind="fairness", feature=None, detector="dp_gap"))
    assert error["text"].startswith(":rotating_light: *ERROR* sea v3: fairness (dp_gap")


def test_pagerduty_triggers_one_incident_per_condition_and_resolves_it() -> None:
    sink = pagerduty(source="prod-eu")
    first = pagerduty_trigger(sink, alert(kind="concept_drift", feature=None, detector="adwin"))
    again = pagerduty_trigger(
        sink, alert(kind="concept_drift", feature=None, detector="ddm", alert_id="a2", version="4")
    )
    assert first["dedup_key"] == again["dedup_key"] == "driftline:sea:concept_drift:-"
    assert {k: first[k] for k in ("routing_key", "event_action", "client")} == {
        "routing_key": "R0UT1NG",
        "event_action": "trigger",
        "client": "Driftline",
    }
    payload = first["payload"]
    assert payload == {
        "summary": "sea v3: concept drift (adwin 0.41, threshold 0.2)",
        "source": "prod-eu",
        "severity": "error",
        "timestamp": "2023-11-14T22:13:20+00:00",
        "component": "sea",
        "group": "3",
        "class": "concept_drift",
        "custom_details": alert(kind="concept_drift", feature=None, detector="adwin"),
    }
    assert pagerduty_resolve(sink, first["dedup_key"]) == {
        "routing_key": "R0UT1NG",
        "event_action": "resolve",
        "dedup_key": "driftline:sea:concept_drift:-",
    }


def test_pagerduty_summary_fits_the_api_limit() -> None:
    long = pagerduty_trigger(pagerduty(), alert(model="m" * 2000))
    assert len(long["payload"]["summary"]) == 1024


def test_an_email_per_alert_with_a_stable_message_id() -> None:
    msg = email_message(smtp(subject_prefix="[prod]"), "mail", alert())
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "[prod] WARNING sea v3: data drift of x1 (psi 0.41, threshold 0.2)"
    assert parsed["From"] == "driftline@example.com"
    assert parsed["To"] == "a@example.com, b@example.com"
    assert parsed["Message-ID"] == "<a1.mail@driftline>"
    assert parsed["X-Driftline-Alert-Id"] == "a1"
    body = parsed.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "detector:  psi" in text and "severity:  warning" in text
    assert orjson.loads(text.split("The alert as JSON:\n", 1)[1]) == alert()


def test_every_receiver_is_told_what_explains_the_alert() -> None:
    ranked = {"version": "3", "explained_by": [["x0", 0.8213], ["x3", 0.1787]]}
    drift = alert(kind="prediction_drift", feature=None, detector="cusum", details=ranked)
    fields = [f["text"] for f in slack_body(drift)["blocks"][1]["fields"]]
    assert fields[-1] == "*Explained by*\nx0 0.82, x3 0.18"
    assert len(fields) <= 10
    details = pagerduty_trigger(pagerduty(), drift)["payload"]["custom_details"]
    assert details["Explained by"] == "x0 0.82, x3 0.18"
    assert details["details"] == ranked  # the alert as it is, beside
    text = email_message(smtp(), "mail", drift).get_content()
    assert "explained by: x0 0.82, x3 0.18" in text
    concept = alert(kind="performance", feature=None, details={"explained_by": []})
    assert "explained by: no feature drifted (concept drift?)" in (
        email_message(smtp(), "mail", concept).get_content()
    )
    multi = {"test": "multivariate", "columns": [["x4", 0.5], ["x7", 0.5]]}
    fields = [
        f["text"] for f in slack_body(alert(feature=None, details=multi))["blocks"][1]["fields"]
    ]
    assert fields[-1] == "*Explained by*\ncolumns x4 0.5, x7 0.5"
    # an alert that says nothing of it gets no such field
    assert (
        "Explained by" not in pagerduty_trigger(pagerduty(), alert())["payload"]["custom_details"]
    )
    assert len(slack_body(alert())["blocks"][1]["fields"]) == 6
