"""What a monitor reports: one :class:`Finding` per test that failed.

A finding is a plain frozen value. The streams shell turns findings into alerts (after
:class:`monitoring.alerts.AlertPolicy` has deduplicated them) by adding the model name,
version and time; ``to_dict`` is the JSON form of the finding part of that contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

# The one list of what a monitor can find: the alert kinds of the wire contract, the CLI's
# filter, the metrics' labels and the report's markers all come from here.
FindingKind = Literal[
    "data_drift", "prediction_drift", "concept_drift", "performance", "fairness", "data_quality"
]
FINDING_KINDS: tuple[str, ...] = get_args(FindingKind)


@dataclass(frozen=True)
class Finding:
    """One failed check of a monitor.

    Parameters
    ----------
    kind : str
        ``data_drift``, ``prediction_drift``, ``concept_drift``, ``performance``, ``fairness``
        or ``data_quality``.
    detector : str
        The test that fired: ``psi``, ``ks``, ``cusum``, ``adwin``, ``pagehinkley``, ``ddm``,
        ``f1_drop``, ``accuracy_drop``, ``estimated_f1_drop``, ``estimated_accuracy_drop``,
        ``dp_gap``, ``eo_gap``, ``missing_rate`` or ``out_of_range``. An ``estimated_*``
        finding comes from calibrated scores before any label (:mod:`monitoring.estimator`);
        its details say ``estimated: true``. A ``cusum`` finding's details say which test
        (``location``, ``scale``, ``category``) and alternative fired; its statistic is the
        CUSUM's value.
    statistic : float
        The observed value of the test statistic (PSI, KS p-value, rolling F1, gap, rate, ...).
    threshold : float
        The threshold the statistic crossed.
    feature : str or None
        The feature concerned (data drift and data quality), else None.
    details : dict
        JSON-able context: version, variant, window size, per-group rates, ...

    Examples
    --------
    >>> f = Finding("data_drift", "psi", 0.41, 0.2, feature="x3", details={"window": 2000})
    >>> f.to_dict()["feature"], f.key
    ('x3', ('data_drift', 'x3'))
    """

    kind: FindingKind
    detector: str
    statistic: float
    threshold: float
    feature: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str | None]:
        """``(kind, feature)``: what one alert is about (several detectors may agree)."""
        return (self.kind, self.feature)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``orjson.dumps`` works on it)."""
        return {
            "kind": self.kind,
            "detector": self.detector,
            "statistic": float(self.statistic),
            "threshold": float(self.threshold),
            "feature": self.feature,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict`."""
        kind = str(data["kind"])
        if kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding kind {kind!r}")
        return cls(
            kind=kind,  # type: ignore[arg-type]
            detector=str(data["detector"]),
            statistic=float(data["statistic"]),
            threshold=float(data["threshold"]),
            feature=None if data.get("feature") is None else str(data["feature"]),
            details=dict(data.get("details") or {}),
        )


# What a monitor's check returns: ``(key, finding or None, periodic)``. A periodic check
# (windowed tests) that passes returns None so that the caller can clear a standing condition.
Check = tuple[str, Finding | None, bool]

__all__ = ["FINDING_KINDS", "Check", "Finding", "FindingKind"]
