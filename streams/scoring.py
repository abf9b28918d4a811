"""Score one micro-batch of raw Kafka records: decode, route, one ONNX call per variant.

This module holds no Kafka client: it turns raw records into encoded predictions and dead
letters, so that the Faust agent around it only moves bytes, and so that tests run it directly.
Every failure of one event becomes a dead letter with its reason; the batch goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.errors import InvalidInputError
from models.scorer import Scorer
from streams.messages import SCHEMA_VERSION
from streams.routing import Routing, in_canary

Encoded = tuple[bytes | None, bytes]
_EVENT_KEYS = frozenset({"event_id", "features", "entity", "ts", "schema_version"})


@dataclass(frozen=True)
class RawRecord:
    """One consumed Kafka record, as bytes plus where it came from."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class ModelSet:
    """What one worker serves for one model right now; replaced whole on a hot swap."""

    champion: Scorer
    features: frozenset[str]
    challenger: Scorer | None = None
    routing: Routing = field(default_factory=Routing)

    def describe(self) -> dict[str, Any]:
        """Versions and routing, for logs and health reports."""
        return {
            "champion": self.champion.version,
            "challenger": self.challenger.version if self.challenger else None,
            "routing": self.routing.model_dump(),
        }


@dataclass
class BatchResult:
    """Encoded predictions and dead letters of one batch, keyed like their events."""

    predictions: list[Encoded] = field(default_factory=list)
    dead_letters: list[Encoded] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Event:
    record: RawRecord
    event_id: str
    features: dict[str, Any]
    entity: str | None
    ts: float | None


class BatchScorer:
    """Turns batches of raw records into predictions and dead letters.

    Parameters
    ----------
    model
        The model name written in every prediction.
    max_event_bytes
        Larger records go to the dead-letter topic unread.
    dlq_raw_bytes
        How much of a bad record's raw value the dead letter keeps.
    """

    def __init__(self, model: str, max_event_bytes: int = 65_536, dlq_raw_bytes: int = 16_384):
        self.model = model
        self.max_event_bytes = max_event_bytes
        self.dlq_raw_bytes = dlq_raw_bytes

    # -- decoding -----------------------------------------------------------------------
    def _decode(self, rec: RawRecord, features: frozenset[str]) -> _Event:
        if rec.value is None:
            raise _BadEventError("empty record (no value)", "EmptyValue")
        if len(rec.value) > self.max_event_bytes:
            raise _BadEventError(
                f"event of {len(rec.value)} bytes exceeds the {self.max_event_bytes}-byte limit",
                "OversizedEvent",
            )
        try:
            doc = orjson.loads(rec.value)
        except orjson.JSONDecodeError as exc:
            raise _BadEventError(f"not valid JSON: {exc}", "JSONDecodeError") from None
        if not isinstance(doc, dict):
            raise _BadEventError(f"expected a JSON object, got {type(doc).__name__}", "SchemaError")
        unknown = doc.keys() - _EVENT_KEYS
        if unknown:
            raise _BadEventError(f"unknown field(s): {', '.join(sorted(unknown))}", "SchemaError")
        event_id, feats = doc.get("event_id"), doc.get("features")
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 256:
            raise _BadEventError("event_id must be a string of 1 to 256 characters", "SchemaError")
        if not isinstance(feats, dict):
            raise _BadEventError("features must be an object of name → value", "SchemaError")
        if feats.keys() != features:
            absent, extra = features - feats.keys(), feats.keys() - features
            parts = []
            if absent:
                parts.append(f"missing feature(s): {', '.join(sorted(absent))}")
            if extra:
                parts.append(f"unknown feature(s): {', '.join(sorted(map(str, extra)))}")
            raise _BadEventError(
                "; ".join(parts) + " (send null for a missing value)", "FeatureError"
            )
        entity, ts = doc.get("entity"), doc.get("ts")
        if entity is not None and not isinstance(entity, str):
            raise _BadEventError("entity must be a string", "SchemaError")
        if ts is not None and (
            isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts)
        ):
            raise _BadEventError("ts must be a number of Unix seconds", "SchemaError")
        return _Event(rec, event_id, feats, entity, None if ts is None else float(ts))

    def dead_letter(self, rec: RawRecord, error: str, error_type: str) -> Encoded:
        """Encode the dead letter of ``rec``: its raw value, the reason and its origin."""
        raw = rec.value or b""
        doc = {
            "schema_version": SCHEMA_VERSION,
            "raw": raw[: self.dlq_raw_bytes].decode("utf-8", "replace"),
            "raw_size": len(raw),
            "error": error,
            "error_type": error_type,
            "topic": rec.topic,
            "partition": rec.partition,
            "offset": rec.offset,
            "at": time.time(),
        }
        return rec.key, orjson.dumps(doc)

    # -- scoring ------------------------------------------------------------------------
    def process(self, records: Sequence[RawRecord], models: ModelSet) -> BatchResult:
        """Decode, route and score ``records`` with ``models``; never raises for bad input."""
        out = BatchResult(versions={"champion": models.champion.version})
        events: list[_Event] = []
        for rec in records:
            try:
                events.append(self._decode(rec, models.features))
            except _BadEventError as bad:
                out.dead_letters.append(self.dead_letter(rec, bad.reason, bad.kind))
        if not events:
            return out
        routing, challenger = models.routing, models.challenger
        if challenger is None or routing.mode == "off":
            self._score(models.champion, "champion", events, out)
        elif routing.mode == "shadow":
            scored = self._score(models.champion, "champion", events, out)
            self._score(challenger, "shadow", scored, out)
            out.versions["shadow"] = challenger.version
        else:
            canary = [in_canary(e.entity or e.event_id, routing.percent) for e in events]
            self._score(
                models.champion,
                "champion",
                [e for e, c in zip(events, canary, strict=True) if not c],
                out,
            )
            self._score(
                challenger, "canary", [e for e, c in zip(events, canary, strict=True) if c], out
            )
            out.versions["canary"] = challenger.version
        return out

    def _score(
        self, scorer: Scorer, variant: str, events: list[_Event], out: BatchResult
    ) -> list[_Event]:
        """Score ``events`` in one call; bad rows become dead letters. Returns the scored."""
        if not events:
            return events
        try:
            labels, proba = scorer.predict_batch([e.features for e in events])
        except InvalidInputError as exc:
            bad = exc.row_errors
            for i, reason in bad.items():
                out.dead_letters.append(self.dead_letter(events[i].record, reason, "FeatureError"))
            events = [e for i, e in enumerate(events) if i not in bad]
            if not events:
                return events
            labels, proba = scorer.predict_batch([e.features for e in events])
        now = time.time()
        head = {"schema_version": SCHEMA_VERSION, "model": self.model}
        version = scorer.version
        for e, label, p in zip(events, labels.tolist(), proba.tolist(), strict=True):
            produced = e.record.timestamp_ms
            doc = {
                **head,
                "event_id": e.event_id,
                "version": version,
                "variant": variant,
                "label": label,
                "probabilities": p,
                "ts": e.ts,
                "scored_at": now,
                "latency_ms": (now * 1000.0 - produced) if produced else 0.0,
            }
            out.predictions.append((e.record.key, orjson.dumps(doc)))
        return events


class _BadEventError(Exception):
    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


__all__ = ["BatchResult", "BatchScorer", "Encoded", "ModelSet", "RawRecord"]
