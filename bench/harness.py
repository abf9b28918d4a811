"""``driftline bench``: every figure, its baselines and its targets, from one run.

Every figure is the median of ``runs`` runs, each on fresh topics (events lost are summed over
the runs, and the hot-swap target is held against the worst run's gap); latency and hot swap
are measured at offered loads derived from the measured maximum, in the same run, against the
same broker.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.components import malformed_slowdown, monitoring_cost
from bench.world import World, make_world
from streams.config.settings import load_settings
from streams.local.kafka_jars import kafka_version
from streams.local.services import LocalServices


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    runs: int
    events: int  # per throughput run of the fast contenders
    warmup_events: int  # one drain of the broker before the measured ones
    naive_events: int
    latency_s: float
    warmup_s: float  # the same load offered first at each latency level, not measured
    swap_s: float

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(
                runs=1,
                events=4_000,
                warmup_events=2_000,
                naive_events=200,
                latency_s=2.0,
                warmup_s=0.5,
                swap_s=4.0,
            )
        return cls(
            runs=3,
            events=200_000,
            warmup_events=50_000,
            naive_events=3_000,
            latency_s=10.0,
            warmup_s=3.0,
            swap_s=20.0,
        )


TARGETS = {
    "throughput_monitoring_on": (">=", 15_000.0),
    "ratio_vs_floor": (">=", 1.0),
    "ratio_vs_quix": (">=", 3.0),
    "ratio_vs_naive": (">=", 10.0),
    "p50_ms_at_50": ("<=", 3.0),
    "p99_ms_at_50": ("<=", 15.0),
    "p99_ms_at_75": ("<=", 50.0),
    "monitoring_cost_fraction": ("<=", 0.10),
    "exactly_once_ratio": (">=", 0.85),
    "swap_gap_ms": ("<=", 20.0),
    "swap_lost": ("<=", 0.0),
    "worker_peak_rss_mb": ("<=", 300.0),
    "malformed_slowdown": ("<=", 2.0),
}
# Every contender's throughput is divided by these (each ratio is printed).
BASELINES = ("floor", "relay", "quix", "naive")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_gb, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "kafka": kafka_version(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _rounds(
    contenders: dict[str, Callable[[], scenarios.Throughput]],
    runs: int,
    say: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Run every contender once per round, ``runs`` rounds; each one's median.

    Round by round rather than contender by contender, so that whatever drifts during the
    run (the broker's JIT and page cache, a neighbour on the machine) weighs on all alike;
    every other round in reverse order, so that no contender always runs first (a fresh
    broker's first drains were the slowest). ``runs`` lists each contender's runs in round
    order: the i-th runs of two contenders are a pair, measured minutes apart at most.
    """
    results: dict[str, list[scenarios.Throughput]] = {name: [] for name in contenders}
    for i in range(runs):
        order = list(contenders) if i % 2 == 0 else list(reversed(contenders))
        for name in order:
            r = contenders[name]()
            say(f"  {name} run {i + 1}/{runs}: {r.events_per_s:,.0f} events/s")
            results[name].append(r)
    return {
        name: {
            "events_per_s": statistics.median(r.events_per_s for r in rs),
            "runs": [r.events_per_s for r in rs],
            "by_broker_time_per_s": statistics.median(r.by_broker_time_per_s for r in rs),
            "duplicates": sum(r.duplicates for r in rs),
            "peak_rss_mb": max(r.peak_rss_mb for r in rs),
        }
        for name, rs in results.items()
    }


def medians(samples: list[dict[str, Any]], summed: tuple[str, ...] = ()) -> dict[str, Any]:
    """Each field's median over the runs (``summed`` fields are totals), and the runs."""
    out: dict[str, Any] = {
        key: sum(s[key] for s in samples)
        if key in summed
        else statistics.median(s[key] for s in samples)
        for key in samples[0]
    }
    out["runs"] = samples
    return out


