"""The `driftline` command line: every command listed with help, wrong arguments explained."""

from __future__ import annotations

import pytest

from streams.cli import build_parser, main

COMMANDS = {
    "services",
    "config",
    "train",
    "models",
    "worker",
    "monitor",
    "produce",
    "tail",
    "schema",
    "alerts",
    "status",
    "demo",
}


def test_every_command_is_listed_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"    {command} " in out, command


@pytest.mark.parametrize(
    "argv",
    [
        ["services", "up", "--broker", "rabbitmq"],
        ["models", "route", "credit"],
        ["models", "route", "credit", "--shadow", "--off"],
        ["produce", "--count", "many"],
        ["nonsense"],
    ],
)
def test_wrong_arguments_exit_2_with_what_was_expected(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    assert "usage: driftline" in capsys.readouterr().err


def test_schema_prints_every_contract(capsys: pytest.CaptureFixture[str]) -> None:
    import orjson

    assert main(["schema"]) == 0
    schemas = orjson.loads(capsys.readouterr().out)
    assert {"event", "prediction", "label", "dead_letter", "alert", "model_update"} <= set(schemas)
    assert "event_id" in schemas["event"]["properties"]


def test_worker_without_a_model_says_how_to_name_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTLINE_MODEL", raising=False)
    assert main(["worker"]) == 2  # a usage mistake
    assert "--model" in capsys.readouterr().err


def test_parser_builds_without_error() -> None:
    assert build_parser().prog == "driftline"
