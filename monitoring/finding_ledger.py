"""What one model's monitors have found: counts, the last finding per kind, active conditions.

The monitors return :data:`monitoring.drift.Check` tuples; :class:`FindingLedger` keeps what
:meth:`monitoring.model_monitor.ModelMonitor.health` reports of them. A failed check is
*active* under its key (scope and check): a windowed (periodic) check until a later window of
the same check passes, a change-detector finding for ``span`` ticks of its clock (``window``
scored events, or ``rolling_window`` labels for concept drift). Its JSON state is the
``findings`` part of a monitor snapshot (:mod:`monitoring.monitor_snapshot`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from monitoring.findings import FINDING_KINDS, Finding

if TYPE_CHECKING:
    from monitoring.drift import Check


class FindingLedger:
    """Counts and last finding per kind, and the active conditions behind a model's health.

    Examples
    --------
    >>> ledger = FindingLedger()
    >>> drift = Finding("data_drift", "psi", 0.41, 0.2, feature="x0")
    >>> found = ledger.record("champion", [("psi:x0", drift, True)], "events", 1000, 1000)
    >>> [f.kind for f in found], ledger.status(), ledger.counts["data_drift"]
    (['data_drift'], 'alerting', 1)
    >>> _ = ledger.record("champion", [("psi:x0", None, True)], "events", 2000, 1000)
    >>> ledger.status(), ledger.last["data_drift"]["feature"]  # the next window passed
    ('ok', 'x0')
    """

    def __init__(self) -> None:
        self.counts = dict.fromkeys(FINDING_KINDS, 0)
        self.last: dict[str, dict[str, Any]] = {}
        self.active: dict[str, dict[str, Any]] = {}

    def record(
        self, scope: str, checks: Sequence[Check], clock: str, now: int, span: int
    ) -> list[Finding]:
        """Note the checks of one batch of ``scope``; return the findings among them.

        ``clock`` names the counter (``events`` or ``labels``) that is at ``now``; a
        change-detector finding stays active until it reaches ``now + span``.
        """
        out: list[Finding] = []
        for key, finding, periodic in checks:
            akey = f"{scope}|{key}"
            if finding is None:
                self.active.pop(akey, None)
                continue
            doc = finding.to_dict()
            self.counts[finding.kind] += 1
            self.last[finding.kind] = doc
            self.active[akey] = {
                "finding": doc,
                "until": None if periodic else now + span,
                "clock": clock,
            }
            out.append(finding)
        return out

    def expire(self, clocks: Mapping[str, int]) -> None:
        """Drop the change-detector findings whose clock (by name) has passed their span."""
        stale = [
            k
            for k, a in self.active.items()
            if a["until"] is not None and clocks[a["clock"]] >= a["until"]
        ]
        for k in stale:
            del self.active[k]

    def active_findings(self) -> list[dict[str, Any]]:
        """The active findings as dicts, by key."""
        return [a["finding"] for _, a in sorted(self.active.items())]

    def status(self) -> str:
        """``ok``, ``degraded`` when only data quality is failing, else ``alerting``."""
        kinds = {a["finding"]["kind"] for a in self.active.values()}
        return "alerting" if kinds - {"data_quality"} else ("degraded" if kinds else "ok")

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: ``{counts: {kind: n}, last: {kind: finding}, active: {key: ...}}``."""
        return {
            "counts": dict(self.counts),
            "last": dict(self.last),
            "active": {k: dict(v) for k, v in self.active.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`snapshot` (kinds it lacks count zero).

        Raises
        ------
        KeyError, TypeError, ValueError
            A malformed snapshot.
        """
        self.counts = {k: int(state["counts"].get(k, 0)) for k in FINDING_KINDS}
        self.last = {str(k): dict(v) for k, v in state["last"].items()}
        self.active = {str(k): dict(v) for k, v in state["active"].items()}


__all__ = ["FindingLedger"]
