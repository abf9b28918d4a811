"""River change detectors whose state is JSON, rebuilt by replay.

River detector objects are never pickled. A :class:`ChangeDetector` keeps, next to its River
detector, the inputs it received since the detector last reset (River's ADWIN, Page-Hinkley,
DDM, EDDM and HDDM all start afresh on the update after a detection), capped at
``replay_limit`` values. Its snapshot is those values; :meth:`ChangeDetector.restore` feeds
them to a fresh River detector. The rebuilt detector is identical to the original as long as
fewer than ``replay_limit`` inputs arrived since the last reset; beyond that it is a detector
that has seen the most recent ``replay_limit`` inputs, which only makes it slightly younger.

Inputs are per-batch aggregates for feature and score detectors (one update per batch) and
0/1 errors for concept-drift detectors (one update per labelled event, ~0.2–0.5 µs each).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from river import drift

from monitoring.errors import SnapshotError

KINDS: tuple[str, ...] = ("adwin", "pagehinkley", "ddm", "eddm", "hddm_a", "hddm_w")


def _river_detector(kind: str, params: Mapping[str, float]) -> Any:
    if kind == "adwin":
        return drift.ADWIN(  # type: ignore[no-untyped-call]
            delta=params.get("delta", 0.002), clock=int(params.get("clock", 32))
        )
    if kind == "pagehinkley":
        return drift.PageHinkley(
            min_instances=int(params.get("min_instances", 30)),
            delta=params.get("delta", 0.005),
            threshold=params.get("threshold", 50.0),
            alpha=params.get("alpha", 0.9999),
        )
    if kind == "ddm":
        return drift.binary.DDM(
            warm_start=int(params.get("warm_start", 30)),
            drift_threshold=params.get("drift_threshold", 3.0),
        )
    if kind == "eddm":
        return drift.binary.EDDM()
    if kind == "hddm_a":
        return drift.binary.HDDMA()  # type: ignore[no-untyped-call]
    if kind == "hddm_w":
        return drift.binary.HDDMW()  # type: ignore[no-untyped-call]
    raise ValueError(f"unknown detector kind {kind!r}; choose from {', '.join(KINDS)}")


class ChangeDetector:
    """A River change detector with a JSON snapshot (implements ``DriftMonitor``).

    Parameters
    ----------
    kind : str
        ``adwin`` or ``pagehinkley`` (real values), ``ddm``, ``eddm``, ``hddm_a`` or
        ``hddm_w`` (0/1 values; ADWIN also works on 0/1).
    params : mapping of str to float
        River parameters: ``delta`` and ``clock`` for ADWIN; ``delta``, ``threshold``,
        ``min_instances`` and ``alpha`` for Page-Hinkley; ``drift_threshold`` and
        ``warm_start`` for DDM.
    replay_limit : int
        Most inputs kept to rebuild the detector on restore.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = ChangeDetector("adwin", {"delta": 0.002})
    >>> stream = np.r_[rng.normal(0, 1, 300), rng.normal(3, 1, 300)]
    >>> hits = det.update_many(stream.tolist())
    >>> len(hits) >= 1 and 300 <= hits[0] < 360
    True
    >>> twin = ChangeDetector("adwin", {"delta": 0.002})
    >>> twin.restore(det.snapshot())
    >>> twin.estimation == det.estimation
    True
    """

    def __init__(
        self, kind: str, params: Mapping[str, float] | None = None, replay_limit: int = 500
    ) -> None:
        self.kind = kind
        self.params = {k: float(v) for k, v in (params or {}).items()}
        self.replay_limit = replay_limit
        self._det = _river_detector(kind, self.params)
        self._since_reset: deque[float] = deque(maxlen=replay_limit)
        self.updates = 0
        self.detections = 0
        self.last_change: dict[str, float] = {}

    @property
    def estimation(self) -> float | None:
        """ADWIN's mean of its current window (None for other detectors)."""
        if self.kind != "adwin":
            return None
        return float(self._det.estimation)

    @property
    def warning(self) -> bool:
        """Whether a binary detector is in its warning zone."""
        return bool(getattr(self._det, "warning_detected", False))

    def update(self, x: float) -> bool:
        """Feed one value; True when a change is detected on it."""
        if self._det.drift_detected:
            self._since_reset.clear()
        self._det.update(x)
        self._since_reset.append(x)
        self.updates += 1
        if self._det.drift_detected:
            self.detections += 1
            self._describe_change()
            return True
        return False

    def _describe_change(self) -> None:
        """Record the mean before and after the change (ADWIN) or since the last reset."""
        values = list(self._since_reset)
        info = {"mean_since_reset": sum(values) / len(values)}
        if self.kind == "adwin":
            width = int(self._det.width)
            older = values[: max(len(values) - width, 0)]
            info["after"] = float(self._det.estimation)
            info["before"] = sum(older) / len(older) if older else info["mean_since_reset"]
        self.last_change = info

    def update_many(self, xs: Iterable[float]) -> list[int]:
        """Feed values in order; return the positions at which a change was detected."""
        hits: list[int] = []
        det = self._det
        buf = self._since_reset
        n = 0
        for i, x in enumerate(xs):
            n = i + 1
            if det.drift_detected:
                buf.clear()
            det.update(x)
            buf.append(x)
            if det.drift_detected:
                hits.append(i)
                self._describe_change()
        self.updates += n
        self.detections += len(hits)
        return hits

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: kind, parameters, counters and the inputs since the last reset."""
        pending = bool(self._det.drift_detected)
        return {
            "kind": self.kind,
            "params": dict(self.params),
            "updates": self.updates,
            "detections": self.detections,
            # After a detection River resets on the next update: nothing to replay.
            "replay": [] if pending else list(self._since_reset),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Rebuild from :meth:`snapshot` output by replaying its inputs into a fresh detector.

        Raises
        ------
        SnapshotError
            The state belongs to another kind of detector or is malformed.
        """
        if state.get("kind") != self.kind:
            raise SnapshotError(
                f"detector snapshot is of kind {state.get('kind')!r}, expected {self.kind!r}",
                found=state.get("kind"),
            )
        try:
            replay = [float(v) for v in state["replay"]]
            updates, detections = int(state["updates"]), int(state["detections"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"malformed {self.kind} detector snapshot: {exc}") from exc
        self._det = _river_detector(self.kind, self.params)
        self._since_reset.clear()
        for x in replay[-self.replay_limit :]:
            if self._det.drift_detected:
                self._since_reset.clear()
            self._det.update(x)
            self._since_reset.append(x)
        self.updates, self.detections = updates, detections


__all__ = ["KINDS", "ChangeDetector"]
