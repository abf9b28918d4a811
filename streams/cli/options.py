"""Command-line options that an environment variable can also set: one mechanism for every command.

Every option of every ``driftline`` command is declared with :func:`add_option`, on a parser
built from :class:`EnvArgumentParser` (``driftline``'s root parser is one, and argparse gives
its class to every subparser). An option's value comes from, in this order:

1. the command line;
2. its environment variable, named in its ``--help``;
3. its default.

Options that stand for a setting use that setting's variable (``--registry`` ↔
``DRIFTLINE_REGISTRY``, see :mod:`streams.config.settings`) and keep ``None`` as their parsed
default, so that the settings (and their ``.env`` file) still decide. Every other option is named
``DRIFTLINE_<COMMAND>_<OPTION>``: the words of the command after ``driftline`` and the long
option, upper case, ``-`` read as ``_`` (``driftline train --rows`` ↔ ``DRIFTLINE_TRAIN_ROWS``,
``driftline models list --json`` ↔ ``DRIFTLINE_MODELS_LIST_JSON``).

An environment value is converted and checked exactly like the same text on the command line
(type, choices); a bad one stops the command with the usage, the option, the variable and what
was expected, and exit code 2. Flags read ``1``, ``true``, ``yes``, ``on`` (and ``0``,
``false``, ``no``, ``off``), case-insensitive. An empty variable counts as unset. In a
mutually exclusive group, an option given on the command line silences the variables of the
others; two variables of one group set at once are an error.

A command module uses it like this::

    from streams.cli.options import add_option, positive_int

    def register(sub):
        p = sub.add_parser("report", help="...")
        add_option(p, "--days", type=positive_int, default=7, help="how far back")
        add_option(p, "--registry", setting="registry", metavar="DIR", help="model registry")
        add_option(p, "--json", action="store_true", help="print as JSON")
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from streams.config.settings import ENV_PREFIX, Settings, env_name

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"0", "false", "no", "off"})

_N = TypeVar("_N")


class _Unset:
    """Parsed default of an env-aware option until its variable and default are resolved."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


@dataclass(frozen=True)
class EnvOption:
    """How one option reads the environment.

    Parameters
    ----------
    env
        The environment variable.
    default
        The value when neither the command line nor the variable sets it.
    flag
        A ``store_true`` option (the variable is read as a boolean).
    setting
        The :class:`~streams.config.settings.Settings` field the option stands for, if any.
    required
        The command line or the variable must set it.
    """

    env: str
    default: Any
    flag: bool = False
    setting: str | None = None
    required: bool = False


class EnvArgumentParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose options may come from environment variables.

    Its subparsers are of the same class. Declare options with :func:`add_option`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env_options: dict[argparse.Action, EnvOption] = {}
        self.required_groups: list[argparse._MutuallyExclusiveGroup] = []

    @overload
    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: None = None
    ) -> tuple[argparse.Namespace, list[str]]: ...
    @overload
    def parse_known_args(
        self, args: Iterable[str] | None, namespace: _N
    ) -> tuple[_N, list[str]]: ...
    @overload
    def parse_known_args(self, *, namespace: _N) -> tuple[_N, list[str]]: ...

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        """Parse like argparse, then fill what the command line left unset from the environment."""
        parsed, rest = super().parse_known_args(args, namespace)
        self._apply_env(parsed)
        return parsed, rest

    def get_default(self, dest: str) -> Any:
        """Return the default of ``dest`` (before the environment is read)."""
        for action, option in self.env_options.items():
            if action.dest == dest:
                return option.default
        return super().get_default(dest)

    def _apply_env(self, namespace: Any) -> None:
        given = {a for a in self.env_options if getattr(namespace, a.dest, _UNSET) is not _UNSET}
        raw: dict[argparse.Action, str] = {}
        for action, option in self.env_options.items():
            text = os.environ.get(option.env, "")
            if action not in given and text.strip():
                raw[action] = text
        self._check_groups(given, raw)
        for action, option in self.env_options.items():
            if option.required and action not in given and action not in raw:
                self.error(
                    f"the following arguments are required: {_flag(action)} (or set {option.env})"
                )
        for action, option in self.env_options.items():
            if action in raw:
                setattr(namespace, action.dest, self._from_env(action, option, raw[action]))
            elif action not in given:
                setattr(namespace, action.dest, option.default)

    def _check_groups(self, given: set[argparse.Action], raw: dict[argparse.Action, str]) -> None:
        for group in self._mutually_exclusive_groups:
            members = group._group_actions
            if any(a in given for a in members):
                for action in members:  # the command line wins over the whole group
                    raw.pop(action, None)
                continue
            from_env = [a for a in members if a in raw]
            if len(from_env) > 1:
                names = " and ".join(self.env_options[a].env for a in from_env)
                flags = ", ".join(_flag(a) for a in from_env)
                self.error(f"{names} are both set, but {flags} cannot be combined: unset one")
            if group in self.required_groups and not from_env:
                flags = " ".join(_flag(a) for a in members)
                envs = ", ".join(self.env_options[a].env for a in members if a in self.env_options)
                self.error(f"one of the arguments {flags} is required (or set one of {envs})")

    def _from_env(self, action: argparse.Action, option: EnvOption, text: str) -> Any:
        where = f"argument {_flag(action)} (env {option.env})"
        if option.flag:
            word = text.strip().lower()
            if word in TRUE_VALUES:
                return True
            if word in FALSE_VALUES:
                return False
            self.error(
                f"{where}: invalid boolean value: {text!r} (expected 1, true, yes or on; "
                "or 0, false, no, off)"
            )
        try:
            value = self._get_value(action, text)
            self._check_value(action, value)
        except argparse.ArgumentError as exc:
            self.error(f"{where}: {exc.message}")
        return value


