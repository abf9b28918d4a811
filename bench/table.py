"""The benchmark report as a plain-text table (also what bench/README.md shows)."""

from __future__ import annotations

from typing import Any

_NAMES = {
    "throughput_monitoring_on": "full path, monitoring on (events/s)",
    "ratio_vs_floor": "  ÷ floor (librdkafka loop, one ONNX call per batch)",
    "ratio_vs_quix": "  ÷ Quix Streams (per-event apply, its defaults)",
    "ratio_vs_naive": "  ÷ naive (Faust, predict_proba per event, awaited send)",
    "p50_ms_at_50": "p50 latency at 50% load (ms)",
    "p99_ms_at_50": "p99 latency at 50% load (ms)",
    "p99_ms_at_75": "p99 latency at 75% load (ms)",
    "monitoring_cost_fraction": "throughput lost to monitoring (median of the rounds)",
    "exactly_once_ratio": "exactly once ÷ at least once (median of the rounds)",
    "swap_gap_ms": "largest gap during a promotion, worst run (ms)",
    "swap_lost": "events lost during a promotion",
    "worker_peak_rss_mb": "worker peak RSS (MiB)",
    "malformed_slowdown": "scoring per record, half malformed ÷ clean",
}


def _num(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def render(report: dict[str, Any]) -> str:
    """Throughputs, latency, swap, monitoring cost and the targets, one table each."""
    f = report["figures"]
    lines = [
        f"machine: {report['machine']['cpus']} CPUs, {report['machine']['cpu']}, "
        f"Kafka {report['machine']['kafka']}, Python {report['machine']['python']}",
        f"runs per figure: {report['plan']['runs']} (median; events lost: total over the runs)",
        "",
    ]
    lines.append(
        f"{'throughput, by arrival':<46} {'events/s':>10} {'by broker ts':>13} {'RSS MiB':>8}"
    )
    for key, label in (
        ("driftline_monitoring_on", "Driftline, monitoring on"),
        ("driftline_monitoring_off", "Driftline, monitoring off"),
        ("driftline_exactly_once", "Driftline, monitoring on, exactly once"),
        ("floor", "floor: librdkafka loop + onnxruntime per batch"),
        ("relay", "relay: librdkafka, bytes in -> bytes out"),
        ("quix", "Quix Streams: per-event apply + onnxruntime"),
        ("naive", "naive: Faust + predict_proba per event"),
    ):
        lines.append(
            f"{label:<46} {_num(f[key]['events_per_s']):>10} "
            f"{_num(f[key]['by_broker_time_per_s']):>13} {_num(f[key]['peak_rss_mb']):>8}"
        )
    lines += ["", f"{'ratio of throughputs':<58} {'x':>10}"]
    for name, ratio in report["ratios"].items():
        if " / " in name:
            lines.append(f"{name:<58} {_num(ratio):>10}")
    lines += [
        "",
        f"{'latency (monitoring on)':<28} {'offered/s':>10} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'lost':>6}",
    ]
    for share, lat in f["latency"].items():
        lines.append(
            f"{share + '% of max':<28} {_num(lat['offered_per_s']):>10} {lat['p50_ms']:>8.1f} "
            f"{lat['p95_ms']:>8.1f} {lat['p99_ms']:>8.1f} {lat['lost']:>6}"
        )
    s = f["hot_swap"]
    lines += [
        "",
        f"hot swap at {_num(s['offered_per_s'])}/s: largest gap {s['max_gap_ms']:.0f} ms "
        f"(worst run {s['worst_gap_ms']:.0f} ms; median gap {s['median_gap_ms']:.1f} ms), "
        f"lost {s['lost']} of {s['sent']}, new version live {s['swapped_after_s']:.2f} s "
        "after the announcement",
        "",
    ]
    lines.append(f"{'cost by component':<58} {'µs/event':>9}")
    for name, us in f["monitoring_cost_us_per_event"].items():
        lines.append(f"{name:<58} {us:>9.2f}")
    lines += ["", f"{'target':<58} {'measured':>10} {'wanted':>10}  met"]
    for key, t in report["targets"].items():
        mark = "yes" if t["met"] else "NO"
        lines.append(f"{_NAMES[key]:<58} {_num(t['measured']):>10} {t['target']:>10}  {mark}")
        if key == "monitoring_cost_fraction" and "monitoring_cost_of_medians" in report["ratios"]:
            of_medians = report["ratios"]["monitoring_cost_of_medians"]
            lines.append(
                f"{'  (1 - the medians on / off, for reference)':<58} {_num(of_medians):>10}"
            )
    return "\n".join(lines)


__all__ = ["render"]
