"""The batch decoder's fast path agrees with the pydantic event model, event by event."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from models.scorer import FixedScorer
from streams.contracts.messages import F32_MAX, event_model
from streams.scoring.batch import BatchScorer, ModelSet, RawRecord
from streams.scoring.decode import BatchDecoder

KINDS = {"age": "numeric", "income": "numeric", "debt": "numeric", "city": "categorical"}
EVENT = event_model("m", KINDS, context_features=("region",))


def _reference(raw: bytes) -> tuple[Any, ...] | None:
    """What the pydantic path makes of ``raw`` (None when it refuses it)."""
    try:
        ev = EVENT.model_validate_json(raw)
    except ValidationError:
        return None
    features, context = dict(ev.features), ev.context
    for name in EVENT.context_features:
        if name in features:
            context = {name: features.pop(name), **(context or {})}
    return ev.event_id, features, ev.entity, ev.ts, context


ODD_VALUES: list[Any] = [
    True,
    "12",
    "",
    [1],
    {"a": 1},
    None,
    0,
    -7,
    10**40,
    -(10**40),
    3.5e38,
    F32_MAX,
    1.5,
    2**63,
]


def _valid(rng: random.Random, i: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": f"e{i}",
        "features": {
            "age": rng.choice([rng.randint(18, 90), rng.uniform(18, 90), None]),
            "income": rng.uniform(-1e6, 1e6),
            "debt": rng.choice([rng.random(), 0, None]),
            "city": rng.choice(["Oslo", "Bergen", 7, None]),
        },
    }
    if rng.random() < 0.3:
        doc["ts"] = rng.choice([1.7e9, 1_700_000_000, None])
    if rng.random() < 0.2:
        doc["entity"] = rng.choice(["u1", None])
    if rng.random() < 0.2:
        doc["context"] = {"seg": rng.choice(["a", 1, 2.5, True, None])}
    if rng.random() < 0.2:
        doc["features"]["region"] = rng.choice(["north", 3])
    if rng.random() < 0.1:
        doc["schema_version"] = 1
    return doc


def _mutated(rng: random.Random, doc: dict[str, Any]) -> dict[str, Any] | Any:
    kind = rng.randrange(10)
    if kind == 0:
        doc["features"][rng.choice(list(KINDS))] = rng.choice(ODD_VALUES)
    elif kind == 1:
        doc["features"].pop(rng.choice(list(KINDS)))
    elif kind == 2:
        doc["features"]["unknown"] = 1.0
    elif kind == 3:
        doc[rng.choice(["ts", "entity", "schema_version"])] = rng.choice(ODD_VALUES)
    elif kind == 4:
        doc["event_id"] = rng.choice(["", "x" * 257, 5, None, "x" * 256])
    elif kind == 5:
        doc["context"] = rng.choice([{"k": [1]}, {f"k{j}": j for j in range(65)}, "c", {"k": {}}])
    elif kind == 6:
        doc["extra"] = 1
    elif kind == 7:
        doc["features"]["region"] = rng.choice([[1], {"a": 1}, 1.5])
    elif kind == 8:
        return rng.choice([[doc], "text", 5, None])
    else:
        doc["features"] = rng.choice([None, [1, 2], "f"])
    return doc


def _corpus(n: int) -> list[bytes]:
    rng = random.Random(1234)
    out = []
    for i in range(n):
        doc = _valid(rng, i)
        if rng.random() < 0.5:
            doc = _mutated(rng, doc)
        out.append(json.dumps(doc).encode())  # json: integers beyond 64 bits too
    valid = b'"features": {"age": 1, "income": 2, "debt": 3, "city": "a"}'
    out += [
        b"{not json",
        b"",
        b"\xff\xfe",
        b'{"event_id": "a", "features": {"age": 1e400}}',
        b'{"event_id": "a", ' + valid + b', "ts": 1e400}',
        b'{"event_id": "a", ' + valid + b', "context": {"x": 1e400}}',
        b'{"event_id": "a", ' + valid + b', "ts": "17"}',
        b'{"event_id": "\\ud800", ' + valid + b"}",
        b'{"event_id": "a", "event_id": "b", ' + valid + b"}",
        b'{"event_id": "a", "features": {"age": 1, "age": 2, "income": 2, "debt": 3, "city": "a"}}',
    ]
    return out


def test_fast_path_accepts_only_what_the_model_accepts_and_gives_the_same_values() -> None:
    raws = _corpus(4000)
    decoded = BatchDecoder(EVENT).decode(raws)
    fast = 0
    for raw, d in zip(raws, decoded, strict=True):
        if d is None:
            continue
        fast += 1
        expected = _reference(raw)
        assert expected is not None, raw
        got = (d.event_id, d.features, d.entity, d.ts, d.context)
        assert got == expected, raw
        assert type(d.ts) is type(expected[3]), raw
        for name, value in d.features.items():
            assert type(value) is type(expected[1][name]), (raw, name)
    accepted = sum(_reference(raw) is not None for raw in raws)
    # The fast path must actually carry the stream, not leave it all to pydantic.
    assert fast >= 0.9 * accepted, (fast, accepted)


def test_a_batch_reads_the_same_through_the_scorer_with_and_without_the_fast_path() -> None:
    raws = _corpus(600)
    records = [RawRecord(r, None, "events", i % 3, i) for i, r in enumerate(raws)]
    models = ModelSet(FixedScorer(0.8, name="m", version="1"), EVENT)
    fast = BatchScorer("m").process(records, models)
    slow_scorer = BatchScorer("m")
    slow_scorer._fast = (EVENT, _NeverFast())  # type: ignore[assignment]
    slow = slow_scorer.process(records, models)
    assert [p for _, p in fast.dead_letters] != []
    assert _stable(fast.dead_letters) == _stable(slow.dead_letters)
    assert _stable(fast.predictions) == _stable(slow.predictions)


class _NeverFast:
    def decode(self, raws: list[bytes]) -> list[None]:
        return [None] * len(raws)


def _stable(encoded: list[tuple[bytes | None, bytes]]) -> list[dict[str, Any]]:
    docs = [orjson.loads(v) for _, v in encoded]
    for doc in docs:
        for moment in ("at", "scored_at", "latency_ms"):
            doc.pop(moment, None)
    return docs


@pytest.mark.parametrize("numeric", [[], ["x"]])
def test_a_schema_with_one_kind_only(numeric: list[str]) -> None:
    kinds = {n: "numeric" for n in numeric} | {"c": "categorical"}
    decoder = BatchDecoder(event_model("one", kinds))
    features = {n: 1 for n in numeric} | {"c": "a"}
    (d,) = decoder.decode([orjson.dumps({"event_id": "1", "features": features})])
    assert d is not None and d.features == {n: 1.0 for n in numeric} | {"c": "a"}
