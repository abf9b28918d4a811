"""BatchScorer: decoding, dead letters, routing and encoding of one micro-batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from models.errors import InvalidInputError
from models.scorer import FixedScorer
from streams.contracts.messages import DeadLetter, Prediction, event_model
from streams.scoring.batch import BatchScorer, ModelSet, RawRecord
from streams.scoring.routing import Routing

EVENT = event_model("m", {"a": "numeric", "b": "numeric"})


class TypedScorer(FixedScorer):
    """FixedScorer that also rejects non-numeric values, like the ONNX scorer does."""

    def predict_batch(self, rows: Any) -> Any:
        bad = {
            i: f"feature {k!r}: expected a number"
            for i, r in enumerate(rows)
            for k, v in r.items()
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float))
        }
        if bad:
            raise InvalidInputError(bad)
        return super().predict_batch(rows)


def _rec(value: Any, offset: int = 0) -> RawRecord:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return RawRecord(raw, b"k", "events", 1, offset, 1_000)


def _event(i: int, **over: Any) -> dict[str, Any]:
    return {"event_id": f"e{i}", "features": {"a": 1.0, "b": 2}, **over}


def _models(**kw: Any) -> ModelSet:
    return ModelSet(TypedScorer(0.8, name="m", version="3"), EVENT, **kw)


def test_valid_events_become_predictions_of_the_contract() -> None:
    out = BatchScorer("m").process([_rec(_event(i), i) for i in range(5)], _models())
    assert out.dead_letters == []
    docs = [Prediction.model_validate_json(v) for _, v in out.predictions]
    assert [d.event_id for d in docs] == [f"e{i}" for i in range(5)]
    assert {(d.model, d.version, d.variant, d.label) for d in docs} == {("m", "3", "champion", 1)}
    assert docs[0].probabilities == pytest.approx([0.2, 0.8])


def test_null_feature_is_a_missing_value_not_an_error() -> None:
    ev = _event(1, features={"a": None, "b": 2})
    out = BatchScorer("m").process([_rec(ev)], _models())
    assert len(out.predictions) == 1
    assert out.dead_letters == []


BAD = [
    (b"not json", "JSONDecodeError"),
    (b'{"event_id": "x", "features": {"a": 1, "b"', "JSONDecodeError"),
    (b'{"event_id": "x", "features": {"a": NaN, "b": 1}}', "FeatureError"),
    (b'{"event_id": "x", "features": {"a": 1e999, "b": 1}}', "FeatureError"),
    (b'{"event_id": "x", "features": {"a": 1e300, "b": 1}}', "FeatureError"),
    (b'{"event_id": "x", "features": {"a": 1' + b"0" * 60 + b', "b": 1}}', "FeatureError"),
    (b"[1, 2]", "SchemaError"),
    (orjson.dumps({"features": {"a": 1, "b": 2}}), "SchemaError"),
    (orjson.dumps({"event_id": "x", "features": [1, 2]}), "SchemaError"),
    (orjson.dumps({"event_id": "x", "features": {"a": 1}}), "FeatureError"),
    (orjson.dumps({"event_id": "x", "features": {"a": 1, "b": 2, "c": 3}}), "FeatureError"),
    (orjson.dumps({"event_id": "x", "features": {"a": "high", "b": 2}}), "FeatureError"),
    (orjson.dumps({"event_id": "x", "features": {"a": [[[1]]], "b": 2}}), "FeatureError"),
    (orjson.dumps({"event_id": "x", "features": {"a": True, "b": 2}}), "FeatureError"),
    (orjson.dumps({"event_id": "x", "features": {"a": 1, "b": 2}, "extra": 1}), "SchemaError"),
    (orjson.dumps({"event_id": "x", "features": {"a": 1, "b": 2}, "ts": "noon"}), "SchemaError"),
    (orjson.dumps({"event_id": "x", "features": {"a": "x" * 70_000, "b": 2}}), "OversizedEvent"),
]


@pytest.mark.parametrize(("raw", "kind"), BAD)
def test_each_bad_event_is_a_dead_letter_and_its_neighbours_are_scored(
    raw: bytes, kind: str
) -> None:
    records = [_rec(_event(1), 10), _rec(raw, 11), _rec(_event(2), 12)]
    out = BatchScorer("m").process(records, _models())
    assert [orjson.loads(v)["event_id"] for _, v in out.predictions] == ["e1", "e2"]
    (dead,) = [DeadLetter.model_validate_json(v) for _, v in out.dead_letters]
    assert dead.error_type == kind
    assert dead.error
    assert (dead.topic, dead.partition, dead.offset) == ("events", 1, 11)
    assert dead.raw_size == len(raw)
    assert dead.raw == raw[:16_384].decode("utf-8", "replace")


def test_shadow_scores_every_event_twice() -> None:
    challenger = TypedScorer(0.3, name="m", version="4")
    models = _models(challenger=challenger, routing=Routing(mode="shadow"))
    out = BatchScorer("m").process([_rec(_event(i)) for i in range(4)], models)
    docs = [orjson.loads(v) for _, v in out.predictions]
    assert (
        sorted((d["variant"], d["version"]) for d in docs)
        == [("champion", "3")] * 4 + [("shadow", "4")] * 4
    )
    assert {d["label"] for d in docs if d["variant"] == "shadow"} == {0}


def test_canary_is_sticky_by_entity_and_near_its_share() -> None:
    challenger = TypedScorer(0.3, name="m", version="4")
    models = _models(challenger=challenger, routing=Routing(mode="canary", percent=10))
    records = [_rec(_event(i, entity=f"ent-{i}")) for i in range(20_000)]
    out = BatchScorer("m").process(records, models)
    variant = {orjson.loads(v)["event_id"]: orjson.loads(v)["variant"] for _, v in out.predictions}
    share = sum(v == "canary" for v in variant.values()) / len(variant)
    assert 0.085 <= share <= 0.115
    again = BatchScorer("m").process(
        [_rec(_event(i, entity=f"ent-{i}")) for i in range(0, 20_000, 7)], models
    )
    for _, v in again.predictions:
        doc = orjson.loads(v)
        assert variant[doc["event_id"]] == doc["variant"]


def test_routing_percent_only_for_canary() -> None:
    with pytest.raises(ValueError, match="canary"):
        Routing(mode="shadow", percent=5)


def test_latency_is_measured_from_the_record_timestamp() -> None:
    out = BatchScorer("m").process([_rec(_event(1))], _models())
    assert orjson.loads(out.predictions[0][1])["latency_ms"] > 0
    assert np.isfinite(orjson.loads(out.predictions[0][1])["latency_ms"])


# -- context: attributes that travel with the event, never given to the model ----------------
SENSITIVE = event_model("m", {"a": "numeric", "b": "numeric"}, context_features=("segment",))


def test_context_travels_to_the_prediction_and_the_monitors_not_the_model() -> None:
    seen: list[dict[str, Any]] = []

    class Recording(TypedScorer):
        def predict_batch(self, rows: Any) -> Any:
            seen.extend(rows)
            return super().predict_batch(rows)

    models = ModelSet(Recording(0.8, name="m", version="3"), SENSITIVE)
    records = [
        _rec(_event(0, context={"segment": "b", "region": "north", "vip": True, "n": 2.5})),
        _rec(_event(1, features={"a": 1.0, "b": 2, "segment": "a"}), 1),  # inside features
        _rec(_event(2, features={"a": 1.0, "b": 2, "segment": "a"}, context={"segment": "c"}), 2),
        _rec(_event(3), 3),  # no context at all
    ]
    out = BatchScorer("m").process(records, models)
    assert out.dead_letters == []
    assert seen == [{"a": 1.0, "b": 2}] * 4, "the model never sees a context attribute"
    docs = [Prediction.model_validate_json(v) for _, v in out.predictions]
    assert [d.context for d in docs] == [
        {"segment": "b", "region": "north", "vip": True, "n": 2.5},
        {"segment": "a"},
        {"segment": "c"},  # the context's own value wins over the copy in features
        None,
    ]
    [part] = out.scored
    assert part.context == [d.context for d in docs]
    assert part.features == [{"a": 1.0, "b": 2}] * 4


def test_a_batch_without_context_carries_none() -> None:
    out = BatchScorer("m").process([_rec(_event(i), i) for i in range(3)], _models())
    assert out.scored[0].context is None


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        # Only the card's sensitive column may stand among the features; anything else is
        # still an unknown feature, with the same reason as before.
        (_event(0, features={"a": 1, "b": 2, "region": "n"}), "features.region: Extra inputs"),
        (_event(0, context={"deep": {"x": 1}}), "context.deep"),
        (_event(0, context={"f": [1]}), "context.f"),
        (_event(0, context=["segment"]), "context"),
    ],
)
def test_what_context_cannot_hold_is_a_dead_letter(event: dict[str, Any], reason: str) -> None:
    out = BatchScorer("m").process([_rec(event)], ModelSet(TypedScorer(0.8), SENSITIVE))
    assert out.predictions == []
    [(_, raw)] = out.dead_letters
    letter = DeadLetter.model_validate_json(raw)
    assert reason in letter.error, letter.error
