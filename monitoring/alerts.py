"""Turn findings into alerts: one alert per condition, then silence for a cooldown.

Monitors report a failing check every time they evaluate it (every window, every labelled
batch) and several detectors often agree on one change. :class:`AlertPolicy` keys findings by
``(model, version, kind, feature)``: within one call the first finding of a key is kept (the
others' detectors are listed in its ``details["detectors"]``), and a key that alerted is
silent for ``cooldown_s`` seconds; the next alert of the key reports how many findings were
suppressed meanwhile (``details["suppressed"]``). One drift is one alert, not thousands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from monitoring.errors import MonitoringError, SnapshotError
from monitoring.findings import Finding

_Key = tuple[str, str, str, str | None]
ALERTS_SCHEMA_VERSION = 1


class AlertPolicy:
    """Dedupe and cooldown of findings per (model, version, kind, feature).

    Parameters
    ----------
    cooldown_s : float
        Seconds during which a key that alerted stays silent.

    Examples
    --------
    >>> policy = AlertPolicy(cooldown_s=300.0)
    >>> psi = Finding("data_drift", "psi", 0.5, 0.2, feature="x1")
    >>> ks = Finding("data_drift", "ks", 1e-9, 1e-3, feature="x1")
    >>> [f.detector for f in policy.decide("m", "v1", [psi, ks], now=0.0)]
    ['psi']
    >>> policy.decide("m", "v1", [psi], now=100.0)
    []
    >>> [f.details["suppressed"] for f in policy.decide("m", "v1", [ks], now=301.0)]
    [1]
    """

    def __init__(self, cooldown_s: float = 300.0) -> None:
        if cooldown_s < 0:
            raise MonitoringError(f"cooldown_s must be >= 0, got {cooldown_s}")
        self.cooldown_s = cooldown_s
        self._last: dict[_Key, float] = {}
        self._suppressed: dict[_Key, int] = {}

    def decide(
        self, model: str, version: str, findings: Sequence[Finding], now: float
    ) -> list[Finding]:
        """The findings that should alert now, at most one per key."""
        chosen: dict[_Key, Finding] = {}
        also: dict[_Key, list[str]] = {}
        for f in findings:
            key: _Key = (model, version, str(f.kind), f.feature)
            if key in chosen:
                also[key].append(f.detector)
                continue
            last = self._last.get(key)
            if last is not None and now - last < self.cooldown_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                continue
            chosen[key] = f
            also[key] = [f.detector]
        out: list[Finding] = []
        for key, f in chosen.items():
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
            details = {**f.details, "suppressed": suppressed, "detectors": also[key]}
            out.append(dataclasses.replace(f, details=details))
        self._prune(now)
        return out

    def _prune(self, now: float) -> None:
        # Keys whose cooldown ended long ago would alert anyway: forget them (bounded memory).
        old = [k for k, t in self._last.items() if now - t >= 10 * self.cooldown_s + 1]
        for k in old:
            del self._last[k]
            self._suppressed.pop(k, None)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: last alert time and suppressed count per key."""
        return {
            "schema_version": ALERTS_SCHEMA_VERSION,
            "cooldown_s": self.cooldown_s,
            "keys": [
                {
                    "model": k[0],
                    "version": k[1],
                    "kind": k[2],
                    "feature": k[3],
                    "last": t,
                    "suppressed": self._suppressed.get(k, 0),
                }
                for k, t in self._last.items()
            ],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot` (the cooldown in force stays this policy's).

        Raises
        ------
        SnapshotError
            Another schema version or a malformed state.
        """
        if state.get("schema_version") != ALERTS_SCHEMA_VERSION:
            raise SnapshotError(
                f"alert policy snapshot schema_version {state.get('schema_version')!r} "
                f"is not {ALERTS_SCHEMA_VERSION}",
                found=state.get("schema_version"),
            )
        try:
            last: dict[_Key, float] = {}
            suppressed: dict[_Key, int] = {}
            for e in state["keys"]:
                feature = None if e["feature"] is None else str(e["feature"])
                key = (str(e["model"]), str(e["version"]), str(e["kind"]), feature)
                last[key] = float(e["last"])
                if int(e["suppressed"]):
                    suppressed[key] = int(e["suppressed"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"malformed alert policy snapshot: {exc!r}") from exc
        self._last, self._suppressed = last, suppressed


__all__ = ["ALERTS_SCHEMA_VERSION", "AlertPolicy"]
