"""What the promotion gates report: one result per check, and the report of a candidate."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def fmt_figure(value: float) -> str:
    """A gate's figure as text: three decimals, or two significant digits when tiny."""
    return f"{value:.2e}" if value != 0 and abs(value) < 0.01 else f"{value:.3f}"


@dataclass(frozen=True)
class GateResult:
    """The outcome of one check of one gate.

    Parameters
    ----------
    name : str
        The gate: ``cross_validation``, ``champion``, ``fairness`` or ``onnx_parity``.
    passed : bool
        Whether the check passed.
    value : float or None
        The measured value (None when the check is not numeric or did not run).
    threshold : float or None
        The bound the value was held to.
    detail : str
        One human-readable sentence.
    metric : str or None
        What ``value`` measures (``f1``, ``f1_std``, ``accuracy``, ``dp_gap``, ``eo_gap``,
        ``max_abs_diff``, ``sha256``).
    op : str
        How ``value`` must compare with ``threshold`` to pass: ``">="`` or ``"<="``.
    data : dict
        JSON-able figures behind the check (both models' metrics, per-group rates, ...).
    """

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str
    metric: str | None = None
    op: str = ">="
    data: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``"fairness dp_gap 0.310 > 0.200"`` for a failed numeric check, else name and detail."""
        label = f"{self.name} {self.metric}" if self.metric else self.name
        if self.value is None or self.threshold is None:
            return f"{label}: {self.detail}"
        failed_rel = "<" if self.op == ">=" else ">"
        rel = self.op if self.passed else failed_rel
        return f"{label} {fmt_figure(self.value)} {rel} {fmt_figure(self.threshold)}"


@dataclass(frozen=True)
class GateReport:
    """Every check of every gate, in gate order.

    Parameters
    ----------
    results : list of GateResult
        One or more per gate.
    candidate, champion : str or None
        ``name@version`` of the models compared (informative).
    """

    results: list[GateResult]
    candidate: str | None = None
    champion: str | None = None

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[GateResult]:
        """The checks that failed."""
        return [r for r in self.results if not r.passed]

    @property
    def failed_gates(self) -> list[str]:
        """Names of the gates with a failed check, in gate order, once each."""
        return list(dict.fromkeys(r.name for r in self.failed))

    def summary(self) -> str:
        """One line: ``"refused: fairness dp_gap 0.310 > 0.200"`` or ``"passed: ..."``."""
        if self.passed:
            return "passed: " + ", ".join(dict.fromkeys(r.name for r in self.results))
        return "refused: " + "; ".join(r.describe() for r in self.failed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the history, Redis and ``model-updates``)."""
        return {
            "passed": self.passed,
            "summary": self.summary(),
            "candidate": self.candidate,
            "champion": self.champion,
            "failed": self.failed_gates,
            "results": [asdict(r) for r in self.results],
        }


__all__ = ["GateReport", "GateResult", "fmt_figure"]
