"""An always-valid sequential test that decides whether a shadow candidate beats the champion.

While a candidate runs in shadow, both models score the same events; once an event's label
arrives each model is either right or wrong on it. :class:`PairedMSPRT` tests the mean of the
paired differences ``d = candidate_correct - champion_correct`` (in ``{-1, 0, 1}``: the
accuracy difference) with a mixture sequential probability ratio test (mSPRT; Robbins 1970,
Johari et al., "Always valid inference", 2017).

The rule
--------
With ``n`` pairs, mean ``m`` and variance ``s²`` of the differences (``s²`` floored at
``var_floor``), ``V = s²/n`` and a normal mixing distribution ``N(θ0, τ²)`` over the mean,
the mixture likelihood ratio against ``H0: mean = θ0`` is::

    Λ(θ0) = sqrt(V / (V + τ²)) · exp(τ² (m - θ0)² / (2 V (V + τ²)))

and ``{θ : Λ(θ) < 1/α}`` is a confidence interval that is valid *uniformly over time*: the
probability that it ever excludes the true mean, however often one looks, is at most ``α``.
Its half-width is ``sqrt(2 V (V + τ²) / τ² · (log(1/α) + ½ log((V + τ²) / V)))``. From
``min_pairs`` on, after every batch, the running interval is intersected with the previous
one (still always valid) and the always-valid p-value ``p = min over looks of 1/Λ(-margin)``.

- **promote** when ``ci_low > -margin``: the candidate is significantly better than the
  champion minus ``margin`` (with ``margin = 0``: significantly better);
- **reject** when ``ci_high < -margin`` (significantly worse), or when ``max_pairs`` pairs
  arrived without a decision (no evidence of a gain is a reason to keep the champion);
- **continue** otherwise. A decision is final: later batches are ignored.

The interval is two-sided at level ``α``, so the probability of a false promotion (promoting
a candidate that is no better than ``champion - margin``) is at most ``α`` — about ``α/2`` by
symmetry. ``s²`` is estimated from the data (the plug-in of the usual mSPRT), which is why no
decision is taken before ``min_pairs``; seeded simulations (see the tests) measure a false
promotion rate well under ``α`` on equal models.

The state is five numbers and the running bounds, so a snapshot is exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from monitoring.errors import BatchError, MonitorConfigError, SnapshotError

Decision = Literal["continue", "promote", "reject"]
SEQUENTIAL_SCHEMA_VERSION = 1


class PairedMSPRT:
    """Always-valid mixture SPRT on paired correctness of a candidate and the champion.

    Parameters
    ----------
    alpha : float
        Level of the always-valid confidence interval (bound on the false-promotion rate).
    tau : float
        Standard deviation of the normal mixing distribution: the size of accuracy gain the
        test is most sensitive to (0.1 suits gains of a few points to ~10 points).
    min_pairs : int
        Pairs before any decision (the variance estimate needs them).
    max_pairs : int
        Pairs after which an undecided test rejects the candidate.
    margin : float
        Accepted loss: promote when the candidate is significantly better than
        ``champion - margin``.
    var_floor : float
        Smallest variance used (guards against a run of ties).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> test = PairedMSPRT(alpha=0.05, min_pairs=200)
    >>> decision = "continue"
    >>> while decision == "continue":
    ...     truth = rng.random(256)
    ...     decision = test.update(truth < 0.90, truth < 0.80)  # candidate 10 points better
    >>> decision, test.statistics()["ci_low"] > 0
    ('promote', True)
    >>> twin = PairedMSPRT()
    >>> twin.restore(test.snapshot())
    >>> twin.decision, twin.statistics() == test.statistics()
    ('promote', True)
    """

    def __init__(
        self,
        alpha: float = 0.05,
        tau: float = 0.1,
        min_pairs: int = 200,
        max_pairs: int = 20_000,
        margin: float = 0.0,
        var_floor: float = 1e-4,
    ) -> None:
        self._check(alpha, tau, min_pairs, max_pairs, margin, var_floor)
        self.alpha = alpha
        self.tau = tau
        self.min_pairs = min_pairs
        self.max_pairs = max_pairs
        self.margin = margin
        self.var_floor = var_floor
        self._reset()

    @staticmethod
    def _check(
        alpha: float, tau: float, min_pairs: int, max_pairs: int, margin: float, var_floor: float
    ) -> None:
        checks: tuple[tuple[str, object, bool], ...] = (
            ("alpha", alpha, 0 < alpha < 1),
            ("tau", tau, tau > 0),
            ("min_pairs", min_pairs, min_pairs >= 2),
            ("max_pairs", max_pairs, max_pairs >= min_pairs),
            ("margin", margin, 0 <= margin < 1),
            ("var_floor", var_floor, var_floor > 0),
        )
        for option, value, ok in checks:
            if not ok:
                raise MonitorConfigError(
                    f"invalid sequential-test setting {option}={value!r}",
                    option=option,
                    value=value,
                )

    def _reset(self) -> None:
        self.wins = 0  # candidate right, champion wrong
        self.losses = 0  # candidate wrong, champion right
        self.n = 0
        self.ci_low = -1.0
        self.ci_high = 1.0
        self.p_value = 1.0
        self._decision: Decision = "continue"
        self.reason = ""

    @property
    def decision(self) -> Decision:
        """``continue``, ``promote`` or ``reject`` (final once not ``continue``)."""
        return self._decision

    def _moments(self) -> tuple[float, float]:
        if self.n == 0:
            return 0.0, self.var_floor
        mean = (self.wins - self.losses) / self.n
        var = (self.wins + self.losses) / self.n - mean * mean
        return mean, max(var, self.var_floor)

    def _log_lambda(self, theta: float) -> float:
        mean, var = self._moments()
        if self.n == 0:
            return 0.0
        v = var / self.n
        t2 = self.tau * self.tau
        return 0.5 * math.log(v / (v + t2)) + t2 * (mean - theta) ** 2 / (2 * v * (v + t2))

    def _half_width(self) -> float:
        _, var = self._moments()
        v = var / self.n
        t2 = self.tau * self.tau
        return math.sqrt(
            2 * v * (v + t2) / t2 * (math.log(1 / self.alpha) + 0.5 * math.log((v + t2) / v))
        )

    def update(
        self, candidate_correct: NDArray[np.bool_], champion_correct: NDArray[np.bool_]
    ) -> Decision:
        """Add a batch of paired outcomes (same events, same order) and decide.

        Raises
        ------
        BatchError
            The two arrays differ in length.
        """
        cand = np.asarray(candidate_correct, dtype=bool).ravel()
        champ = np.asarray(champion_correct, dtype=bool).ravel()
        if cand.shape != champ.shape:
            raise BatchError(
                f"paired outcomes differ in length: {cand.shape[0]} vs {champ.shape[0]}"
            )
        if self._decision != "continue" or cand.size == 0:
            return self._decision
        room = self.max_pairs - self.n
        cand, champ = cand[:room], champ[:room]
        self.wins += int(np.count_nonzero(cand & ~champ))
        self.losses += int(np.count_nonzero(~cand & champ))
        self.n += int(cand.size)
        if self.n < self.min_pairs:
            return self._decision
        mean, _ = self._moments()
        half = self._half_width()
        self.ci_low = max(self.ci_low, mean - half)
        self.ci_high = min(self.ci_high, mean + half)
        log_lam = self._log_lambda(-self.margin)
        self.p_value = min(self.p_value, 1.0 if log_lam <= 0 else math.exp(-log_lam))
        if self.ci_low > -self.margin:
            self._decision, self.reason = "promote", "candidate significantly better"
        elif self.ci_high < -self.margin:
            self._decision, self.reason = "reject", "candidate significantly worse"
        elif self.n >= self.max_pairs:
            self._decision, self.reason = "reject", f"no evidence after {self.n} pairs"
        return self._decision

    def statistics(self) -> dict[str, float]:
        """``n``, ``wins``, ``losses``, ``mean_diff``, ``variance``, ``lambda`` (at
        ``-margin``), always-valid ``p_value``, ``ci_low`` and ``ci_high`` (``[-1, 1]`` before
        ``min_pairs``)."""
        mean, var = self._moments()
        log_lam = self._log_lambda(-self.margin)
        return {
            "n": float(self.n),
            "wins": float(self.wins),
            "losses": float(self.losses),
            "mean_diff": mean,
            "variance": var,
            "lambda": math.exp(min(log_lam, 700.0)),
            "p_value": self.p_value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state (settings included: a test continues with the settings it began)."""
        return {
            "schema_version": SEQUENTIAL_SCHEMA_VERSION,
            "params": {
                "alpha": self.alpha,
                "tau": self.tau,
                "min_pairs": self.min_pairs,
                "max_pairs": self.max_pairs,
                "margin": self.margin,
                "var_floor": self.var_floor,
            },
            "wins": self.wins,
            "losses": self.losses,
            "n": self.n,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "decision": self._decision,
            "reason": self.reason,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot`; the snapshot's settings replace this test's.

        Raises
        ------
        SnapshotError
            Another schema version or a malformed state.
        """
        if state.get("schema_version") != SEQUENTIAL_SCHEMA_VERSION:
            raise SnapshotError(
                f"sequential-test snapshot schema_version {state.get('schema_version')!r} "
                f"is not {SEQUENTIAL_SCHEMA_VERSION}",
                found=state.get("schema_version"),
            )
        try:
            p = state["params"]
            params = (
                float(p["alpha"]),
                float(p["tau"]),
                int(p["min_pairs"]),
                int(p["max_pairs"]),
                float(p["margin"]),
                float(p["var_floor"]),
            )
            self._check(*params)
            decision = str(state["decision"])
            if decision not in ("continue", "promote", "reject"):
                raise ValueError(f"unknown decision {decision!r}")
            wins, losses, n = int(state["wins"]), int(state["losses"]), int(state["n"])
            ci_low, ci_high = float(state["ci_low"]), float(state["ci_high"])
            p_value, reason = float(state["p_value"]), str(state["reason"])
        except (KeyError, TypeError, ValueError, MonitorConfigError) as exc:
            raise SnapshotError(f"malformed sequential-test snapshot: {exc}") from exc
        (self.alpha, self.tau, self.min_pairs, self.max_pairs, self.margin, self.var_floor) = params
        self.wins, self.losses, self.n = wins, losses, n
        self.ci_low, self.ci_high, self.p_value, self.reason = ci_low, ci_high, p_value, reason
        self._decision = decision  # type: ignore[assignment]


__all__ = ["SEQUENTIAL_SCHEMA_VERSION", "Decision", "PairedMSPRT"]
