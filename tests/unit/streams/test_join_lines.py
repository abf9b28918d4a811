"""The label join's value encoding: one line of JSON per value, whatever the values."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.redis_join import _lines


def _slow(values: list[Any]) -> bytes:
    return b"\n".join(orjson.dumps(v) for v in values)


MONITOR_ENTRIES = [
    {"f": {"x1": 0.5, "f": 1.0, '},{"f":': 2.0}, "p": [["1", "champion", 1, 0.9, None]]},
    {"f": None, "p": [["1", "champion", 0, 0.1, "a"], ["2", "shadow", 1, 0.7, '},{"f":']]},
    {"f": {"name": 'he said "},{\\"f\\":"'}, "p": []},
    {"f": None, "p": [["1", "champion", "yes", 0.5, None]]},
]


@pytest.mark.parametrize(
    "values",
    [
        MONITOR_ENTRIES,
        MONITOR_ENTRIES[:1],
        [{"v": "1", "p": 0.9}, {"v": "2"}],  # not the monitor's shape
        [{"f": [{"a": 1}, {"f": 2}]}, {"p": 1}],  # a split inside a value: caught
        [1, "yes", None, 0],  # labels
        [{}, {"f": None}],
    ],
)
def test_one_line_per_value_equal_to_dumping_each(values: list[Any]) -> None:
    items = [(f"e{i}", v) for i, v in enumerate(values)]
    out = _lines(items)
    assert out == _slow(values)
    assert [orjson.loads(line) for line in out.split(b"\n")] == values


def test_nothing() -> None:
    assert _lines([]) == b""
