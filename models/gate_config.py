"""The thresholds of the promotion gates, as one frozen value.

Apart from :mod:`models.gates` so that the settings can validate them at load without
importing scikit-learn and ONNX Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from models.errors import ConfigError


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the gates.

    Parameters
    ----------
    min_cv_f1, max_cv_f1_std : float
        Bounds on the candidate's cross-validated F1 mean and fold standard deviation.
    min_improvement : float
        The candidate's ``metric`` on the holdout must be at least the champion's plus this
        (negative values accept a slightly worse candidate).
    metric : {"accuracy", "f1"}
        The metric of the champion gate.
    max_dp_gap, max_eo_gap : float or None
        Bounds on the candidate's fairness gaps on the holdout; None disables one.
    parity_tolerance : float
        Largest accepted recorded ``max |p_onnx - p_sklearn|``.
    min_holdout_rows : int
        Fewer holdout rows than this is an unusable input (the comparison would be noise).
    min_group_rows : int
        Sensitive groups with fewer holdout rows are left out of the fairness gaps.
    """

    min_cv_f1: float = 0.5
    max_cv_f1_std: float = 0.15
    min_improvement: float = 0.0
    metric: Literal["f1", "accuracy"] = "accuracy"
    max_dp_gap: float | None = 0.25
    max_eo_gap: float | None = 0.25
    parity_tolerance: float = 1e-4
    min_holdout_rows: int = 30
    min_group_rows: int = 30

    def __post_init__(self) -> None:
        if self.metric not in ("f1", "accuracy"):
            raise ConfigError(
                f"gate metric must be f1 or accuracy, got {self.metric!r}",
                option="metric",
                value=self.metric,
            )
        for option in ("max_cv_f1_std", "parity_tolerance", "max_dp_gap", "max_eo_gap"):
            value = getattr(self, option)
            if value is not None and value < 0:
                raise ConfigError(f"{option} must be >= 0, got {value}", option=option, value=value)
        if self.min_holdout_rows < 1:
            raise ConfigError(
                "min_holdout_rows must be >= 1",
                option="min_holdout_rows",
                value=self.min_holdout_rows,
            )


__all__ = ["GateConfig"]
