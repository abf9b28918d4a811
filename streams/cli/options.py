"""How ``driftline`` commands are declared: click, with an environment variable for every option.

The command line is built on `click <https://click.palletsprojects.com>`_. A command module
declares its commands with :func:`command` (and groups with :func:`group`) and its options with
:func:`option`; a handler takes the parsed values as one :data:`Args` and returns an exit code.

An option's value comes from, in this order:

1. the command line;
2. its environment variable, shown in ``--help`` as ``[env var: …]``;
3. its default.

Options that stand for a setting use that setting's variable (``--registry`` ↔
``DRIFTLINE_REGISTRY``, see :mod:`streams.config.settings`) and keep ``None`` as their parsed
default, so that the settings (and their ``.env`` file) still decide. Every other option is named
``DRIFTLINE_<COMMAND>_<OPTION>``: the words of the command after ``driftline`` and the long
option, upper case, ``-`` read as ``_`` (``driftline train --rows`` ↔ ``DRIFTLINE_TRAIN_ROWS``,
``driftline models list --json`` ↔ ``DRIFTLINE_MODELS_LIST_JSON``); :func:`name_env_vars` gives
them their names once the whole tree is built.

click converts and checks an environment value exactly like the same text on the command line
(type, range, choices); a bad one stops the command with the usage, the option, the variable and
what was expected, and exit code 2. Flags read ``1``, ``true``, ``yes``, ``on`` (and ``0``,
``false``, ``no``, ``off``), case-insensitive. An empty variable counts as unset. Among options
that exclude each other (``exclusive=`` of :func:`command`), one given on the command line
silences the variables of the others; two variables set at once are an error.

A command module uses it like this::

    from streams.cli.options import POSITIVE_INT, Args, command, option

    def _report(args: Args) -> int: ...

    def register(root: click.Group) -> None:
        root.add_command(command("report", _report, help="...", params=[
            option("--days", type=POSITIVE_INT, default=7, help="how far back"),
            option("--registry", setting="registry", metavar="DIR", help="model registry"),
            option("--json", flag=True, help="print as JSON"),
        ]))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
from click.core import ParameterSource

from streams.config.settings import ENV_PREFIX, Settings, env_name

Args = SimpleNamespace  # what a handler receives: one attribute per option and argument
Handler = Callable[[Args], int]

POSITIVE_INT = click.IntRange(min=1)
NON_NEGATIVE_INT = click.IntRange(min=0)
NON_NEGATIVE_FLOAT = click.FloatRange(min=0)
PERCENT = click.FloatRange(0, 100, min_open=True)

CONTEXT: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "max_content_width": 100,
    "show_default": True,
}


def _setting_default(setting: str) -> str | None:
    field = Settings.model_fields[setting]
    if field.default_factory is not None or field.default is None:
        return None
    return str(field.default) if isinstance(field.default, Path) else f"{field.default}"


def option(
    *flags: str,
    help: str,
    setting: str | None = None,
    name: str | None = None,
    default: Any = None,
    default_text: str | None = None,
    type: click.ParamType | type | None = None,
    choices: Sequence[str] | None = None,
    metavar: str | None = None,
    flag: bool = False,
    multiple: bool = False,
) -> click.Option:
    """Return an option that its environment variable can also set.

    Parameters
    ----------
    *flags
        ``--long`` option strings (a short one may follow).
    help
        What the option does.
    setting
        The settings field the option stands for: its variable is used, its default shown, and
        the parsed default stays ``None`` so that the settings decide.
    name
        The attribute of :data:`Args` (default: the long option's words joined by ``_``).
    default
        The value when neither the command line nor the variable sets it.
    default_text
        How to describe the default in the help, when its value does not say it.
    type
        A click type or a callable such as :class:`~pathlib.Path`.
    choices
        The accepted values.
    metavar
        How the value is named in the help.
    flag
        A flag: present means true.
    multiple
        May be given several times (a tuple of values; the variable's value is split on
        whitespace).
    """
    if not any(f.startswith("--") for f in flags):
        raise ValueError(f"an option needs a --long name, got {flags}")
    envvar = None
    if setting is not None:
        if setting not in Settings.model_fields:
            raise ValueError(f"{flags[0]}: no setting named {setting!r}")
        envvar = env_name(setting)
        default_text = default_text or _setting_default(setting)
        default = None
    kind: Any = click.Choice(list(choices)) if choices is not None else type
    if kind is Path:
        kind = click.Path(path_type=Path)
    decls = [*flags, name] if name else list(flags)
    return click.Option(
        decls,
        help=help,
        envvar=envvar,
        show_envvar=True,
        default=None if flag and setting is not None else False if flag else default,
        show_default=default_text if default_text is not None and not flag else not flag,
        type=kind,
        metavar=metavar,
        is_flag=flag,
        multiple=multiple,
    )


def registry_option() -> click.Option:
    """``--registry DIR``, the ``registry`` setting."""
    return option("--registry", setting="registry", metavar="DIR", help="model registry directory")


def redis_url_option(help: str) -> click.Option:
    """``--redis-url URL``, the ``redis_url`` setting; unset means the local services' Redis."""
    return option(
        "--redis-url",
        setting="redis_url",
        metavar="URL",
        help=help,
        default_text="the one `driftline services up` started",
    )


def argument(name: str, *, metavar: str, optional: bool = False, **kwargs: Any) -> click.Argument:
    """Return a positional argument (described in its command's help: click shows no help)."""
    return click.Argument([name], metavar=metavar, required=not optional, **kwargs)


class Command(click.Command):
    """A click command that calls ``handler(args)`` and exits with what it returns.

    Parameters
    ----------
    name, help, description
        The command's name, its one line in its group's list, and its ``--help`` text.
    handler
        Takes the parsed values, returns the exit code.
    params
        Its options (:func:`option`) and arguments (:func:`argument`).
    exclusive
        Names of options that exclude each other; with ``require_one``, one of them is needed.
    """

    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        help: str,
        description: str | None = None,
        params: Sequence[click.Parameter] = (),
        exclusive: Sequence[str] = (),
        require_one: bool = False,
    ) -> None:
        super().__init__(
            name,
            callback=self._call,
            params=list(params),
            help=description or help[0].upper() + help[1:] + ".",
            short_help=help,
            context_settings=CONTEXT,
        )
        self.handler = handler
        self.exclusive = tuple(exclusive)
        self.require_one = require_one

    def _call(self, **values: Any) -> int:
        if self.exclusive:
            _exclusive(click.get_current_context(), values, self.exclusive, self.require_one)
        return self.handler(Args(**values))


