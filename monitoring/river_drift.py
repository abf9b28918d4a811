"""River change detectors per block: the features' and the score's alternative to the CUSUMs.

With ``stream_detector`` set to ``adwin`` or ``pagehinkley``, each numeric column gets one
River detector, updated once per block of ``config.detector_block`` rows with the
standardised block mean ``(mean - ref_mean) / ref_std * sqrt(n)``, of unit variance whatever
the block's size (:func:`block_mean_checks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitoring.config import MonitorConfig
from monitoring.detectors import ChangeDetector
from monitoring.findings import Check, Finding


def stream_detector(config: MonitorConfig) -> ChangeDetector:
    """A fresh per-batch change detector as configured."""
    if config.stream_detector == "adwin":
        # One update per batch: test for a cut at every update, not every 32nd.
        params = {"delta": config.adwin_delta, "clock": 1.0}
    else:
        params = {
            "delta": config.pagehinkley_delta,
            "threshold": config.pagehinkley_threshold,
            "min_instances": 10,
            # River's default fading (0.9999) lets the cumulative sums drift on unit-variance
            # input and alarm every ~10^4 batches; the plain test (1.0) does not.
            "alpha": 1.0,
        }
    return ChangeDetector(config.stream_detector, params, replay_limit=config.replay_limit)


def river_threshold(config: MonitorConfig) -> float:
    """The configured detector's threshold, as a finding reports it."""
    if config.stream_detector == "adwin":
        return config.adwin_delta
    return config.pagehinkley_threshold


def restore_detector(det: ChangeDetector, state: Mapping[str, Any]) -> None:
    """Restore ``det`` from its snapshot, unless the snapshot is of another kind."""
    # A detector kind changed in the settings since the snapshot starts afresh.
    if state.get("kind") == det.kind:
        det.restore(state)


def block_mean_checks(
    detectors: Sequence[ChangeDetector],
    names: Sequence[str],
    sums: NDArray[np.float64],
    present: NDArray[np.int64],
    reference: tuple[NDArray[np.float64], NDArray[np.float64]],
    config: MonitorConfig,
    details: dict[str, Any],
) -> list[Check]:
    """Update each column's detector with its block's standardised mean; a ``data_drift``
    finding per detection. ``reference`` is the columns' reference means and deviations."""
    checks: list[Check] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / present
    shift = (means - reference[0]) / reference[1]
    z = shift * np.sqrt(present)
    thr = river_threshold(config)
    for j, det in enumerate(detectors):
        if present[j] == 0:
            continue
        if det.update(float(z[j])):
            name = names[j]
            extra = {
                **details,
                "batch_mean": float(means[j]),
                "reference_mean": float(reference[0][j]),
                "z": float(z[j]),
                **det.last_change,
            }
            f = Finding("data_drift", det.kind, float(shift[j]), thr, name, extra)
            checks.append((f"data_drift|{name}|{det.kind}", f, False))
    return checks


__all__ = ["block_mean_checks", "restore_detector", "river_threshold", "stream_detector"]
