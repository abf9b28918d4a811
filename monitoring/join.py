"""Join late labels to their predictions by ``event_id``, in either order, in bounded memory.

:class:`LabelJoin` is the pure, in-memory join (the streams shell has a Redis-backed twin with
the same semantics). A prediction waits for its label and a label waits for its prediction;
whichever arrives second completes the pair. Several predictions of one event (champion and
shadow, scored in the same batch) all join the one label. Entries older than ``ttl_s`` are
dropped by :meth:`LabelJoin.expire` and counted; when more than ``max_items`` entries wait,
the oldest are evicted and counted, so memory stays bounded whatever the traffic.

Time is the caller's (``now`` in seconds); it is expected not to go backwards.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from monitoring.errors import MonitoringError


class LabelJoin:
    """Pair predictions and labels by event id, with a TTL and a bound.

    Parameters
    ----------
    max_items : int
        Most waiting entries (predictions + labels) kept; the oldest are evicted beyond.
    ttl_s : float
        Seconds an entry waits for its other half before :meth:`expire` drops it.

    Examples
    --------
    >>> join = LabelJoin(max_items=100, ttl_s=60.0)
    >>> join.add_predictions([("e1", {"p": 0.9}), ("e2", {"p": 0.2})], now=0.0)
    []
    >>> join.add_labels([("e2", 0), ("e3", 1)], now=5.0)
    [({'p': 0.2}, 0)]
    >>> join.add_predictions([("e3", {"p": 0.7})], now=6.0)
    [({'p': 0.7}, 1)]
    >>> join.expire(now=61.0), join.stats()["expired_predictions"]
    (1, 1)
    """

    def __init__(self, max_items: int = 1_000_000, ttl_s: float = 86_400.0) -> None:
        if max_items < 1:
            raise MonitoringError(f"max_items must be >= 1, got {max_items}")
        if ttl_s <= 0:
            raise MonitoringError(f"ttl_s must be > 0, got {ttl_s}")
        self.max_items = max_items
        self.ttl_s = ttl_s
        # event_id -> (arrival time, payloads) / (arrival time, label); oldest first
        self._predictions: OrderedDict[str, tuple[float, list[Any]]] = OrderedDict()
        self._labels: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._joined = 0
        self._expired_predictions = 0
        self._expired_labels = 0
        self._evicted = 0

    def add_predictions(
        self, items: Sequence[tuple[str, Any]], now: float
    ) -> list[tuple[Any, int]]:
        """Add ``(event_id, payload)`` pairs; return ``(payload, label)`` for those joined."""
        out: list[tuple[Any, int]] = []
        labels, preds = self._labels, self._predictions
        for event_id, payload in items:
            waiting = labels.pop(event_id, None)
            if waiting is not None:
                out.append((payload, waiting[1]))
                continue
            entry = preds.get(event_id)
            if entry is None:
                preds[event_id] = (now, [payload])
            else:
                entry[1].append(payload)
        self._joined += len(out)
        self._bound()
        return out

    def add_labels(self, items: Sequence[tuple[str, int]], now: float) -> list[tuple[Any, int]]:
        """Add ``(event_id, label)`` pairs; return ``(payload, label)`` for those joined."""
        out: list[tuple[Any, int]] = []
        labels, preds = self._labels, self._predictions
        for event_id, label in items:
            waiting = preds.pop(event_id, None)
            if waiting is not None:
                out.extend((payload, int(label)) for payload in waiting[1])
                continue
            labels.pop(event_id, None)  # a repeated label replaces the earlier one
            labels[event_id] = (now, int(label))
        self._joined += len(out)
        self._bound()
        return out

    def _bound(self) -> None:
        preds, labels = self._predictions, self._labels
        while len(preds) + len(labels) > self.max_items:
            p_head = next(iter(preds.values()))[0] if preds else float("inf")
            l_head = next(iter(labels.values()))[0] if labels else float("inf")
            (preds if p_head <= l_head else labels).popitem(last=False)
            self._evicted += 1

    def expire(self, now: float) -> int:
        """Drop entries that waited longer than the TTL; return how many."""
        limit = now - self.ttl_s
        dropped = 0
        while self._predictions:
            key, (t, _) = next(iter(self._predictions.items()))
            if t > limit:
                break
            del self._predictions[key]
            self._expired_predictions += 1
            dropped += 1
        while self._labels:
            key, (t, _) = next(iter(self._labels.items()))
            if t > limit:
                break
            del self._labels[key]
            self._expired_labels += 1
            dropped += 1
        return dropped

    def stats(self) -> dict[str, int]:
        """Waiting entries and counters of joined, expired and evicted entries."""
        return {
            "pending_predictions": len(self._predictions),
            "pending_labels": len(self._labels),
            "joined": self._joined,
            "expired_predictions": self._expired_predictions,
            "expired_labels": self._expired_labels,
            "evicted": self._evicted,
        }


__all__ = ["LabelJoin"]