def run(
    quick: bool = False,
    say: Callable[[str], None] = print,
    keep: Path | None = None,
    endpoints: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Measure everything and return the report (figures, ratios, targets).

    The harness starts a Kafka broker and Redis of its own, unless ``endpoints`` names a
    running pair (bootstrap, Redis URL), as the test suite does.
    """
    plan = Plan.of(quick)
    root = Path(keep or tempfile.mkdtemp(prefix="driftline-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    say(f"bench: {'quick' if quick else 'full'} run, data and logs under {root}")
    if endpoints is not None:
        return _measure(make_world(root, *endpoints), plan, say)
    services = LocalServices(load_settings(data_dir=root / "services", broker="kafka"))
    try:
        services.up()
        world = make_world(root, services.kafka_bootstrap(), services.redis_url())
        return _measure(world, plan, say)
    finally:
        services.down()


def _measure(world: World, plan: Plan, say: Callable[[str], None]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    say("throughput (events -> predictions, 4 partitions, 20-feature gbdt)")
    # A fresh broker is slower for its first drain (JIT, page cache): one that is not counted.
    warm = scenarios.throughput(world, "driftline", plan.warmup_events, monitoring=True)
    say(f"  warm-up drain (not counted): {warm.events_per_s:,.0f} events/s")
    n = plan.events
    figures.update(
        _rounds(
            {
                "driftline_monitoring_on": lambda: scenarios.throughput(
                    world, "driftline", n, monitoring=True
                ),
                "driftline_monitoring_off": lambda: scenarios.throughput(
                    world, "driftline", n, monitoring=False
                ),
                "driftline_exactly_once": lambda: scenarios.throughput(
                    world, "driftline", n, monitoring=True, guarantee="exactly_once"
                ),
                "floor": lambda: scenarios.throughput(world, "floor", n),
                "relay": lambda: scenarios.throughput(world, "relay", n),
                "quix": lambda: scenarios.throughput(world, "quix", n),
                "naive": lambda: scenarios.throughput(world, "naive", plan.naive_events),
            },
            plan.runs,
            say,
        )
    )
    top = figures["driftline_monitoring_on"]["events_per_s"]
    say("latency at fixed offered loads (monitoring on)")
    # The broker's JIT has compiled the drains' path, not the paced one (small record batches
    # from a live sender): its C2 threads took 40 % of a core in the first paced run and 14 %
    # in the next ones. One paced run that is not counted, as for the first drain.
    warm_lat = scenarios.latency(world, top * 0.5, plan.latency_s, warmup_s=plan.warmup_s)
    say(
        f"  warm-up at 50% (not counted): p50 {warm_lat.p50_ms:.1f} ms, "
        f"p99 {warm_lat.p99_ms:.1f} ms"
    )
    latency = {}
    for share in (25, 50, 75):
        samples = []
        for i in range(plan.runs):
            lat = scenarios.latency(
                world, top * share / 100, plan.latency_s, warmup_s=plan.warmup_s
            )
            say(
                f"  {share}% ({lat.offered_per_s:,.0f}/s) run {i + 1}/{plan.runs}: "
                f"p50 {lat.p50_ms:.1f} ms, p95 {lat.p95_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms, "
                f"lost {lat.lost}"
            )
            samples.append(asdict(lat))
        latency[str(share)] = medians(samples, summed=("lost",))
    figures["latency"] = latency
    say("hot swap at 50% load")
    samples = []
    for i in range(plan.runs):
        new_version = world.train_version(seed=2 + i)
        swap = scenarios.hot_swap(world, top * 0.5, plan.swap_s, new_version)
        say(
            f"  run {i + 1}/{plan.runs}: largest gap {swap.max_gap_ms:.0f} ms (median "
            f"{swap.median_gap_ms:.1f} ms), lost {swap.lost} of {swap.sent}, new version "
            f"live after {swap.swapped_after_s:.2f} s"
        )
        samples.append(asdict(swap))
    figures["hot_swap"] = medians(samples, summed=("sent", "lost"))
    figures["hot_swap"]["worst_gap_ms"] = max(s["max_gap_ms"] for s in samples)
    say("monitoring cost by component")
    costs = [monitoring_cost(world) for _ in range(plan.runs)]
    figures["monitoring_cost_us_per_event"] = {
        name: statistics.median(c[name] for c in costs) for name in costs[0]
    }
    return {"machine": machine(), "plan": asdict(plan), "figures": figures, **verdict(figures)}


def monitoring_cost_fraction(on_runs: list[float], off_runs: list[float]) -> float:
    """The throughput lost to monitoring: the median over the rounds of ``1 - on / off``.

    Each round's two drains ran back to back (see :func:`_rounds`), so a pair shares the
    machine's speed of the moment; on a shared machine whose speed wandered by a third within
    minutes (monitoring off drained 28,445-43,062 events/s in one run), a ratio of the two
    medians paired a fast minute of one with a slow minute of the other.
    """
    pairs = [1.0 - on / off for on, off in zip(on_runs, off_runs, strict=True) if off]
    return statistics.median(pairs) if pairs else float("nan")


def paired_ratio(runs: list[float], base_runs: list[float]) -> float:
    """The median over the rounds of ``run / base``: each round's two drains ran back to
    back, as for :func:`monitoring_cost_fraction`."""
    pairs = [a / b for a, b in zip(runs, base_runs, strict=True) if b]
    return statistics.median(pairs) if pairs else float("nan")


def verdict(figures: dict[str, Any]) -> dict[str, Any]:
    """Ratios and each target's measured value and pass/fail."""
    on = figures["driftline_monitoring_on"]["events_per_s"]
    off = figures["driftline_monitoring_off"]["events_per_s"]
    measured = {
        "throughput_monitoring_on": on,
        "ratio_vs_floor": on / figures["floor"]["events_per_s"],
        "ratio_vs_quix": on / figures["quix"]["events_per_s"],
        "ratio_vs_naive": on / figures["naive"]["events_per_s"],
        "p50_ms_at_50": figures["latency"]["50"]["p50_ms"],
        "p99_ms_at_50": figures["latency"]["50"]["p99_ms"],
        "p99_ms_at_75": figures["latency"]["75"]["p99_ms"],
        "monitoring_cost_fraction": monitoring_cost_fraction(
            figures["driftline_monitoring_on"]["runs"], figures["driftline_monitoring_off"]["runs"]
        ),
        "exactly_once_ratio": paired_ratio(
            figures["driftline_exactly_once"]["runs"], figures["driftline_monitoring_on"]["runs"]
        ),
        "swap_gap_ms": figures["hot_swap"]["worst_gap_ms"],
        "swap_lost": float(figures["hot_swap"]["lost"]),
        "worker_peak_rss_mb": max(
            figures["driftline_monitoring_on"]["peak_rss_mb"],
            figures["driftline_monitoring_off"]["peak_rss_mb"],
        ),
        "malformed_slowdown": malformed_slowdown(figures["monitoring_cost_us_per_event"]),
    }
    targets = {
        name: {
            "measured": value,
            "target": f"{op} {bound:g}",
            "met": value >= bound if op == ">=" else value <= bound,
        }
        for name, value in measured.items()
        for op, bound in [TARGETS[name]]
    }
    ratios = {
        f"{contender} / {baseline}": figures[contender]["events_per_s"]
        / figures[baseline]["events_per_s"]
        for contender in (
            "driftline_monitoring_on",
            "driftline_monitoring_off",
            "driftline_exactly_once",
            "floor",
        )
        for baseline in BASELINES
        if baseline != contender
    }
    return {
        "ratios": {
            **ratios,
            "monitoring_cost_of_medians": 1.0 - on / off if off else float("nan"),
        },
        "targets": targets,
    }


__all__ = [
    "BASELINES",
    "TARGETS",
    "Plan",
    "machine",
    "medians",
    "monitoring_cost_fraction",
    "paired_ratio",
    "run",
    "verdict",
]
