"""Every option of every ``driftline`` command can be set by an environment variable."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.cli.main import build_parser, main
from streams.cli.options import (
    EnvArgumentParser,
    EnvOption,
    add_option,
    command_env,
    options,
    positive_int,
    walk,
)
from streams.config.settings import Settings, env_name

Option = tuple[tuple[str, ...], argparse.ArgumentParser, argparse.Action, EnvOption]

# Commands whose module has not moved to streams.cli.options.add_option yet. Empty this set as
# soon as they do: test_pending_commands_are_still_pending fails to remind you.
PENDING: set[str] = set()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("DRIFTLINE_"):
            monkeypatch.delenv(key)


def _every_option() -> Iterator[Option]:
    for path, parser in walk(build_parser()):
        if path and path[0] in PENDING:
            continue
        for action, option in options(parser):
            assert option is not None, f"driftline {' '.join(path)} {action.option_strings}"
            yield path, parser, action, option


ALL = list(_every_option())
IDS = [" ".join([*path, action.option_strings[-1]]) for path, _, action, _ in ALL]


def _argv(
    path: tuple[str, ...], parser: argparse.ArgumentParser, tested: argparse.Action
) -> list[str]:
    """The command, a value for each required positional, one choice of each required group."""
    argv = [*path]
    argv += [
        "x"
        for a in parser._actions
        if not a.option_strings
        and a.nargs is None
        and not isinstance(a, argparse._SubParsersAction)
    ]
    assert isinstance(parser, EnvArgumentParser)
    for group in parser.required_groups:
        if tested not in group._group_actions:
            first = group._group_actions[0]
            argv.append(first.option_strings[-1])
            if first.nargs != 0:
                argv.append(str(next(iter(first.choices))) if first.choices else "1")
    return argv


def _sample(action: argparse.Action, option: EnvOption) -> tuple[str, object]:
    """A valid environment value other than the default, and what it parses to."""
    if option.flag:
        return "yes", True
    if action.choices:
        pick = next(c for c in action.choices if c != option.default)
        return str(pick), pick
    convert = action.type if callable(action.type) else str
    for text in ("3", "sample-value"):
        try:
            return text, convert(text)
        except (ValueError, argparse.ArgumentTypeError):
            continue
    raise AssertionError(f"no sample value for {action.option_strings}")


def test_the_whole_cli_is_walked() -> None:
    commands = {path for path, _ in walk(build_parser())}
    assert {("train",), ("models", "route"), ("services", "up"), ("produce",)} <= commands
    assert len(ALL) > 50


def test_pending_commands_are_still_pending() -> None:
    for path, parser in walk(build_parser()):
        if path and path[0] in PENDING:
            assert any(o is None for _, o in options(parser)), f"remove {path[0]} from PENDING"


def test_every_command_has_a_one_line_help() -> None:
    for path, parser in walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                listed = {a.dest: a.help for a in action._choices_actions}
                assert set(listed) == set(action.choices), path
                for name, text in listed.items():
                    assert text and "\n" not in text, (*path, name)


@pytest.mark.parametrize(("path", "parser", "action", "option"), ALL, ids=IDS)
def test_option_help_names_its_env_var(
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    action: argparse.Action,
    option: EnvOption,
) -> None:
    assert action.help and f"(env {option.env}" in action.help
    assert f"(env {option.env}" in " ".join(parser.format_help().split())


@pytest.mark.parametrize(("path", "parser", "action", "option"), ALL, ids=IDS)
def test_setting_the_env_var_changes_the_parsed_value(
    monkeypatch: pytest.MonkeyPatch,
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    action: argparse.Action,
    option: EnvOption,
) -> None:
    text, expected = _sample(action, option)
    assert expected != option.default
    monkeypatch.setenv(option.env, text)
    args = build_parser().parse_args(_argv(path, parser, action))
    assert getattr(args, action.dest) == expected


def test_env_names_follow_one_scheme() -> None:
    setting_envs = {env_name(field) for field in Settings.model_fields}
    for path, parser, action, option in ALL:
        if option.setting is not None:
            assert option.env == env_name(option.setting)
            assert option.setting in Settings.model_fields
            assert option.default is None  # the settings (and .env) decide
        else:
            long = next(s for s in action.option_strings if s.startswith("--"))
            assert option.env == command_env(parser, long)
            assert option.env.startswith("DRIFTLINE_" + "_".join(path).upper() + "_")
            assert option.env not in setting_envs, option.env
    for _, parser in walk(build_parser()):
        envs = [o.env for _, o in options(parser) if o is not None]
        assert len(envs) == len(set(envs))


def test_defaults_without_env() -> None:
    args = build_parser().parse_args(["train"])
    assert (args.rows, args.dataset, args.csv, args.promote) == (5000, "agrawal", None, False)
    assert args.registry is None  # Settings.registry applies
    args = build_parser().parse_args(["services", "up"])
    assert (args.data_dir, args.broker, args.json) == (None, None, False)


def test_examples_from_the_issue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_TRAIN_ROWS", "1234")
    monkeypatch.setenv("DRIFTLINE_DATA_DIR", "/srv/driftline")
    monkeypatch.setenv("DRIFTLINE_TRAIN_PROMOTE", "TRUE")
    assert build_parser().parse_args(["train"]).rows == 1234
    assert build_parser().parse_args(["train"]).promote is True
    assert build_parser().parse_args(["services", "status"]).data_dir == Path("/srv/driftline")


def test_command_line_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_TRAIN_ROWS", "1234")
    monkeypatch.setenv("DRIFTLINE_TRAIN_PROMOTE", "0")
    monkeypatch.setenv("DRIFTLINE_REGISTRY", "from-env")
    args = build_parser().parse_args(["train", "--rows", "77", "--promote", "--registry", "cli"])
    assert (args.rows, args.promote, args.registry) == (77, True, "cli")


def test_command_line_silences_the_env_of_an_exclusive_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFTLINE_MODELS_ROUTE_SHADOW", "1")
    args = build_parser().parse_args(["models", "route", "m", "--canary", "5"])
    assert (args.shadow, args.canary, args.off) == (False, 5.0, False)
    args = build_parser().parse_args(["models", "route", "m"])  # env meets the requirement
    assert (args.shadow, args.canary, args.off) == (True, None, False)
    monkeypatch.setenv("DRIFTLINE_TRAIN_CSV", "data.csv")
    args = build_parser().parse_args(["train", "--dataset", "sea"])
    assert (args.dataset, args.csv) == ("sea", None)


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_TRAIN_ROWS", "")
    monkeypatch.setenv("DRIFTLINE_TRAIN_PROMOTE", " ")
    args = build_parser().parse_args(["train"])
    assert (args.rows, args.promote) == (5000, False)


@pytest.mark.parametrize(
    ("env", "value", "command", "extra", "expected"),
    [
        ("DRIFTLINE_TRAIN_ROWS", "many", "train", [], "expected a positive integer, got 'many'"),
        ("DRIFTLINE_TRAIN_MODEL", "svm", "train", [], "invalid choice: 'svm' (choose from"),
        ("DRIFTLINE_TRAIN_PROMOTE", "maybe", "train", [], "expected 1, true, yes or on"),
        ("DRIFTLINE_BROKER", "rabbitmq", "services up", [], "choose from 'kafka', 'tansu'"),
        ("DRIFTLINE_PRODUCE_RATE", "-1", "produce", ["--dataset", "sea"], "a number >= 0"),
        ("DRIFTLINE_MODELS_ROUTE_CANARY", "0", "models route", ["m"], "(0, 100]"),
        ("DRIFTLINE_TAIL_COUNT", "1.5", "tail", ["t"], "expected a positive integer"),
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
    with pytest.raises(SystemExit) as done:
        main([*command.split(), *extra])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: driftline {command} ")
    assert f"driftline {command}: error: argument --" in err
    assert f"(env {env})" in err and expected in err
    assert "Traceback" not in err


def test_a_bad_variable_of_another_command_does_not_matter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFTLINE_TRAIN_ROWS", "many")
    assert build_parser().parse_args(["models", "list"]).json is False


def test_two_variables_of_one_exclusive_group_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_MODELS_ROUTE_SHADOW", "1")
    monkeypatch.setenv("DRIFTLINE_MODELS_ROUTE_OFF", "true")
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["models", "route", "m"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "DRIFTLINE_MODELS_ROUTE_SHADOW and DRIFTLINE_MODELS_ROUTE_OFF" in err


def test_a_required_group_names_its_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["produce"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "one of the arguments --dataset --file is required" in err
    assert "DRIFTLINE_PRODUCE_DATASET" in err


def test_a_required_option_may_come_from_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = EnvArgumentParser(prog="driftline")
    sub = parser.add_subparsers(dest="command")
    report = sub.add_parser("report")
    add_option(report, "--days", type=positive_int, required=True, help="how far back")
    with pytest.raises(SystemExit):
        parser.parse_args(["report"])
    assert "--days (or set DRIFTLINE_REPORT_DAYS)" in capsys.readouterr().err
    monkeypatch.setenv("DRIFTLINE_REPORT_DAYS", "7")
    assert parser.parse_args(["report"]).days == 7
    assert parser.parse_args(["report", "--days", "2"]).days == 2


def test_add_option_refuses_what_would_not_read_the_env() -> None:
    with pytest.raises(TypeError):
        add_option(argparse.ArgumentParser(), "--x", help="x")
    parser = EnvArgumentParser(prog="driftline thing")
    with pytest.raises(ValueError, match="--long"):
        add_option(parser, "-x", help="x")
    with pytest.raises(ValueError, match="single values"):
        add_option(parser, "--many", nargs="+", help="x")
    add_option(parser, "--one", help="x")
    with pytest.raises(ValueError, match="already"):
        add_option(parser, "--two", env="DRIFTLINE_THING_ONE", help="x")
    assert parser.get_default("one") is None


def test_help_escapes_percent_and_shows_defaults() -> None:
    parser = EnvArgumentParser(prog="driftline thing")
    add_option(parser, "--share", type=float, default=12.5, help="P %% of it")
    text = " ".join(parser.format_help().split())
    assert "P % of it (env DRIFTLINE_THING_SHARE; default 12.5)" in text
