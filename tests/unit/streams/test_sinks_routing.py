"""Alert sinks: the DRIFTLINE_SINKS setting, routing by model, kind and severity."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from streams.config.settings import Settings, explain, load_settings
from streams.config.sinks import SinkConfig, Sinks
from streams.sinks.delivery import decode_alert, entries_of
from streams.sinks.routing import condition_key, routed, severity
from streams.sinks.status import SinkStatus
from streams.sinks.transports import DeliveryError

SINK = TypeAdapter(SinkConfig)


def alert(**over: Any) -> dict[str, Any]:
    base = {
        "schema_version": 1,
        "alert_id": "a1",
        "kind": "data_drift",
        "model": "sea",
        "version": "3",
        "feature": "x1",
        "detector": "psi",
        "statistic": 0.41,
        "threshold": 0.2,
        "at": 1_700_000_000.0,
        "details": {},
    }
    return {**base, **over}


def hook(**over: Any) -> SinkConfig:
    return SINK.validate_python({"type": "webhook", "url": "http://127.0.0.1:9/h", **over})


def test_a_sink_without_routing_takes_every_alert() -> None:
    sink = hook()
    kinds = ["data_drift", "prediction_drift", "concept_drift", "performance", "fairness"]
    assert all(routed(sink, alert(kind=k, model=m)) for k in kinds for m in ("sea", "other"))


def test_routing_by_model_and_kind() -> None:
    sink = hook(models=["sea"], kinds=["performance", "fairness"])
    assert routed(sink, alert(kind="performance"))
    assert routed(sink, alert(kind="fairness"))
    assert not routed(sink, alert(kind="data_drift"))
    assert not routed(sink, alert(kind="performance", model="other"))


@pytest.mark.parametrize(
    ("minimum", "taken"),
    [
        ("info", {"data_drift", "data_quality", "performance", "concept_drift", "fairness"}),
        ("warning", {"data_drift", "data_quality", "performance", "concept_drift", "fairness"}),
        ("error", {"performance", "concept_drift", "fairness"}),
        ("critical", set()),
    ],
)
def test_minimum_severity(minimum: str, taken: set[str]) -> None:
    sink = hook(min_severity=minimum)
    kinds = ["data_drift", "data_quality", "performance", "concept_drift", "fairness"]
    assert {k for k in kinds if routed(sink, alert(kind=k))} == taken


def test_a_monitor_may_set_the_severity_and_an_unknown_one_falls_back_to_the_kind() -> None:
    assert severity(alert(details={"severity": "critical"})) == "critical"
    assert routed(hook(min_severity="critical"), alert(details={"severity": "critical"}))
    assert severity(alert(details={"severity": "apocalyptic"})) == "warning"
    assert severity(alert(kind="performance", details={"severity": None})) == "error"


def test_one_condition_one_dedup_key_whatever_the_version_and_detector() -> None:
    a = condition_key(alert(version="3", detector="psi"))
    b = condition_key(alert(version="4", detector="ks", alert_id="a2"))
    assert a == b == "driftline:sea:data_drift:x1"
    assert condition_key(alert(feature="x2")) != a
    assert condition_key(alert(kind="performance", feature=None)).endswith(":performance:-")


def test_the_setting_is_validated_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    sinks = {
        "ops": {"type": "webhook", "url": "https://hooks.example.com/x", "kinds": ["fairness"]},
        "chat": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/secret"},
        "pager": {"type": "pagerduty", "routing_key": "rk-secret", "min_severity": "error"},
        "mail": {"type": "smtp", "host": "mx", "sender": "d@example.com", "to": ["o@example.com"]},
    }
    monkeypatch.setenv("DRIFTLINE_SINKS", json.dumps(sinks))
    s = load_settings()
    assert [(n, c.type) for n, c in s.sinks.items()] == [
        ("ops", "webhook"),
        ("chat", "slack"),
        ("pager", "pagerduty"),
        ("mail", "smtp"),
    ]
    assert s.sinks["pager"].min_severity == "error"
    shown = orjson.dumps(s.masked()).decode()
    assert "secret" not in shown and "rk-" not in shown
    assert "hooks.example.com" in shown  # a plain webhook URL is no secret


@pytest.mark.parametrize(
    ("sinks", "said"),
    [
        (
            {"x": {"type": "teams", "url": "http://a"}},
            "DRIFTLINE_SINKS.x: Input tag 'teams' found using 'type' does not match any of the "
            "expected tags: 'webhook', 'slack', 'pagerduty', 'smtp'",
        ),
        (
            {"x": {"type": "webhook", "url": "ftp://a"}},
            "DRIFTLINE_SINKS.x.webhook.url: expected an http:// or https:// URL with a host, "
            "got 'ftp://a'",
        ),
        (
            {"x": {"type": "slack", "url": "hooks.slack.com/services/T/B/secret"}},
            "DRIFTLINE_SINKS.x.slack.url: expected an http:// or https:// URL with a host",
        ),
        (
            {"x": {"type": "webhook", "url": "http://a", "min_severity": "high"}},
            "DRIFTLINE_SINKS.x.webhook.min_severity: Input should be 'info', 'warning', 'error' "
            "or 'critical'",
        ),
        (
            {"x": {"type": "webhook", "url": "http://a", "retries": 3}},
            "DRIFTLINE_SINKS.x.webhook.retries: Extra inputs are not permitted",
        ),
        (
            {"x": {"type": "smtp", "host": "mx", "sender": "d@e.com", "to": []}},
            "DRIFTLINE_SINKS.x.smtp.to: Tuple should have at least 1 item after validation, not 0",
        ),
        (
            {"x": {"type": "pagerduty"}},
            "DRIFTLINE_SINKS.x.pagerduty.routing_key: Field required",
        ),
    ],
)
def test_a_bad_sink_says_what_was_expected(
    monkeypatch: pytest.MonkeyPatch, sinks: dict[str, Any], said: str
) -> None:
    monkeypatch.setenv("DRIFTLINE_SINKS", json.dumps(sinks))
    with pytest.raises(ValidationError) as exc:
        load_settings()
    assert explain(exc.value) == said
    assert "secret" not in explain(exc.value)


def test_no_sink_by_default() -> None:
    assert Settings().sinks == {}
    assert TypeAdapter(Sinks).validate_python({}) == {}


def test_stream_entries_in_either_protocol_and_malformed_alerts() -> None:
    raw = orjson.dumps(alert())
    resp2 = [[b"driftline:alerts", [(b"1-0", {b"alert": raw}), (b"2-0", None)]]]
    resp3 = {b"driftline:alerts": [[(b"1-0", {b"alert": raw}), (b"2-0", None)]]}
    for reply in (resp2, resp3):
        entries = entries_of(reply)
        assert [e[0] for e in entries] == ["1-0", "2-0"]
        assert decode_alert(entries[0][1]) == alert()
        assert decode_alert(entries[1][1]) is None  # trimmed from the stream meanwhile
    assert entries_of(None) == entries_of([]) == []
    assert decode_alert({b"alert": b"{not json"}) is None
    assert decode_alert({b"alert": orjson.dumps({"alert_id": "x"})}) is None


def test_a_sink_is_failing_after_its_consecutive_failures_only() -> None:
    status = SinkStatus("ops", "webhook", failing_after=3)
    down = DeliveryError("ops", "HTTP 503", permanent=False)
    for _ in range(2):
        status.failure(down, 1.0)
    assert not status.failing
    status.failure(down, 2.0)
    assert status.failing and status.to_dict()["status"] == "failing"
    status.success(3.0)
    assert not status.failing and status.failed_attempts == 3


def test_the_command_without_a_sink_says_how_to_set_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli.main import main

    monkeypatch.delenv("DRIFTLINE_SINKS", raising=False)
    assert main(["sinks"]) == 2
    err = capsys.readouterr().err
    assert "no sink to deliver to: set DRIFTLINE_SINKS" in err and '"type": "webhook"' in err


def test_the_command_with_a_bad_sink_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli.main import main

    monkeypatch.setenv("DRIFTLINE_SINKS", '{"ops": {"type": "webhook"}}')
    assert main(["sinks"]) == 2
    assert "DRIFTLINE_SINKS.ops.webhook.url: Field required" in capsys.readouterr().err
