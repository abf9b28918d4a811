"""Every monitor of one model, fed with micro-batches; state snapshotted as JSON.

:class:`ModelMonitor` routes a scored batch to the feature monitor of its variant (data drift,
data quality; the champion only unless ``drift_all_variants``) and to the score monitor of its
``(version, variant)`` (prediction drift), and a labelled batch to the label monitor of its
``(version, variant)`` (metrics, concept drift, performance, fairness); a summary's expected
confusion sums, to its estimate without labels (:mod:`monitoring.scope_estimates`). It
remembers the findings they raised (:mod:`monitoring.finding_ledger`): counts, the last
finding per kind, and the *active* conditions behind :meth:`ModelMonitor.health` — a
windowed check stays active until a later window passes, a change-detector finding for one
window of events (``window`` scored events, or ``rolling_window`` labels for concept drift).

:mod:`monitoring.monitor_inputs` turns a producer's batch into the arrays the monitors read.
The state of every monitor is one JSON snapshot (:meth:`ModelMonitor.snapshot`), in the format
:mod:`monitoring.monitor_snapshot` documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.card import ModelCard
from monitoring.config import MonitorConfig
from monitoring.drift import Check, ScoreMonitor, fits
from monitoring.errors import BatchError, MonitoringError, SnapshotError
from monitoring.explanations import explain_checks
from monitoring.finding_ledger import FindingLedger
from monitoring.findings import Finding
from monitoring.labels import LabelMonitor
from monitoring.monitor_inputs import GroupCodes, labelled_columns, sensitive_groups
from monitoring.monitor_snapshot import SNAPSHOT_SCHEMA_VERSION, check_snapshot, rebinned
from monitoring.scope_estimates import ScopeEstimates
from monitoring.sequential_drift import calibrate
from monitoring.slices import Slices, slice_values
from monitoring.summariser import Summariser
from monitoring.summary import BatchSummary
from monitoring.variant_features import VariantFeatures


class ModelMonitor:
    """Drift, quality, metrics and fairness monitors of one model, built from its card.

    Parameters
    ----------
    card : ModelCard
        The champion's card: features, reference profiles, holdout metrics, sensitive spec.
    config : MonitorConfig or None
        Settings; defaults when None.

    Examples
    --------
    >>> from models.data import synthetic
    >>> from models.workflow import TrainOptions, train
    >>> res = train(synthetic("sea", rows=3000, seed=1), TrainOptions(name="sea", folds=3))
    >>> mon = ModelMonitor(res.card, MonitorConfig(window=1000))
    >>> live = synthetic("sea", rows=4000, seed=2)
    >>> scores = res.pipeline.predict_proba(live.matrix())[:, 1]
    >>> x = live.numeric.copy()
    >>> x[2000:, 0] += 4.0  # feature x0 shifts after 2,000 events
    >>> found = []
    >>> for s in range(0, 4000, 250):
    ...     num = {n: x[s : s + 250, j] for j, n in enumerate(live.numeric_names)}
    ...     found += mon.observe_batch(num, {}, scores[s : s + 250], "draft", "champion")
    >>> sorted({f.feature or f.details["test"] for f in found if f.kind == "data_drift"})
    ['multivariate', 'x0']
    >>> mon.health()["status"]
    'alerting'
    """

    def __init__(self, card: ModelCard, config: MonitorConfig | None = None) -> None:
        self.card = card
        self.config = config or MonitorConfig()
        self._cards: dict[str, ModelCard] = {card.version: card}
        # One false-alarm budget for the model: every CUSUM's threshold is set from it.
        self._h = calibrate(card, self.config).gaussian  # the score's banks
        self.numeric = [f.name for f in card.features if f.kind == "numeric"]
        self.categorical = [f.name for f in card.features if f.kind == "categorical"]
        self._features = VariantFeatures(self.config)
        self._summariser = Summariser(card, self.config)
        # Events whose summaries came on the bins of a card their variant's monitor had left.
        self.unreferenced = 0
        self._scores: dict[str, ScoreMonitor] = {}
        self._labels: dict[str, LabelMonitor] = {}
        self._estimates = ScopeEstimates(self.config)
        spec = card.sensitive
        self._groups = GroupCodes([] if spec is None else spec.groups or spec.labels)
        self.events = self.batches = self.labels = 0
        # Events and labels with no sensitive group: a producer that forgets the attribute
        # shows here rather than as a fairness monitor with silently nothing to measure.
        self.ungrouped_events = self.ungrouped_labels = 0
        self._findings = FindingLedger()
        self._scope_events: dict[str, int] = {}
        by = self.config.slice_by
        self._slices = (
            None if by is None else Slices(by, self.config.slice_top, self.config.rolling_window)
        )

    def add_card(self, card: ModelCard) -> None:
        """Register the card of another version (a challenger) for its score and metric references.

        Versions without a registered card are compared with the champion's card.

        Raises
        ------
        MonitoringError
            The card is for another model or another feature schema.
        """
        if card.name != self.card.name or [f.name for f in card.features] != [
            f.name for f in self.card.features
        ]:
            raise MonitoringError(
                f"card {card.name}@{card.version} does not match model {self.card.name}'s features"
            )
        self._cards[card.version] = card
        self._summariser.add_card(card)

    def _card(self, version: str) -> ModelCard:
        return self._cards.get(version, self.card)

    # ------------------------------------------------------------------ scored events
    def observe_batch(
        self,
        numeric: Mapping[str, NDArray[np.float64]],
        categorical: Mapping[str, NDArray[np.object_]],
        scores: NDArray[np.floating],
        version: str,
        variant: str,
        groups: NDArray[np.object_] | None = None,
    ) -> list[Finding]:
        """Feed one scored micro-batch; return the findings it raised.

        The batch is summarised (:meth:`summarise`) and the summary observed
        (:meth:`observe_summary`): the same path as a summary made by another worker.

        Parameters
        ----------
        numeric : mapping of str to ndarray of float64
            Feature name to values (NaN = missing). A card feature absent here is all missing.
        categorical : mapping of str to ndarray of object
            Feature name to values (``None`` or ``""`` = missing).
        scores : ndarray of float
            Positive-class probability of each event.
        version, variant : str
            Which model answered (variant ``champion``, ``challenger``, ``shadow``, ``canary``).
        groups : ndarray of object or None
            Sensitive group of each event (:meth:`groups_of`); those unknown are counted.

        Raises
        ------
        BatchError
            Arrays of different lengths.
        """
        summary = self.summarise(numeric, categorical, scores, version, variant, groups)
        return self.observe_summary(summary)

    def summarise(
        self,
        numeric: Mapping[str, NDArray[np.float64]],
        categorical: Mapping[str, NDArray[np.object_]],
        scores: NDArray[np.floating],
        version: str,
        variant: str,
        groups: NDArray[np.object_] | None = None,
    ) -> BatchSummary:
        """The :class:`~monitoring.summary.BatchSummary` of a batch, as a worker makes it
        (:class:`~monitoring.summariser.Summariser` with this monitor's cards)."""
        return self._summariser.summarise(numeric, categorical, scores, version, variant, groups)

    def observe_summary(self, summary: BatchSummary) -> list[Finding]:
        """Feed the summary of scored events (one batch's, or several merged); return the
        findings it raised.

        Summaries on the bins of a card their variant's feature monitor has left count as
        events only (``unreferenced``; :mod:`monitoring.variant_features`). Prediction-drift
        and performance findings name the features that explain them
        (``details["explained_by"]``, :mod:`monitoring.explanations`).

        Raises
        ------
        BatchError
            The summary is on the bins of a card this monitor does not know
            (:meth:`add_card`), or its shapes are not those of the card's features.
        """
        version, variant, n = summary.version, summary.variant, summary.rows
        scope = f"{version}/{variant}"
        details = {"version": version, "variant": variant}
        card = self._cards.get(summary.ref)
        if card is None:
            raise BatchError(
                f"summary counted on the bins of card {summary.ref!r}, unknown here", **details
            )
        if self.card.sensitive is not None and variant != "shadow":
            # a shadow scores the champion's events once more
            self.ungrouped_events += summary.ungrouped
        emit = variant == self.config.champion_variant or self.config.drift_all_variants
        fm = self._features.monitor(variant, card) if emit else None
        if emit and fm is None:
            self.unreferenced += n
        sm = self._scores.get(scope)
        if sm is None:
            sm = self._scores[scope] = ScoreMonitor(card.reference.score, self.config, self._h)
        if (fm is not None and not fits(fm, summary.features)) or not fits(sm, summary.score):
            raise BatchError("summary shapes do not match the card's features", **details)
        self.events += n
        self.batches += 1
        self._scope_events[scope] = self._scope_events.get(scope, 0) + n
        findings: list[Finding] = []
        if fm is not None:
            checks = fm.observe_counts(summary.features, details)
            findings += self._record(variant, checks, "events")
        checks = sm.observe_counts(summary.score, details)
        if summary.expected is not None:
            checks += self._estimates.observe(scope, card, summary.expected, details)
        checks = self._explained(checks, version, variant)
        if emit:
            findings += self._record(scope, checks, "events")
        self._expire()
        return findings

    # ------------------------------------------------------------------ labelled events
    def observe_labels(
        self,
        y_true: NDArray[np.int64],
        y_pred: NDArray[np.int64],
        scores: NDArray[np.floating],
        groups: NDArray[np.object_] | None,
        version: str,
        variant: str,
        slices: Sequence[str | None] | None = None,
    ) -> list[Finding]:
        """Feed one batch of joined (label, prediction) pairs; return the findings raised.

        Parameters
        ----------
        y_true, y_pred : ndarray of int
            True and predicted 0/1 labels.
        scores : ndarray of float
            Positive-class probabilities of the predictions.
        groups : ndarray of object or None
            Sensitive group of each event (see :meth:`groups_of`); ``""``/None = unknown.
        version, variant : str
            Which model answered.
        slices : sequence of str or None
            Value of the ``slice_by`` context attribute of each event (:meth:`slices_of`;
            ``""``/None = missing); None when no event had one. Ignored without ``slice_by``.

        Raises
        ------
        BatchError
            Arrays of different lengths, or labels other than 0/1.
        """
        details = {"version": version, "variant": variant}
        sizes = [None if c is None else len(c) for c in (groups, slices)]
        y, yp, p = labelled_columns(y_true, y_pred, scores, sizes, details)
        if y.size == 0:
            return []
        sensitive = None if self.card.sensitive is None else groups
        codes = self._groups.encode(sensitive, y.size)
        if self.card.sensitive is not None and variant != "shadow":
            self.ungrouped_labels += int(np.count_nonzero(codes < 0))
        scope = f"{version}/{variant}"
        lm = self._labels.get(scope)
        if lm is None:
            lm = self._labels[scope] = LabelMonitor(self._card(version), self.config)
        self.labels += int(y.size)
        checks = lm.observe(y, yp, p, codes, self._groups.names, details)
        checks = self._explained(checks, version, variant)
        if self._slices is not None:  # a shadow's events are counted once, as the champion's
            self._slices.observe(scope, slices, y, yp, count=variant != "shadow")
        findings = self._record(scope, checks, "labels")
        self._expire()
        return findings

    def slices_of(self, context: Sequence[Mapping[str, Any] | None] | None) -> list[str] | None:
        """Each event's value of the ``slice_by`` context attribute, as text (``""`` when
        absent); None without ``slice_by`` or when no event had a context."""
        by = self.config.slice_by
        return None if by is None else slice_values(context, by)

    def groups_of(
        self,
        numeric: Mapping[str, NDArray[np.float64]],
        categorical: Mapping[str, NDArray[np.object_]],
        context: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> NDArray[np.object_] | None:
        """Sensitive group of each row from the card's spec (``""`` when unknown).

        The sensitive column may be a feature, an extra column of the mappings, or an
        attribute of each event's ``context`` (attributes the model never reads). When it is
        absent every row's group is ``""`` (fairness then has nothing to measure). None when
        the card has no sensitive attribute.
        """
        spec = self.card.sensitive
        return None if spec is None else sensitive_groups(spec, numeric, categorical, context)

    # ------------------------------------------------------------------ findings and health
    def _record(self, scope: str, checks: list[Check], clock: str) -> list[Finding]:
        now = self.events if clock == "events" else self.labels
        span = self.config.window if clock == "events" else self.config.rolling_window
        return self._findings.record(scope, checks, clock, now, span)

    def _explained(self, checks: list[Check], version: str, variant: str) -> list[Check]:
        """``checks`` with the features that explain their score and performance findings."""
        imp = self._card(version).importance or self.card.importance
        evidence = self._features.evidence(variant)
        return explain_checks(checks, evidence, None if imp is None else imp.values)

    def _expire(self) -> None:
        self._findings.expire({"events": self.events, "labels": self.labels})

    def metrics(self) -> dict[str, Any]:
        """Per ``"<version>/<variant>"``: cumulative, rolling and group metrics and labels,
        with ``slice_by`` the slices (:meth:`monitoring.slices.Slices.summary`), and the
        ``estimated`` figures (:meth:`ScopeEstimates.metrics`: alone before any label)."""
        out = {scope: lm.metrics(self._groups.names) for scope, lm in sorted(self._labels.items())}
        if self._slices is not None:
            for scope, m in out.items():
                m["slices"] = self._slices.summary(scope)
        for scope, estimated in self._estimates.metrics().items():
            out.setdefault(scope, {})["estimated"] = estimated
        return dict(sorted(out.items()))

    def drift_statistics(self) -> dict[str, Any]:
        """PSI, KS p-value and missing rate of the last closed window of every monitor.

        ``features`` is per variant and feature, ``scores`` per ``"<version>/<variant>"``.
        Kept in memory only: empty again after a restore until the next window closes.
        """
        return {
            "features": self._features.statistics(),
            "scores": {s: dict(m.last) for s, m in sorted(self._scores.items()) if m.last},
        }

    def health(self) -> dict[str, Any]:
        """Status (``ok``, ``degraded`` when only data quality is failing, ``alerting``),
        active findings, last finding per kind, counts and metrics."""
        found = self._findings
        return {
            "model": self.card.name,
            "version": self.card.version,
            "status": found.status(),
            "events": self.events,
            "batches": self.batches,
            "labels": self.labels,
            "sensitive": None if self.card.sensitive is None else self.card.sensitive.name,
            "ungrouped": {"events": self.ungrouped_events, "labels": self.ungrouped_labels},
            "unreferenced": self.unreferenced,
            "slices": None if self._slices is None else self._slices.describe(),
            "scopes": dict(sorted(self._scope_events.items())),
            "active": found.active_findings(),
            "last": dict(sorted(found.last.items())),
            "counts": dict(found.counts),
            "metrics": self.metrics(),
        }

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> dict[str, Any]:
        """JSON-able state of every monitor (format: :mod:`monitoring.monitor_snapshot`)."""
        return {
            "schema_version": SNAPSHOT_SCHEMA_VERSION,
            "model": self.card.name,
            "version": self.card.version,
            "features": {"numeric": list(self.numeric), "categorical": list(self.categorical)},
            "config": self.config.to_dict(),
            "events": self.events,
            "batches": self.batches,
            "labels": self.labels,
            "ungrouped": [self.ungrouped_events, self.ungrouped_labels],
            "unreferenced": self.unreferenced,
            "scopes": dict(self._scope_events),
            "groups": list(self._groups.names),
            "feature_state": self._features.snapshot(),
            "score_state": {s: m.snapshot() for s, m in self._scores.items()},
            "label_state": {s: m.snapshot() for s, m in self._labels.items()},
            "estimate_state": self._estimates.snapshot(),
            "findings": self._findings.snapshot(),
            "slices": None if self._slices is None else self._slices.snapshot(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`snapshot` (of this model, possibly from another process).

        Raises
        ------
        SnapshotError
            Another schema version, model or feature schema, a histogram resolution that
            changed, or a malformed snapshot. The monitor is left unchanged.
        """
        features = {"numeric": self.numeric, "categorical": self.categorical}
        check_snapshot(state, self.card.name, features, self.config.ks_bins)
        fresh = ModelMonitor(self.card, self.config)
        fresh._cards = self._cards
        try:
            fresh._load(rebinned(state, self.config.ks_bins))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SnapshotError(f"malformed monitor snapshot: {exc!r}") from exc
        self.__dict__.update(fresh.__dict__)

    def _load(self, state: Mapping[str, Any]) -> None:
        self.events, self.batches = int(state["events"]), int(state["batches"])
        self.labels = int(state["labels"])
        # Snapshots from before the counts existed restore as zero.
        self.ungrouped_events, self.ungrouped_labels = map(int, state.get("ungrouped", (0, 0)))
        self._scope_events = {str(k): int(v) for k, v in state["scopes"].items()}
        self._groups = GroupCodes(str(g) for g in state["groups"])
        self.unreferenced = int(state.get("unreferenced", 0))  # absent before schema 2
        self._features.restore(state["feature_state"], self._cards, self.card.version)
        for scope, ss in state["score_state"].items():
            version = scope.rsplit("/", 1)[0]
            sm = ScoreMonitor(self._card(version).reference.score, self.config, self._h)
            sm.restore(ss)
            self._scores[scope] = sm
        for scope, ls in state["label_state"].items():
            version = scope.rsplit("/", 1)[0]
            lm = LabelMonitor(self._card(version), self.config)
            lm.restore(ls)
            self._labels[scope] = lm
        if "estimate_state" in state:  # absent before estimates: they start afresh
            self._estimates.restore(state["estimate_state"], self._card)
        self._findings.restore(state["findings"])
        saved = state.get("slices")  # absent before slices, null without slice_by
        if saved and self._slices is not None:
            self._slices.restore(saved)  # another slice_by or slice_top: start afresh


__all__ = ["SNAPSHOT_SCHEMA_VERSION", "ModelMonitor"]
