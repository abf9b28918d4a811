"""The verdicts of a closed tumbling window (PSI, KS), confirmed over consecutive windows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitoring.config import MonitorConfig
from monitoring.findings import Check, Finding, FindingKind


def window_checks(
    kind: FindingKind,
    feature: str | None,
    res: Mapping[str, Any],
    config: MonitorConfig,
    details: dict[str, Any],
    streaks: dict[str, int],
    ks_tests: int = 1,
) -> list[Check]:
    """PSI and KS verdicts of one closed window (KS level split over ``ks_tests`` tests).

    ``streaks`` counts, per check key, the consecutive windows that failed; a failure is a
    finding from the ``config.confirm_windows``-th on (see :class:`MonitorConfig`).
    """
    checks: list[Check] = []
    name = feature or ""
    extra = {**details, "rows": res["present"]}
    if "psi" in config.drift_tests and res.get("psi") is not None:
        key = f"{kind}|{name}|psi"
        value = float(res["psi"])
        run = _streak(streaks, key, value > config.psi_threshold, config.confirm_windows)
        psi_extra = {**extra, "windows_failed": run}
        f = Finding(kind, "psi", value, config.psi_threshold, feature, psi_extra) if run else None
        checks.append((key, f, True))
    if "ks" in config.drift_tests and res.get("ks_pvalue") is not None:
        key = f"{kind}|{name}|ks"
        p = float(res["ks_pvalue"])
        level = config.ks_pvalue / max(ks_tests, 1)
        run = _streak(streaks, key, p < level, config.confirm_windows)
        ks_extra = {
            **extra,
            "distance": res["ks_distance"],
            "tests": ks_tests,
            "windows_failed": run,
        }
        f = Finding(kind, "ks", p, level, feature, ks_extra) if run else None
        checks.append((key, f, True))
    return checks


def _streak(streaks: dict[str, int], key: str, failed: bool, confirm: int) -> int:
    """Consecutive failed windows of ``key`` once confirmed, else 0 (a pass resets it)."""
    if not failed:
        streaks.pop(key, None)
        return 0
    run = streaks.get(key, 0) + 1
    streaks[key] = run
    return run if run >= confirm else 0


def window_stats(res: Mapping[str, Any]) -> dict[str, float | None]:
    """The statistics of a closed window worth plotting over time."""
    return {
        "psi": res.get("psi"),
        "ks_pvalue": res.get("ks_pvalue"),
        "missing_rate": res.get("missing_rate"),
    }


__all__ = ["window_checks", "window_stats"]
