"""The append-only model history: records, order, filters, two writers, torn lines."""

from __future__ import annotations

import itertools
import multiprocessing as mp
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from models.errors import HistoryError, ModelError
from models.history import HISTORY_FILE, KINDS, History
from models.registry import Registry
from models.workflow import TrainResult

PER_WRITER = 150
LIFECYCLE = ("request", "gates", "register", "stage", "test", "promote", "reject", "rollback")


def _append_many(root: str, writer: str, count: int, start: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    history = History(root)
    for i in range(count):
        history.record("credit", "test", writer=writer, seq=i, pad="x" * 2000)


def test_record_adds_id_time_model_and_kind(tmp_path: Path) -> None:
    history = History(tmp_path)
    rec = history.record("credit", "gates", version="3", passed=False, summary="refused: x")
    assert rec["model"] == "credit" and rec["kind"] == "gates" and rec["version"] == "3"
    assert len(rec["id"]) == 32
    assert datetime.fromisoformat(rec["at"]).tzinfo is not None
    assert history.read("credit") == [rec]
    line = (tmp_path / "credit" / HISTORY_FILE).read_bytes()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == rec


def test_read_is_oldest_first_with_limit_and_kinds(tmp_path: Path) -> None:
    history = History(tmp_path)
    assert set(LIFECYCLE) <= set(KINDS)
    for i, kind in enumerate(LIFECYCLE):
        history.record("m", kind, step=i)
    records = history.read("m")
    assert [r["kind"] for r in records] == list(LIFECYCLE)
    assert [r["step"] for r in history.read("m", limit=3)] == [5, 6, 7]
    assert history.read("m", limit=0) == []
    assert [r["kind"] for r in history.read("m", kinds=("promote", "rollback"))] == [
        "promote",
        "rollback",
    ]
    assert [r["at"] for r in records] == sorted(r["at"] for r in records)
    assert len({r["id"] for r in records}) == len(LIFECYCLE)
    assert history.read("unknown") == []


def test_numpy_values_are_json(tmp_path: Path) -> None:
    history = History(tmp_path)
    rec = history.record("m", "test", n=np.int64(7), p=np.float64(0.25), arr=np.arange(3))
    assert (rec["n"], rec["p"], rec["arr"]) == (7, 0.25, [0, 1, 2])


def test_bad_records_are_refused(tmp_path: Path) -> None:
    history = History(tmp_path)
    with pytest.raises(HistoryError, match="unknown history kind"):
        history.record("m", "deploy")
    with pytest.raises(HistoryError, match="reserved"):
        history.record("m", "stage", at="yesterday")
    with pytest.raises(HistoryError, match="not JSON"):
        history.record("m", "stage", thing=object())
    with pytest.raises(ModelError, match="invalid model name"):
        history.record("../etc", "stage")
    with pytest.raises(HistoryError, match="limit"):
        history.read("m", limit=-1)
    assert history.read("m") == []  # nothing half-written


def test_two_processes_append_without_losing_or_mixing_lines(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_append_many, args=(str(tmp_path), w, PER_WRITER, start))
        for w in ("a", "b")
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    history = History(tmp_path)
    records = history.read("credit")
    assert history.skipped == 0
    assert len(records) == 2 * PER_WRITER
    for writer in ("a", "b"):
        seqs = [r["seq"] for r in records if r["writer"] == writer]
        assert seqs == list(range(PER_WRITER))  # each writer's order is kept
    assert len({r["id"] for r in records}) == 2 * PER_WRITER
    writers = [r["writer"] for r in records]
    assert any(x != y for x, y in itertools.pairwise(writers))  # they did overlap


def test_a_torn_line_is_skipped_and_closed_by_the_next_writer(tmp_path: Path) -> None:
    history = History(tmp_path)
    history.record("m", "request", reason="a")
    with (tmp_path / "m" / HISTORY_FILE).open("ab") as fh:
        fh.write(b'{"id": "torn", "kind": "sta')  # a crash in the middle of a write
    assert [r["reason"] for r in history.read("m")] == ["a"]
    assert history.skipped == 1
    history.record("m", "request", reason="b")
    assert [r["reason"] for r in history.read("m")] == ["a", "b"]
    assert history.skipped == 1


def test_history_lives_beside_the_registry(sea_result: TrainResult, tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    history = History(tmp_path)
    history.record("sea", "request", reason="concept_drift")
    card = registry.register(sea_result.payload, sea_result.card)
    history.record("sea", "register", version=card.version)
    assert registry.versions("sea") == ["1"] and registry.names() == ["sea"]
    assert [r["kind"] for r in history.read("sea")] == ["request", "register"]
    assert history.path("sea") == tmp_path / "sea" / HISTORY_FILE
