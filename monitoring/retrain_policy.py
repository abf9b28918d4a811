"""When to ask for a new model version: the retrain policy.

:meth:`RetrainPolicy.consider` looks at the alerts of one served model version (dicts of the
alert contract: ``alert_id``, ``kind``, ``model``, ``version``, ``feature``, ``detector``,
``statistic``, ``threshold``, ``at``) and at the online challenger, and returns a
:class:`RetrainRequestDecision` or None. It asks for retraining when:

- an alert of a kind in ``on_kinds`` arrives (default: ``concept_drift``, ``performance``),
  except a performance estimated without labels (detector ``estimated_...``): there are no
  labels yet to train a better model on, so it alerts and leaves the request to the labels;
- data drift is *sustained*: ``data_drift_sustained`` distinct ``data_drift`` alerts for the
  version within ``data_drift_window_s`` (one drifting feature is often harmless, several or
  a persistent one rarely are);
- the online challenger beats the champion by ``challenger_margin`` in accuracy with
  significance over at least ``challenger_min_labels`` labels. With the paired correctness of
  both models on the same events this is a one-sided exact McNemar test: among the events
  where exactly one model is right, the number the challenger wins is Binomial(k, ½) under
  "no better"; the request needs ``p < challenger_alpha`` and a win rate
  ``(wins - losses) / n >= challenger_margin``. Without pairs, the rolling accuracies of the
  two metric dicts are compared with a one-sided two-proportion z-test (conservative, as it
  ignores that both models saw the same events).

Alerts are deduplicated by ``alert_id`` (an alert delivered twice counts once) and requests
are rate-limited per ``(model, version)``: at most one per ``min_interval_s``. Triggers in the
quiet period are dropped (the request in flight already covers them) and counted in the next
request's ``details["suppressed"]``. Evidence of sustained drift is consumed by a request.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitoring.errors import BatchError, MonitorConfigError, SnapshotError

RETRAIN_POLICY_SCHEMA_VERSION = 1
_SEEN_LIMIT = 10_000


@dataclass(frozen=True)
class RetrainRequestDecision:
    """A decision to ask for retraining.

    Parameters
    ----------
    reason : str
        One line naming every trigger.
    kinds : list of str
        The triggers: alert kinds (``concept_drift``, ``performance``, ``data_drift``, ...)
        and/or ``challenger``.
    alert_ids : list of str
        The alerts behind the request.
    details : dict
        JSON-able evidence: per trigger, the statistics; ``suppressed``; model and version.
    request_id : str
        Deterministic id of the request (same model, version, triggers, alerts and, for the
        challenger, label count → same id), so a request re-emitted after a restart can be
        recognised downstream.
    """

    reason: str
    kinds: list[str]
    alert_ids: list[str]
    details: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "request_id": self.request_id,
            "reason": self.reason,
            "kinds": list(self.kinds),
            "alert_ids": list(self.alert_ids),
            "details": dict(self.details),
        }


def mcnemar_one_sided(
    challenger_correct: NDArray[np.bool_], champion_correct: NDArray[np.bool_]
) -> tuple[int, int, float]:
    """Wins, losses and the exact one-sided McNemar p-value of "challenger no better".

    Examples
    --------
    >>> c = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 1], dtype=bool)
    >>> h = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    >>> wins, losses, p = mcnemar_one_sided(c, h)
    >>> wins, losses, round(p, 4)
    (8, 0, 0.0039)
    """
    # scipy.stats costs several times numpy's import: loaded by the first test, not with this
    # module, so code that imports the policy only for its settings and types pays numpy at most.
    from scipy.stats import binom

    cand = np.asarray(challenger_correct, dtype=bool).ravel()
    champ = np.asarray(champion_correct, dtype=bool).ravel()
    if cand.shape != champ.shape:
        raise BatchError(f"paired outcomes differ in length: {cand.size} vs {champ.size}")
    wins = int(np.count_nonzero(cand & ~champ))
    losses = int(np.count_nonzero(~cand & champ))
    k = wins + losses
    p = 1.0 if k == 0 else float(binom.sf(wins - 1, k, 0.5))
    return wins, losses, p


def _rolling(metrics: Mapping[str, Any]) -> tuple[float | None, int]:
    section = metrics.get("rolling", metrics)
    acc = section.get("accuracy")
    count = section.get("count", metrics.get("labels", 0))
    return (None if acc is None else float(acc)), int(count or 0)


class RetrainPolicy:
    """Decides when a served model version should be retrained.

    Parameters
    ----------
    on_kinds : tuple of str
        Alert kinds that ask for retraining on their own.
    data_drift_sustained : int
        ``data_drift`` alerts (distinct ids, same version) that make drift sustained.
    challenger_margin : float
        Accuracy gain of the online challenger over the champion needed to ask.
    challenger_min_labels : int
        Labels (paired events) needed before the challenger may ask.
    min_interval_s : float
        Least time between two requests for one (model, version).
    challenger_alpha : float
        Significance level of the challenger test.
    data_drift_window_s : float
        Data-drift alerts older than this (by their ``at``) no longer count.

    Examples
    --------
    >>> policy = RetrainPolicy(min_interval_s=600.0)
    >>> drift = {"alert_id": "a1", "kind": "concept_drift", "detector": "adwin", "version": "3"}
    >>> req = policy.consider("credit", "3", [drift], now=0.0)
    >>> req.kinds, req.alert_ids
    (['concept_drift'], ['a1'])
    >>> again = {**drift, "alert_id": "a2"}
    >>> policy.consider("credit", "3", [again], now=60.0) is None  # rate-limited
    True
    >>> policy.consider("credit", "3", [{**drift, "alert_id": "a3"}], now=700.0).details[
    ...     "suppressed"]
    1
    """

    def __init__(
        self,
        *,
        on_kinds: tuple[str, ...] = ("concept_drift", "performance"),
        data_drift_sustained: int = 3,
        challenger_margin: float = 0.02,
        challenger_min_labels: int = 500,
        min_interval_s: float = 600.0,
        challenger_alpha: float = 0.01,
        data_drift_window_s: float = 3600.0,
    ) -> None:
        checks: tuple[tuple[str, object, bool], ...] = (
            ("data_drift_sustained", data_drift_sustained, data_drift_sustained >= 1),
            ("challenger_margin", challenger_margin, 0 <= challenger_margin < 1),
            ("challenger_min_labels", challenger_min_labels, challenger_min_labels >= 1),
            ("min_interval_s", min_interval_s, min_interval_s >= 0),
            ("challenger_alpha", challenger_alpha, 0 < challenger_alpha < 1),
            ("data_drift_window_s", data_drift_window_s, data_drift_window_s > 0),
        )
        for option, value, ok in checks:
            if not ok:
                raise MonitorConfigError(
                    f"invalid retrain-policy setting {option}={value!r}", option=option, value=value
                )
        self.on_kinds = tuple(on_kinds)
        self.data_drift_sustained = data_drift_sustained
        self.challenger_margin = challenger_margin
        self.challenger_min_labels = challenger_min_labels
        self.min_interval_s = min_interval_s
        self.challenger_alpha = challenger_alpha
        self.data_drift_window_s = data_drift_window_s
        self._seen: deque[str] = deque(maxlen=_SEEN_LIMIT)
        self._seen_set: set[str] = set()
        self._drift: dict[tuple[str, str], list[tuple[str, float]]] = {}
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    # -- triggers -----------------------------------------------------------------------
    def _fresh_alerts(
        self, model: str, version: str, alerts: Sequence[Mapping[str, Any]]
    ) -> list[Mapping[str, Any]]:
        out = []
        for a in alerts:
            # An alert without a version (or model) is about the served one.
            if (a.get("model") or model) != model or str(a.get("version") or version) != version:
                continue
            alert_id = str(a.get("alert_id", ""))
            if alert_id:
                if alert_id in self._seen_set:
                    continue
                if len(self._seen) == self._seen.maxlen:
                    self._seen_set.discard(self._seen[0])
                self._seen.append(alert_id)
                self._seen_set.add(alert_id)
            out.append(a)
        return out

    def _challenger(
        self,
        champion_metrics: Mapping[str, Any] | None,
        challenger_metrics: Mapping[str, Any] | None,
        paired: tuple[NDArray[np.bool_], NDArray[np.bool_]] | None,
    ) -> dict[str, Any] | None:
        if paired is not None:
            wins, losses, p = mcnemar_one_sided(paired[0], paired[1])
            n = int(np.asarray(paired[0]).size)
            gain = (wins - losses) / n if n else 0.0
            test = "mcnemar"
        elif champion_metrics is not None and challenger_metrics is not None:
            acc_ch, n_ch = _rolling(challenger_metrics)
            acc_h, n_h = _rolling(champion_metrics)
            if acc_ch is None or acc_h is None:
                return None
            n = min(n_ch, n_h)
            gain = acc_ch - acc_h
            pooled = (acc_ch * n_ch + acc_h * n_h) / max(n_ch + n_h, 1)
            se = math.sqrt(pooled * (1 - pooled) * (1 / max(n_ch, 1) + 1 / max(n_h, 1)))
            from scipy.stats import norm  # on first use, as in mcnemar_one_sided

            p = (0.0 if gain > 0 else 1.0) if se == 0 else float(norm.sf(gain / se))
            wins = losses = -1
            test = "two_proportion_z"
        else:
            return None
        if n < self.challenger_min_labels or gain < self.challenger_margin:
            return None
        if p >= self.challenger_alpha:
            return None
        return {
            "test": test,
            "labels": n,
            "gain": gain,
            "p_value": p,
            "wins": wins,
            "losses": losses,
        }

    # -- decision -----------------------------------------------------------------------
    def consider(
        self,
        model: str,
        version: str,
        alerts: Sequence[Mapping[str, Any]],
        now: float,
        champion_metrics: Mapping[str, Any] | None = None,
        challenger_metrics: Mapping[str, Any] | None = None,
        paired: tuple[NDArray[np.bool_], NDArray[np.bool_]] | None = None,
    ) -> RetrainRequestDecision | None:
        """A retrain request for ``model@version``, or None.

        Parameters
        ----------
        model, version : str
            The served version; alerts of other models or versions are ignored (an alert
            without a model or version counts as this one's).
        alerts : sequence of mapping
            New alerts (already-seen ``alert_id`` values are ignored).
        now : float
            Current time in seconds (the clock of ``at`` in alerts and of the rate limit).
        champion_metrics, challenger_metrics : mapping or None
            Metric dicts with a ``rolling`` section (``accuracy``, ``count``), used when
            ``paired`` is None.
        paired : (ndarray of bool, ndarray of bool) or None
            Challenger and champion correctness on the same recent labelled events.
        """
        key = (model, version)
        kinds: list[str] = []
        alert_ids: list[str] = []
        details: dict[str, Any] = {"model": model, "version": version}
        parts: list[str] = []
        drift = self._drift.setdefault(key, [])
        for a in self._fresh_alerts(model, version, alerts):
            kind, alert_id = str(a.get("kind", "")), str(a.get("alert_id", ""))
            if str(a.get("detector", "")).startswith("estimated_"):
                continue
            if kind in self.on_kinds:
                if kind not in kinds:
                    kinds.append(kind)
                    feature = a.get("feature")
                    where = f" on {feature}" if feature else ""
                    parts.append(f"{kind} ({a.get('detector', '?')}{where})")
                alert_ids.append(alert_id)
            elif kind == "data_drift":
                drift.append((alert_id, float(a.get("at", now))))
        drift[:] = [(i, t) for i, t in drift if now - t < self.data_drift_window_s]
        sustained = len(drift) >= self.data_drift_sustained and "data_drift" not in kinds
        if sustained:
            kinds.append("data_drift")
            alert_ids.extend(i for i, _ in drift if i not in alert_ids)
            parts.append(f"sustained data_drift ({len(drift)} alerts)")
            details["data_drift"] = {"alerts": len(drift), "window_s": self.data_drift_window_s}
        evidence = self._challenger(champion_metrics, challenger_metrics, paired)
        if evidence is not None:
            kinds.append("challenger")
            parts.append(
                f"challenger +{evidence['gain']:.3f} accuracy over {evidence['labels']} labels "
                f"(p={evidence['p_value']:.2g})"
            )
            details["challenger"] = evidence
        if not kinds:
            return None
        last = self._last.get(key)
        if last is not None and now - last < self.min_interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        details["suppressed"] = self._suppressed.pop(key, 0)
        if sustained:
            drift.clear()
        labels = str(evidence["labels"]) if evidence is not None else ""
        digest = hashlib.sha256(
            "|".join([model, version, *kinds, *sorted(alert_ids), labels]).encode()
        ).hexdigest()[:24]
        return RetrainRequestDecision(
            reason="; ".join(parts),
            kinds=kinds,
            alert_ids=alert_ids,
            details=details,
            request_id=digest,
        )

    # -- state --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: seen alert ids, pending drift evidence, last request times."""
        return {
            "schema_version": RETRAIN_POLICY_SCHEMA_VERSION,
            "seen": list(self._seen),
            "keys": [
                {
                    "model": m,
                    "version": v,
                    "drift": [[i, t] for i, t in self._drift.get((m, v), [])],
                    "last": self._last.get((m, v)),
                    "suppressed": self._suppressed.get((m, v), 0),
                }
                for m, v in sorted({*self._drift, *self._last, *self._suppressed})
            ],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`snapshot` (the settings in force stay this policy's).

        Raises
        ------
        SnapshotError
            Another schema version or a malformed state.
        """
        if state.get("schema_version") != RETRAIN_POLICY_SCHEMA_VERSION:
            raise SnapshotError(
                f"retrain-policy snapshot schema_version {state.get('schema_version')!r} "
                f"is not {RETRAIN_POLICY_SCHEMA_VERSION}",
                found=state.get("schema_version"),
            )
        try:
            seen = [str(i) for i in state["seen"]]
            drift: dict[tuple[str, str], list[tuple[str, float]]] = {}
            last: dict[tuple[str, str], float] = {}
            suppressed: dict[tuple[str, str], int] = {}
            for e in state["keys"]:
                key = (str(e["model"]), str(e["version"]))
                drift[key] = [(str(i), float(t)) for i, t in e["drift"]]
                if e["last"] is not None:
                    last[key] = float(e["last"])
                if int(e["suppressed"]):
                    suppressed[key] = int(e["suppressed"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"malformed retrain-policy snapshot: {exc!r}") from exc
        self._seen = deque(seen[-_SEEN_LIMIT:], maxlen=_SEEN_LIMIT)
        self._seen_set = set(self._seen)
        self._drift, self._last, self._suppressed = drift, last, suppressed


__all__ = [
    "RETRAIN_POLICY_SCHEMA_VERSION",
    "RetrainPolicy",
    "RetrainRequestDecision",
    "mcnemar_one_sided",
]
