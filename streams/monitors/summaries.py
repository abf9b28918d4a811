"""A scored batch as the monitors take it: a mergeable summary and the label join's columns.

Every worker reduces each scored batch, per (version, variant), to a :class:`Reduced`: the
:class:`~monitoring.summary.BatchSummary` that the drift, quality and score monitors read
(counts on the reference's bins, no raw values), and what the label join keeps per event
(id, predicted label, score, sensitive group, slice value), with the features of the first
events only, as many as the feature budget admits (:class:`~streams.monitors.entries.
FeatureBudget`: the retraining window and the online challenger learn from that sample).
The owner's own batches take the same path in process (:class:`~streams.monitors.agents.
MonitorFeed`), every other worker's travel on ``monitor-input`` as one record per batch
(:func:`encode_record`, :func:`decode_record`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from models.card import ModelCard
from monitoring.config import MonitorConfig
from monitoring.monitor_inputs import sensitive_groups
from monitoring.slices import slice_values
from monitoring.summariser import Summariser
from monitoring.summary import BatchSummary, merge_summaries
from streams.config.settings import Settings
from streams.monitors.entries import FeatureBudget
from streams.scoring.batch import Scored

Columns = tuple[dict[str, NDArray[Any]], dict[str, NDArray[Any]]]


@dataclass
class Reduced:
    """One (version, variant)'s part of a scored batch, as the monitors take it.

    ``part`` holds the label join's columns: its ``features`` are those of the first events
    only (the sample that keeps them), ``numeric`` and ``context`` are None.
    """

    summary: BatchSummary
    part: Scored
    groups: list[Any] | None
    slices: list[str] | None


def feature_columns(part: Scored, numeric: Sequence[str], categorical: Sequence[str]) -> Columns:
    """The monitored features of ``part`` as columns: numeric ones as the scorer read them
    when it gave them, else read from the events' features."""
    features = part.features
    num: dict[str, NDArray[Any]] = {}
    given = part.numeric
    if given is not None and all(n in given for n in numeric):
        num = {n: given[n] for n in numeric}
    elif numeric:
        # numpy turns None into NaN for a float array: missing values stay missing.
        row = itemgetter(*numeric)
        matrix = np.array(list(map(row, features)), dtype=np.float64)
        matrix = matrix.reshape(len(features), len(numeric))
        num = {n: matrix[:, j] for j, n in enumerate(numeric)}
    cat = {
        n: np.array([None if f.get(n) is None else str(f[n]) for f in features], dtype=object)
        for n in categorical
    }
    return num, cat


class Reducer:
    """Reduces a worker's scored batches for the model's monitors.

    Parameters
    ----------
    card : ModelCard
        The champion's card (reference bins, sensitive spec).
    config : MonitorConfig
        The monitors' settings (``ks_bins``, ``slice_by``).
    budget : FeatureBudget
        How many events a second keep their features in the label join.
    card_loader : callable or None
        The card of a version first seen (None when it cannot be read).
    """

    def __init__(
        self,
        card: ModelCard,
        config: MonitorConfig,
        budget: FeatureBudget,
        card_loader: Callable[[str], ModelCard | None] | None = None,
    ) -> None:
        self.card = card
        self.config = config
        self.budget = budget
        self.card_loader = card_loader
        self.summariser = Summariser(card, config)
        self._known = {card.version}

    def add_card(self, card: ModelCard) -> None:
        """Summarise ``card.version``'s batches on its own reference bins."""
        self.summariser.add_card(card)
        self._known.add(card.version)

    def _learn(self, version: str) -> None:
        self._known.add(version)  # asked once, whatever the answer
        card = self.card_loader(version) if self.card_loader else None
        if card is not None and card.name == self.card.name:
            self.summariser.add_card(card)

    def reduce(self, parts: Sequence[Scored]) -> list[Reduced]:
        """The reduced parts of one scored batch."""
        out: list[Reduced] = []
        summariser = self.summariser
        spec = self.card.sensitive
        for part in parts:
            if part.version not in self._known:
                self._learn(part.version)
            num, cat = feature_columns(part, summariser.numeric, summariser.categorical)
            groups = None if spec is None else sensitive_groups(spec, num, cat, part.context)
            summary = summariser.summarise(
                num, cat, part.scores, part.version, part.variant, groups, part.labels
            )
            by = self.config.slice_by
            n = len(part.event_ids)
            keep = self.budget.take(n) if part.variant != "shadow" else 0
            join = Scored(
                part.variant,
                part.version,
                part.event_ids,
                part.features[:keep],
                part.labels,
                part.scores,
            )
            out.append(
                Reduced(
                    summary,
                    join,
                    None if groups is None else groups.tolist(),
                    None if by is None else slice_values(part.context, by),
                )
            )
        return out


