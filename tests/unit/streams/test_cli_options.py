"""Every option of every ``driftline`` command can be set by an environment variable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from streams.cli import main as cli_main
from streams.cli.main import build_cli, main
from streams.cli.options import POSITIVE_INT, Args, Command, command, group, name_env_vars, option
from streams.cli.options import walk as walk_cli
from streams.config.settings import Settings, env_name
from tests.unit.streams.cli_surface import surface

SURFACE = Path(__file__).with_name("cli_surface.txt")

Option = tuple[tuple[str, ...], Command, click.Option]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("DRIFTLINE_"):
            monkeypatch.delenv(key)


def _every_option() -> Iterator[Option]:
    for path, cmd in walk_cli(build_cli()):
        for param in cmd.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert isinstance(cmd, Command), path
                yield path, cmd, param


ALL = list(_every_option())
IDS = [" ".join([*path, param.opts[0]]) for path, _, param in ALL]


def parsed(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> Args:
    """What ``driftline ARGV`` hands its command's handler (the handler itself does not run)."""
    seen: list[Args] = []
    root = build_cli()
    for _, cmd in walk_cli(root):
        if isinstance(cmd, Command):
            cmd.handler = lambda args: seen.append(args) or 0
    monkeypatch.setattr(cli_main, "build_cli", lambda: root)
    assert main(argv) == 0, argv
    assert len(seen) == 1
    return seen[0]


def _argv(path: tuple[str, ...], cmd: Command, tested: click.Option) -> list[str]:
    """The command, a value for each required argument, one option of a required group."""
    argv = [*path, *("x" for p in cmd.params if isinstance(p, click.Argument) and p.required)]
    if cmd.require_one and tested.name not in cmd.exclusive:
        first = next(p for p in cmd.params if p.name == cmd.exclusive[0])
        assert isinstance(first, click.Option)
        argv.append(first.opts[0])
        if not first.is_flag:
            choices = first.type.choices if isinstance(first.type, click.Choice) else None
            argv.append(str(choices[0]) if choices else "1")
    return argv


def _sample(param: click.Option) -> tuple[str, object]:
    """A valid environment value other than the default, and what it parses to."""
    if param.is_flag:
        return "yes", True
    if isinstance(param.type, click.Choice):
        pick = next(c for c in param.type.choices if c != param.default)
        return str(pick), pick
    for text in ("3", "sample-value"):
        try:
            value = param.type.convert(text, param, None)
        except click.BadParameter:
            continue
        return text, (value,) if param.multiple else value
    raise AssertionError(f"no sample value for {param.opts}")


def test_every_command_option_and_variable_of_before_still_works() -> None:
    """The listing was taken from the argparse command line this one replaced; it only grows."""
    assert surface() == SURFACE.read_text().split("\n")[:-1]


def test_the_whole_cli_is_walked() -> None:
    commands = {path for path, _ in walk_cli(build_cli())}
    assert {("train",), ("models", "route"), ("services", "up"), ("produce",)} <= commands
    assert len(ALL) > 50


def test_every_command_has_a_one_line_help() -> None:
    for path, cmd in walk_cli(build_cli()):
        if path:
            assert cmd.short_help and "\n" not in cmd.short_help, path


@pytest.mark.parametrize(("path", "cmd", "param"), ALL, ids=IDS)
def test_option_help_names_its_env_var(
    path: tuple[str, ...], cmd: Command, param: click.Option
) -> None:
    ctx = click.Context(cmd, info_name=" ".join(("driftline", *path)))
    assert f"env var: {param.envvar}" in " ".join(cmd.get_help(ctx).split())


@pytest.mark.parametrize(("path", "cmd", "param"), ALL, ids=IDS)
def test_setting_the_env_var_changes_the_parsed_value(
    monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...], cmd: Command, param: click.Option
) -> None:
    text, expected = _sample(param)
    assert expected != param.default
    assert isinstance(param.envvar, str)
    monkeypatch.setenv(param.envvar, text)
    args = parsed(monkeypatch, _argv(path, cmd, param))
    assert getattr(args, str(param.name)) == expected


def test_env_names_follow_one_scheme() -> None:
    setting_envs = {env_name(field) for field in Settings.model_fields}
    for path, _cmd, param in ALL:
        assert isinstance(param.envvar, str)
        if param.envvar in setting_envs:
            assert param.default is None  # the settings (and .env) decide
        else:
            long = next(s for s in param.opts if s.startswith("--"))
            words = "_".join([*path, long.lstrip("-")]).upper().replace("-", "_")
            assert param.envvar == "DRIFTLINE_" + words
    for _, cmd in walk_cli(build_cli()):
        envs = [p.envvar for p in cmd.params if isinstance(p, click.Option)]
        assert len(envs) == len(set(envs))


def test_defaults_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parsed(monkeypatch, ["train"])
    assert (args.rows, args.dataset, args.csv, args.promote) == (5000, "agrawal", None, False)
    assert args.registry is None  # Settings.registry applies
    args = parsed(monkeypatch, ["services", "up"])
    assert (args.data_dir, args.broker, args.json) == (None, None, False)


def test_examples_of_the_naming_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_TRAIN_ROWS", "1234")
    monkeypatch.setenv("DRIFTLINE_DATA_DIR", "/srv/driftline")
    monkeypatch.setenv("DRIFTLINE_TRAIN_PROMOTE", "TRUE")
    assert parsed(monkeypatch, ["train"]).rows == 1234
    assert parsed(monkeypatch, ["train"]).promote is True
    assert parsed(monkeypatch, ["services", "status"]).data_dir == Path("/srv/driftline")


