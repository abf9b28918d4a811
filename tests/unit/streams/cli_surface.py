"""The command line's surface as lines of text: every command, argument, option and variable."""

from __future__ import annotations

import click

from streams.cli.main import build_cli
from streams.cli.options import walk


def surface() -> list[str]:
    """One line per command, per argument and per option (flags, variable, kind), sorted."""
    lines: list[str] = []
    for path, cmd in walk(build_cli()):
        head = " ".join(("driftline", *path))
        lines.append(head)
        for param in cmd.params:
            choices = param.type.choices if isinstance(param.type, click.Choice) else None
            if isinstance(param, click.Argument):
                mark = "" if param.required else "?"
                lines.append(f"{head} <{param.name}>{mark} {'|'.join(choices or ())}".rstrip())
            elif isinstance(param, click.Option) and param.name != "help":
                kind = "flag" if param.is_flag else "value"
                if choices is not None:
                    kind = "choice:" + "|".join(str(c) for c in choices)
                lines.append(f"{head} {' '.join(sorted(param.opts))} {param.envvar} {kind}")
    return sorted(lines)


if __name__ == "__main__":  # regenerate the listing: python -m tests.unit.streams.cli_surface
    print("\n".join(surface()))
