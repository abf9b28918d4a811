"""Malformed events, of every kind a careless or hostile producer sends, for scenario 5.

Each one breaks the event contract (``streams.contracts.messages.event_model``) in one way: bytes
that are not JSON, JSON cut short, wrong types, numbers beyond float32, NaN and infinities, deep
nesting, oversized values (a few of 1 MB), unknown fields, empty values, missing fields. Events that
carry an id carry ``bad-<n>``: a prediction for one of them is a bug.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

NUMERIC = ("salary", "commission", "age", "elevel", "hvalue", "hyears", "loan")
CATEGORICAL = ("car", "zipcode")
MEGABYTE_VALUES = 20  # the broker takes up to ~1 MiB per record: these are at its limit
SLOT = "__hostile__"  # where a literal that orjson would not write goes
_SLOT = b'"__hostile__"'
# beyond float32 (as floats, as integers, or overflowing a double)
HUGE: tuple[bytes, ...] = (b"1e39", b"-1e39", b"3.5e38", b"1.7e308", b"1e400", b"-1e999")
HUGE += (b"9" * 400, str(10**40).encode(), b"-" + str(2**300).encode())


@dataclass(frozen=True)
class Hostile:
    """One malformed record: what kind it is, its key, its raw value (None: a null value)."""

    kind: str
    key: bytes | None
    value: bytes | None


def _dumps(doc: Any) -> bytes:
    return orjson.dumps(doc)


class HostileEvents:
    """Builds malformed records from valid ``templates`` (events of the served model)."""

    def __init__(self, templates: list[dict[str, Any]], seed: int = 9) -> None:
        self.templates = templates
        self.rng = random.Random(seed)
        self.n = 0

    def _event(self) -> dict[str, Any]:
        self.n += 1
        base = self.rng.choice(self.templates)
        return {**base, "event_id": f"bad-{self.n}", "features": dict(base["features"])}

    def random_bytes(self) -> bytes:
        return self.rng.randbytes(self.rng.randint(1, 300))

    def truncated_json(self) -> bytes:
        raw = _dumps(self._event())
        return raw[: self.rng.randint(1, len(raw) - 1)]

    def wrong_types(self) -> bytes:
        ev = self._event()
        f, num, cat = ev["features"], self.rng.choice(NUMERIC), self.rng.choice(CATEGORICAL)
        breakers: list[Callable[[], None]] = [
            lambda: f.update({num: "rich"}),
            lambda: f.update({num: True}),
            lambda: f.update({num: [1, 2]}),
            lambda: f.update({num: {"value": 1}}),
            lambda: f.update({cat: 1.5}),
            lambda: f.update({cat: ["a"]}),
            lambda: ev.update(event_id=12345),
            lambda: ev.update(event_id=""),
            lambda: ev.update(event_id="x" * 300),
            lambda: ev.update(features=list(f.values())),
            lambda: ev.update(features="salary=1"),
            lambda: ev.update(ts="yesterday"),
            lambda: ev.update(entity=42),
        ]
        self.rng.choice(breakers)()
        return _dumps(ev)

    def huge_numbers(self) -> bytes:
        ev = self._event()
        name = self.rng.choice(NUMERIC)
        ev["features"][name] = SLOT  # replaced below, as a literal orjson cannot write
        literal = self.rng.choice(HUGE)
        return _dumps(ev).replace(_SLOT, literal, 1)

    def nan_inf(self) -> bytes:
        ev = self._event()
        name = self.rng.choice(NUMERIC)
        ev["features"][name] = SLOT
        literal = self.rng.choice([b"NaN", b"Infinity", b"-Infinity", b'"NaN"', b'"inf"'])
        return _dumps(ev).replace(_SLOT, literal, 1)

    def deep_nesting(self) -> bytes:
        ev = self._event()
        depth = self.rng.choice([20, 100, 500, 2000, 10000])
        nested = b"[" * depth + b"1" + b"]" * depth
        if self.rng.random() < 0.5:
            nested = b'{"a":' * depth + b"1" + b"}" * depth
        ev["features"]["salary"] = SLOT
        return _dumps(ev).replace(_SLOT, nested, 1)

    def oversized(self, megabyte: bool) -> bytes:
        ev = self._event()
        size = 1_000_000 if megabyte else self.rng.randint(66_000, 90_000)
        ev["features"]["car"] = "x" * size
        return _dumps(ev)

    def unknown_fields(self) -> bytes:
        ev = self._event()
        choice = self.rng.randrange(3)
        if choice != 1:
            ev["surprise"] = {"nested": True}
        if choice != 0:
            ev["features"]["shoe_size"] = 44
        return _dumps(ev)

    def empty(self) -> bytes | None:
        return self.rng.choice([None, b"", b"{}", b"null", b"[]", b'""', b" ", b"\n"])

    def missing_fields(self) -> bytes:
        ev = self._event()
        what = self.rng.randrange(3)
        if what == 0:
            del ev["event_id"]
        elif what == 1:
            del ev["features"]
        else:
            del ev["features"][self.rng.choice(NUMERIC + CATEGORICAL)]
        return _dumps(ev)

    def build(self, total: int = 10_000) -> list[Hostile]:
        """``total`` malformed records, about a tenth of each kind, shuffled."""
        plan = {
            "random_bytes": 0.14,
            "truncated_json": 0.14,
            "wrong_types": 0.14,
            "huge_numbers": 0.10,
            "nan_inf": 0.10,
            "deep_nesting": 0.10,
            "unknown_fields": 0.10,
            "empty": 0.10,
            "missing_fields": 0.05,
        }
        out: list[Hostile] = []
        for kind, share in plan.items():
            make = getattr(self, kind)
            out += [Hostile(kind, None, make()) for _ in range(int(total * share))]
        out += [Hostile("oversized", None, self.oversized(True)) for _ in range(MEGABYTE_VALUES)]
        while len(out) < total:
            out.append(Hostile("oversized", None, self.oversized(False)))
        self.rng.shuffle(out)
        # half of them keyed; a null value always (Kafka refuses a record with neither)
        return [
            Hostile(
                h.kind,
                f"bad-{i}".encode() if h.value is None or self.rng.random() < 0.5 else None,
                h.value,
            )
            for i, h in enumerate(out)
        ]


__all__ = ["CATEGORICAL", "MEGABYTE_VALUES", "NUMERIC", "Hostile", "HostileEvents"]
