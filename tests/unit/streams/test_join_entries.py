"""The label-join entries the monitors store per scored event (streams.monitors.runtime)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from streams.monitors.runtime import entry_lines
from streams.scoring.batch import Scored


def _part(n: int, version: str = "3", variant: str = "champion") -> Scored:
    rng = np.random.default_rng(n)
    return Scored(
        variant,
        version,
        [f"e{i}" for i in range(n)],
        [{"x0": float(i), "x1": None, "name": f'he said "hi", {i}'} for i in range(n)],
        rng.integers(0, 2, n).astype(np.int64),
        rng.random(n).astype(np.float32),
    )


def _expected(part: Scored, keep: int, groups: list[Any] | None) -> list[dict[str, Any]]:
    return [
        {
            "f": part.features[i] if i < keep else None,
            "p": [
                [
                    part.version,
                    part.variant,
                    int(part.labels[i]),
                    float(part.scores[i]),
                    groups[i] if groups else None,
                ]
            ],
        }
        for i in range(len(part.event_ids))
    ]


@pytest.mark.parametrize("n", [1, 2, 300])
@pytest.mark.parametrize("keep", [0, 1, 300])
@pytest.mark.parametrize("grouped", [False, True])
def test_each_line_is_the_entry_of_its_event(n: int, keep: int, grouped: bool) -> None:
    part = _part(n, version='v"1,2', variant="canary")
    groups = [["a,b", "", 'q"x'][i % 3] for i in range(n)] if grouped else None
    lines = entry_lines(part, min(keep, n), groups)
    assert len(lines) == n and all(b"\n" not in line for line in lines)
    got = [orjson.loads(line) for line in lines]
    # a score is written as the float32 it is (no float64 digits): it reads back exactly
    assert all(len(repr(e["p"][0][3])) <= 15 for e in got)
    for entry in got:
        entry["p"][0][3] = float(np.float32(entry["p"][0][3]))
    assert got == _expected(part, min(keep, n), groups)


def test_a_missing_score_is_null_and_nothing_scored_is_no_line() -> None:
    part = _part(3)
    part.scores[1] = np.nan
    (second,) = [orjson.loads(line) for line in entry_lines(part, 0, None)][1:2]
    assert second["p"][0][3] is None
    assert entry_lines(_part(0), 0, None) == []
