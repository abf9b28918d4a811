"""`driftline ui` without Redis: its options, its settings, an address it cannot take."""

from __future__ import annotations

import socket

import pytest

from streams.cli.main import main
from streams.config.settings import env_name, load_settings


def test_ui_is_listed_and_its_options_name_their_env_vars(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == 0
    assert "  ui " in capsys.readouterr().out
    assert main(["ui", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for field in ("ui_host", "ui_port", "registry", "redis_url", "ui_token"):
        assert env_name(field) in text, field


def test_the_console_binds_loopback_without_a_token_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for field in ("ui_host", "ui_port", "ui_token"):
        monkeypatch.delenv(env_name(field), raising=False)
    settings = load_settings()
    assert (settings.ui_host, settings.ui_port, settings.ui_token) == ("127.0.0.1", 8765, None)
    monkeypatch.setenv(env_name("ui_token"), "abc")
    token = load_settings().ui_token
    assert token is not None and token.get_secret_value() == "abc"
    assert load_settings().masked()["ui_token"] == "**********"


@pytest.mark.parametrize(
    ("value", "expected"), [("70000", "0<=x<=65535"), ("port", "not a valid integer")]
)
def test_a_bad_port_says_what_was_expected(
    value: str, expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(env_name("ui_port"), value)
    assert main(["ui"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert env_name("ui_port") in err and expected in err, err


def test_a_taken_address_is_refused_with_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(env_name("redis_url"), "redis://127.0.0.1:1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and env_name("ui_port") in err, err