def test_command_line_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_TRAIN_ROWS", "1234")
    monkeypatch.setenv("DRIFTLINE_TRAIN_PROMOTE", "0")
    monkeypatch.setenv("DRIFTLINE_REGISTRY", "from-env")
    args = parsed(monkeypatch, ["train", "--rows", "77", "--promote", "--registry", "cli"])
    assert (args.rows, args.promote, args.registry) == (77, True, "cli")


def test_command_line_silences_the_env_of_an_exclusive_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFTLINE_MODELS_ROUTE_SHADOW", "1")
    args = parsed(monkeypatch, ["models", "route", "m", "--canary", "5"])
    assert (args.shadow, args.canary, args.off) == (False, 5.0, False)
    args = parsed(monkeypatch, ["models", "route", "m"])  # env meets the requirement
    assert (args.shadow, args.canary, args.off) == (True, None, False)
    monkeypatch.setenv("DRIFTLINE_TRAIN_CSV", "data.csv")
    args = parsed(monkeypatch, ["train", "--dataset", "sea"])
    assert (args.dataset, args.csv) == ("sea", None)


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_TRAIN_ROWS", "")
    monkeypatch.setenv("DRIFTLINE_TRAIN_PROMOTE", "")
    args = parsed(monkeypatch, ["train"])
    assert (args.rows, args.promote) == (5000, False)


@pytest.mark.parametrize(
    ("env", "value", "command", "extra", "expected"),
    [
        ("DRIFTLINE_TRAIN_ROWS", "many", "train", [], "'many' is not a valid integer range"),
        ("DRIFTLINE_TRAIN_MODEL", "svm", "train", [], "'svm' is not one of 'logreg'"),
        ("DRIFTLINE_TRAIN_PROMOTE", "maybe", "train", [], "'maybe' is not a valid boolean"),
        ("DRIFTLINE_BROKER", "rabbitmq", "services up", [], "is not one of 'kafka', 'tansu'"),
        ("DRIFTLINE_PRODUCE_RATE", "-1", "produce", ["--dataset", "sea"], "x>=0"),
        ("DRIFTLINE_MODELS_ROUTE_CANARY", "0", "models route", ["m"], "0<x<=100"),
        ("DRIFTLINE_TAIL_COUNT", "1.5", "tail", ["t"], "not a valid integer range"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("DRIFTLINE_") else "",
)
def test_a_bad_env_value_exits_2_saying_what_was_expected(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: str,
    value: str,
    command: str,
    extra: list[str],
    expected: str,
) -> None:
    monkeypatch.setenv(env, value)
    assert main([*command.split(), *extra]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"Usage: driftline {command} ")
    assert "Error: Invalid value for '--" in err
    assert f"(env var: '{env}')" in err and expected in err
    assert "Traceback" not in err


def test_a_bad_variable_of_another_command_does_not_matter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFTLINE_TRAIN_ROWS", "many")
    assert parsed(monkeypatch, ["models", "list"]).json is False


def test_two_variables_of_one_exclusive_group_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_MODELS_ROUTE_SHADOW", "1")
    monkeypatch.setenv("DRIFTLINE_MODELS_ROUTE_OFF", "true")
    assert main(["models", "route", "m"]) == 2
    err = capsys.readouterr().err
    assert "DRIFTLINE_MODELS_ROUTE_SHADOW and DRIFTLINE_MODELS_ROUTE_OFF are both set" in err


def test_two_options_of_one_exclusive_group_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "route", "m", "--shadow", "--off"]) == 2
    assert "--shadow and --off exclude each other" in capsys.readouterr().err


def test_a_required_group_names_its_variables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["produce"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "one of --dataset, --file is required" in err
    assert "DRIFTLINE_PRODUCE_DATASET" in err


def test_a_new_command_gets_its_variables_by_the_scheme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Args] = []
    root = group("driftline", help="x", description="x")
    report = group("report", help="x", description="x")
    report.add_command(
        command(
            "weekly",
            lambda args: seen.append(args) or 0,
            help="x",
            params=[
                option("--days", type=POSITIVE_INT, default=7, help="how far back"),
                option("--registry", setting="registry", help="model registry"),
            ],
        )
    )
    root.add_command(report)
    name_env_vars(root)
    monkeypatch.setenv("DRIFTLINE_REPORT_WEEKLY_DAYS", "3")
    monkeypatch.setenv("DRIFTLINE_REGISTRY", "reg")
    root.main(["report", "weekly"], standalone_mode=False)
    assert (seen[0].days, seen[0].registry) == (3, "reg")


def test_option_refuses_what_would_not_read_the_env() -> None:
    with pytest.raises(ValueError, match="--long"):
        option("-x", help="x")
    with pytest.raises(ValueError, match="no setting"):
        option("--thing", setting="no_such_setting", help="x")


def test_help_shows_percent_and_defaults() -> None:
    root = group("driftline", help="x", description="x")
    root.add_command(
        command(
            "thing",
            lambda args: 0,
            help="x",
            params=[option("--share", type=float, default=12.5, help="P % of it")],
        )
    )
    name_env_vars(root)
    thing = root.commands["thing"]
    text = " ".join(thing.get_help(click.Context(thing, info_name="driftline thing")).split())
    assert "P % of it [env var: DRIFTLINE_THING_SHARE; default: 12.5]" in text
