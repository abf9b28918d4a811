"""The `driftline` command line: every command listed with help, wrong arguments explained."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from streams.cli import main as cli_main
from streams.cli.main import build_cli, main

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
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"  {command} " in out, command


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
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Usage: driftline" in err and "Error: " in err


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


def test_the_command_line_builds_without_error() -> None:
    assert build_cli().name == "driftline"


def _commands(monkeypatch: pytest.MonkeyPatch, *points: EntryPoint) -> set[str]:
    monkeypatch.setattr(cli_main, "entry_points", lambda group: list(points))
    return set(build_cli().commands)


def test_other_packages_add_commands_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = EntryPoint("bench", "bench.cli:register", cli_main.COMMANDS)
    assert "bench" in _commands(monkeypatch, bench)


def test_a_command_whose_package_is_not_installed_is_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ghost = EntryPoint("ghost", "no_such_package.cli:register", cli_main.COMMANDS)
    assert "config" in _commands(monkeypatch, ghost)


def test_a_broken_command_package_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "broken_plugin.py").write_text("import no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = EntryPoint("broken", "broken_plugin:register", cli_main.COMMANDS)
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency"):
        _commands(monkeypatch, broken)