def split_scored(parts: Sequence[Scored], size: int) -> list[list[Scored]]:
    """The parts of a batch in slices of at most ``size`` events each (slice ``k`` of every
    variant together: a shadow scores the champion's events in the same order)."""
    longest = max((len(p.event_ids) for p in parts), default=0)
    if longest <= size:
        return [list(parts)]
    out: list[list[Scored]] = []
    for i in range(0, longest, size):
        j = i + size
        out.append(
            [
                Scored(
                    p.variant,
                    p.version,
                    p.event_ids[i:j],
                    p.features[i:j],
                    p.labels[i:j],
                    p.scores[i:j],
                    None if p.numeric is None else {n: c[i:j] for n, c in p.numeric.items()},
                    p.context[i:j] if p.context else None,
                )
                for p in parts
                if p.event_ids[i:j]
            ]
        )
    return out


def make_reducer(
    settings: Settings, card: ModelCard, card_loader: Callable[[str], ModelCard | None] | None
) -> Reducer:
    """The reducer of a worker serving ``card``'s model, as the settings configure it."""
    budget = FeatureBudget(settings.window_features_rate, settings.window_size)
    return Reducer(card, settings.monitor, budget, card_loader)


def merge_reduced(batches: Sequence[Sequence[Reduced]]) -> list[Reduced]:
    """The reduced parts of several batches as one: one per (version, variant), in order."""
    if len(batches) == 1:
        return list(batches[0])
    groups: dict[tuple[str, str], list[Reduced]] = {}
    for parts in batches:
        for r in parts:
            groups.setdefault((r.part.variant, r.part.version), []).append(r)
    out: list[Reduced] = []
    for (variant, version), same in groups.items():
        summaries = merge_summaries([r.summary for r in same])
        # A part whose events kept no features: its sample ends where the next one's begins.
        features: list[dict[str, Any]] = []
        ids: list[str] = []
        for r in same:
            if len(features) == len(ids):
                features += r.part.features
            ids += r.part.event_ids
        join = Scored(
            variant,
            version,
            ids,
            features,
            np.concatenate([r.part.labels for r in same]),
            np.concatenate([r.part.scores for r in same]),
        )
        groups_ = _joined([r.groups for r in same], [len(r.part.event_ids) for r in same])
        slices = _joined([r.slices for r in same], [len(r.part.event_ids) for r in same], "")
        first, *rest = summaries
        out.append(Reduced(first, join, groups_, slices))
        # the same (version, variant) on the bins of another card (a swap in between)
        out += [Reduced(s, _empty(join), None, None) for s in rest]
    return out


def _empty(part: Scored) -> Scored:
    return Scored(
        part.variant, part.version, [], [], np.zeros(0, np.int64), np.zeros(0, np.float32)
    )


def _joined(cols: list[list[Any] | None], sizes: list[int], fill: Any = None) -> list[Any] | None:
    if all(c is None for c in cols):
        return None
    return [v for c, n in zip(cols, sizes, strict=True) for v in (c or [fill] * n)]


def encode_record(reduced: Sequence[Reduced]) -> bytes:
    """One ``monitor-input`` record: ``{"kind": "summary", "parts": [...]}``.

    Each part is the summary's JSON (:meth:`~monitoring.summary.BatchSummary.to_json`) with
    the join's columns: ``ids``, ``labels``, ``scores`` (float32, as short as they print),
    ``groups`` and ``slices`` (or null) and ``features`` (the sample's, first events first).
    """
    option = orjson.OPT_SERIALIZE_NUMPY
    parts = [
        {
            "summary": r.summary.to_json(),
            "ids": r.part.event_ids,
            "labels": np.ascontiguousarray(r.part.labels, dtype=np.int64),
            "scores": np.ascontiguousarray(r.part.scores, dtype=np.float32),
            "groups": r.groups,
            "slices": r.slices,
            "features": r.part.features,
        }
        for r in reduced
    ]
    return orjson.dumps({"kind": "summary", "parts": parts}, option=option)


def decode_record(record: dict[str, Any]) -> list[Reduced]:
    """The parts of one :func:`encode_record` record, decoded (the owner's side)."""
    out: list[Reduced] = []
    for p in record["parts"]:
        summary = BatchSummary.from_json(p["summary"])
        join = Scored(
            summary.variant,
            summary.version,
            p["ids"],
            p["features"],
            np.asarray(p["labels"], dtype=np.int64),
            np.asarray(p["scores"], dtype=np.float32),
        )
        out.append(Reduced(summary, join, p.get("groups"), p.get("slices")))
    return out


__all__ = [
    "Reduced",
    "Reducer",
    "decode_record",
    "encode_record",
    "feature_columns",
    "make_reducer",
    "merge_reduced",
    "split_scored",
]