def _flag(action: argparse.Action) -> str:
    longs = [s for s in action.option_strings if s.startswith("--")]
    return (longs or action.option_strings or [action.dest])[0]


def command_env(parser: argparse.ArgumentParser, option: str) -> str:
    """Return ``DRIFTLINE_<COMMAND>_<OPTION>`` for ``option`` (``--rows``) of ``parser``.

    The command is the words of the parser's ``prog`` after the program name.
    """
    words = [*parser.prog.split()[1:], option.lstrip("-")]
    return ENV_PREFIX + "_".join(words).upper().replace("-", "_")


def _setting_default(setting: str) -> Any:
    field = Settings.model_fields[setting]
    return None if field.default_factory is not None else field.default


def _shown(value: Any) -> str:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and not value:
        return "''"
    return str(value)


def add_option(
    parser: argparse.ArgumentParser,
    *flags: str,
    help: str,
    setting: str | None = None,
    env: str | None = None,
    default: Any = None,
    default_text: str | None = None,
    group: argparse._ActionsContainer | None = None,
    **kwargs: Any,
) -> argparse.Action:
    """Add an option that its environment variable can also set, and name it in the help.

    Parameters
    ----------
    parser
        The (sub)command's parser, an :class:`EnvArgumentParser`.
    *flags
        Option strings, e.g. ``"--rows"`` (positionals are not options: use argparse).
    help
        What the option does; ``(env NAME; default X)`` is appended.
    setting
        The settings field the option stands for: its variable is used, its default is shown
        and the parsed default stays ``None`` so that the settings decide.
    env
        An explicit variable name instead of ``DRIFTLINE_<COMMAND>_<OPTION>``.
    default
        The parsed value when neither the command line nor the variable sets it.
    default_text
        How to describe the default in the help, when its value does not say it.
    group
        A (mutually exclusive) group of ``parser`` to add the option to.
    **kwargs
        Passed to :meth:`argparse.ArgumentParser.add_argument` (``type``, ``choices``,
        ``metavar``, ``action="store_true"``, ``required``).

    Returns
    -------
    argparse.Action
        The new action.
    """
    if not isinstance(parser, EnvArgumentParser):
        raise TypeError("add_option needs a parser built from EnvArgumentParser")
    longs = [f for f in flags if f.startswith("--")]
    if not longs:
        raise ValueError(f"an env-aware option needs a --long name, got {flags}")
    action_kind = kwargs.get("action", "store")
    if action_kind not in ("store", "store_true") or kwargs.get("nargs") not in (None, "?"):
        raise ValueError(f"{longs[0]}: only single values and store_true flags read the env")
    is_flag = action_kind == "store_true"
    if setting is not None:
        name = env_name(setting)
        if default_text is None and _setting_default(setting) is not None:
            default_text = _shown(_setting_default(setting))
    else:
        name = env or command_env(parser, longs[0])
    if any(o.env == name for o in parser.env_options.values()):
        raise ValueError(f"{name} already sets another option of {parser.prog}")
    if is_flag:
        default = False
        suffix = f"env {name}=1"
    elif default_text is not None or default is not None:
        suffix = f"env {name}; default {default_text or _shown(default)}"
    else:
        suffix = f"env {name}"
    required = bool(kwargs.pop("required", False))
    text = f"{help} ({suffix.replace('%', '%%')})" if help else f"({suffix.replace('%', '%%')})"
    action = (group or parser).add_argument(*flags, default=_UNSET, help=text, **kwargs)
    parser.env_options[action] = EnvOption(
        env=name, default=default, flag=is_flag, setting=setting, required=required
    )
    return action


def exclusive_group(
    parser: argparse.ArgumentParser, *, required: bool = False
) -> argparse._MutuallyExclusiveGroup:
    """Return a mutually exclusive group whose requirement the environment can also meet."""
    if not isinstance(parser, EnvArgumentParser):
        raise TypeError("exclusive_group needs a parser built from EnvArgumentParser")
    group = parser.add_mutually_exclusive_group()
    if required:
        parser.required_groups.append(group)
    return group


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Yield every parser under ``parser`` (itself first) with its command words."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


def options(parser: argparse.ArgumentParser) -> Iterator[tuple[argparse.Action, EnvOption | None]]:
    """Yield every option of ``parser`` except ``--help``, with how it reads the environment."""
    table = parser.env_options if isinstance(parser, EnvArgumentParser) else {}
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            yield action, table.get(action)


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    return _bounded(int, text, "a positive integer", lambda v: v >= 1)


def non_negative_int(text: str) -> int:
    """An integer of at least 0."""
    return _bounded(int, text, "an integer >= 0", lambda v: v >= 0)


def non_negative_float(text: str) -> float:
    """A number of at least 0."""
    return _bounded(float, text, "a number >= 0", lambda v: v >= 0)


def percent(text: str) -> float:
    """A percentage in (0, 100]."""
    return _bounded(float, text, "a percentage in (0, 100]", lambda v: 0 < v <= 100)


_T = TypeVar("_T", int, float)


def _bounded(kind: type[_T], text: str, expected: str, ok: Any) -> _T:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


__all__ = [
    "FALSE_VALUES",
    "TRUE_VALUES",
    "EnvArgumentParser",
    "EnvOption",
    "add_option",
    "command_env",
    "exclusive_group",
    "non_negative_float",
    "non_negative_int",
    "options",
    "percent",
    "positive_int",
    "walk",
]