command = Command  # declared like a function in the command modules


def group(name: str, *, help: str, description: str, epilog: str | None = None) -> click.Group:
    """Return a group of commands (its commands are added with ``add_command``)."""
    return click.Group(
        name, help=description, short_help=help, epilog=epilog, context_settings=CONTEXT
    )


def _exclusive(
    ctx: click.Context, values: dict[str, Any], names: Sequence[str], require_one: bool
) -> None:
    params = {p.name: p for p in ctx.command.params if isinstance(p, click.Option)}
    chosen = [n for n in names if values[n] not in (None, False)]
    source = {n: ctx.get_parameter_source(n) for n in chosen}
    typed = [n for n in chosen if source[n] is ParameterSource.COMMANDLINE]
    if len(typed) > 1:
        raise click.UsageError(
            f"{' and '.join(_flag(params[n]) for n in typed)} exclude each other"
        )
    if typed:  # the command line wins over the variables of the others
        for n in chosen:
            if n not in typed and source[n] is ParameterSource.ENVIRONMENT:
                values[n] = params[n].get_default(ctx)
        return
    from_env = [n for n in chosen if source[n] is ParameterSource.ENVIRONMENT]
    if len(from_env) > 1:
        envs = " and ".join(str(params[n].envvar) for n in from_env)
        flags = ", ".join(_flag(params[n]) for n in from_env)
        raise click.UsageError(f"{envs} are both set, but {flags} exclude each other: unset one")
    if require_one and not chosen:
        flags = ", ".join(_flag(params[n]) for n in names)
        envs = ", ".join(str(params[n].envvar) for n in names)
        raise click.UsageError(f"one of {flags} is required (or set one of {envs})")


def _flag(param: click.Option) -> str:
    return next(o for o in param.opts if o.startswith("--"))


def walk(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Yield every command under ``cmd`` (itself first) with its words after ``driftline``."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from walk(sub, (*path, name))


def name_env_vars(root: click.Group) -> None:
    """Give every option without a variable its ``DRIFTLINE_<COMMAND>_<OPTION>``."""
    for path, cmd in walk(root):
        for param in cmd.params:
            if isinstance(param, click.Option) and param.envvar is None and param.name:
                words = [*path, param.name]
                param.envvar = ENV_PREFIX + "_".join(words).upper().replace("-", "_")


__all__ = [
    "CONTEXT",
    "NON_NEGATIVE_FLOAT",
    "NON_NEGATIVE_INT",
    "PERCENT",
    "POSITIVE_INT",
    "Args",
    "Command",
    "Handler",
    "argument",
    "command",
    "group",
    "name_env_vars",
    "option",
    "redis_url_option",
    "registry_option",
    "walk",
]
