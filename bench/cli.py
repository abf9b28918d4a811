"""``driftline bench``: the benchmark harness of ``bench/`` from the command line.

``bench`` registers :func:`register` as the entry point ``bench`` of ``driftline.commands``
(``pyproject.toml``), and the ``driftline`` command line loads it from there: no module of
``streams`` imports ``bench``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from streams.cli.options import Args, argument, command, option


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _bench(args: Args) -> int:
    if args.suite == "detection":
        from bench import detection

        report = detection.run(quick=args.quick, say=_say)
        print(detection.render(report))
    else:
        from bench.harness import run
        from bench.table import render

        report = run(quick=args.quick, say=_say, keep=args.keep)
        print(render(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        _say(f"wrote {args.json}")
    return 0


def register(root: click.Group) -> None:
    """Add ``bench``."""
    root.add_command(
        command(
            "bench",
            _bench,
            help="measure throughput, latency, hot swap, memory, or detection against baselines",
            description="SUITE is throughput (the default) or detection. throughput: start a "
            "Kafka broker and Redis of its own, then measure the full path "
            "(median of 3 runs each) in the same run against a hand-written librdkafka+ONNX "
            "floor, the relay limit (bytes in, bytes out), Quix Streams and a naive Faust agent, "
            "all timed by arrival; latency at 25/50/75% of the maximum, a hot swap under load, "
            "monitoring cost by component and the worker's peak RSS. detection: seeded streams "
            "with known change points, in memory: detection rate, delays and false alarms per "
            "million of Driftline's monitors and River's detectors, with Lorden's bound. See "
            "bench/README.md.",
            params=[
                argument(
                    "suite",
                    metavar="[SUITE]",
                    optional=True,
                    default="throughput",
                    type=click.Choice(["throughput", "detection"]),
                ),
                option("--quick", flag=True, help="small counts, one run each (minutes)"),
                option(
                    "--json", type=Path, metavar="PATH", help="also write the report as JSON here"
                ),
                option(
                    "--keep",
                    type=Path,
                    metavar="DIR",
                    help="keep services' data, logs and models here",
                ),
            ],
        )
    )


__all__ = ["register"]
