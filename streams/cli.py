"""The ``driftline`` command line.

Each command group lives in a module of its own that exposes ``register(subparsers)``; every
subcommand sets ``func(args) -> int``. User errors print one clear line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
from pydantic import ValidationError

from streams.errors import StreamsError
from streams.services import LocalServices, ensure_kafka_jars, kafka_version
from streams.settings import Settings, env_name, load_settings

EXIT_USAGE = 2


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        data_dir=getattr(args, "data_dir", None),
        broker=getattr(args, "broker", None),
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
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _services_fetch(args: argparse.Namespace) -> int:
    jars = ensure_kafka_jars(_settings(args).kafka_jars_dir)
    print(f"Apache Kafka {kafka_version()} jars in {jars}")
    return 0


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
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"where the services keep data, logs and state (env {env_name('data_dir')}; "
        "default .driftline)",
    )
    common.add_argument("--json", action="store_true", help="print the status as JSON")
    up = ssub.add_parser("up", parents=[common], help="start what is not running (idempotent)")
    up.add_argument(
        "--broker",
        choices=["kafka", "tansu"],
        default=None,
        help=f"Apache Kafka {kafka_version()} (KRaft, needs Java) or Tansu (in memory only, no "
        f"Java) (env {env_name('broker')}; default kafka)",
    )
    up.set_defaults(func=_services_up)
    ssub.add_parser(
        "status", parents=[common], help="report each service and its health"
    ).set_defaults(func=_services_status)
    ssub.add_parser(
        "down", parents=[common], help="stop the services that `up` started"
    ).set_defaults(func=_services_down)
    ssub.add_parser(
        "fetch", parents=[common], help="download the pinned Kafka jars from Maven Central once"
    ).set_defaults(func=_services_fetch)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every ``driftline`` command."""
    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Serve ONNX models on Kafka streams and watch them for drift.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _register_services(sub)
    cfg = sub.add_parser("config", help="print the effective settings, secrets masked")
    cfg.add_argument("--json", action="store_true", help="print as JSON")
    cfg.set_defaults(func=_config)
    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    from streams import models_cli, ops_cli, stream_cli

    return [models_cli.register, stream_cli.register, ops_cli.register]


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
    except StreamsError as exc:
        print(f"driftline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
