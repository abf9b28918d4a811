"""The lifecycle history of a model: an append-only JSON-lines file beside the registry.

Every retrain request, gate report, registration, stage change, sequential-test statistic,
promotion, rejection and rollback is one line of ``<root>/<model>/history.jsonl``::

    {"id": "…", "at": "2026-11-20T10:31:02.114+00:00", "model": "credit", "kind": "gates",
     "version": "7", "passed": false, "summary": "refused: fairness dp_gap 0.310 > 0.250"}

Writers (the retrainer, a worker, the CLI) may be separate processes: each record is appended
with one ``write`` under an exclusive ``flock`` of the file and flushed to disk, so lines never
interleave and file order is the order in which records were made. Readers take a shared lock.
A line torn by a crash mid-write is closed by the next writer (which starts on a new line) and
skipped by readers, who count such lines in :attr:`History.skipped`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from models.card import MODEL_NAME
from models.errors import HistoryError

HISTORY_FILE = "history.jsonl"
KINDS: tuple[str, ...] = (
    "request",
    "gates",
    "register",
    "stage",
    "test",
    "promote",
    "reject",
    "rollback",
    # outcomes of a request that produced no candidate
    "deferred",
    "skipped",
    "failed",
    "retry",
)
RESERVED: frozenset[str] = frozenset({"id", "at", "model", "kind"})
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class History:
    """Append-only record of what happened to each model.

    Parameters
    ----------
    root : str or Path
        The registry root; the history of ``NAME`` is ``<root>/NAME/history.jsonl``.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> history = History(tmp.name)
    >>> rec = history.record("credit", "request", reason="concept_drift", alert_ids=["a1"])
    >>> sorted(rec)
    ['alert_ids', 'at', 'id', 'kind', 'model', 'reason']
    >>> _ = history.record("credit", "gates", version="2", passed=False)
    >>> [r["kind"] for r in history.read("credit")]
    ['request', 'gates']
    >>> history.read("credit", limit=1)[0]["passed"]
    False
    >>> tmp.cleanup()
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.skipped = 0

    def path(self, model: str) -> Path:
        """The history file of ``model`` (which may not exist yet)."""
        if not MODEL_NAME.match(model):
            raise HistoryError(
                f"invalid model name {model!r}: use letters, digits, '.', '_' or '-' (max 64)",
                model=model,
            )
        return self.root / model / HISTORY_FILE

    @contextlib.contextmanager
    def _locked(self, model: str, mode: str, lock: int) -> Iterator[IO[bytes]]:
        path = self.path(model)
        try:
            if mode == "a+b":
                path.parent.mkdir(parents=True, exist_ok=True)
            fh = path.open(mode)
        except OSError as exc:
            raise HistoryError(f"cannot open {path}: {exc.strerror}", model=model) from exc
        with fh:
            fcntl.flock(fh.fileno(), lock)
            try:
                yield fh
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def record(self, model: str, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one record and return it.

        Parameters
        ----------
        model : str
            Model name.
        kind : str
            One of :data:`KINDS`.
        **fields
            JSON-able values (numpy scalars and arrays are accepted). ``id``, ``at``,
            ``model`` and ``kind`` are set here.

        Returns
        -------
        dict
            The record as written, with ``id`` (random hex) and ``at`` (UTC ISO-8601).

        Raises
        ------
        HistoryError
            Unknown kind, reserved or non-JSON field, or the file cannot be written.
        """
        if kind not in KINDS:
            raise HistoryError(
                f"unknown history kind {kind!r}; use one of {', '.join(KINDS)}", model=model
            )
        clash = sorted(RESERVED & fields.keys())
        if clash:
            raise HistoryError(f"reserved history field(s): {', '.join(clash)}", model=model)
        rec: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "model": model,
            "kind": kind,
            **fields,
        }
        try:
            line = orjson.dumps(rec, option=_JSON_OPTIONS) + b"\n"
        except TypeError as exc:
            raise HistoryError(f"history record is not JSON: {exc}", model=model) from exc
        with self._locked(model, "a+b", fcntl.LOCK_EX) as fh:
            try:
                end = fh.seek(0, os.SEEK_END)
                if end:
                    fh.seek(end - 1)
                    if fh.read(1) != b"\n":  # a writer crashed mid-line: close that line
                        line = b"\n" + line
                # One write of the whole line on an O_APPEND file, under the lock.
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                raise HistoryError(
                    f"cannot append to {self.path(model)}: {exc.strerror}", model=model
                ) from exc
        written: dict[str, Any] = orjson.loads(line)
        return written

    def read(
        self, model: str, limit: int | None = None, kinds: tuple[str, ...] | None = None
    ) -> list[dict[str, Any]]:
        """Records of ``model``, oldest first.

        Parameters
        ----------
        model : str
            Model name (an unknown model has an empty history).
        limit : int or None
            Keep only the ``limit`` most recent records (after filtering by kind).
        kinds : tuple of str or None
            Keep only records of these kinds.

        Lines that are not JSON objects (torn by a crash) are skipped and counted in
        :attr:`skipped`.
        """
        if limit is not None and limit < 0:
            raise HistoryError(f"limit must be >= 0, got {limit}", model=model)
        if not self.path(model).exists():
            return []
        with self._locked(model, "rb", fcntl.LOCK_SH) as fh:
            data = fh.read()
        out: deque[dict[str, Any]] = deque(maxlen=limit)
        skipped = 0
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                rec = None
            if not isinstance(rec, dict):
                skipped += 1
                continue
            if kinds is None or rec.get("kind") in kinds:
                out.append(rec)
        self.skipped = skipped
        return list(out)


__all__ = ["HISTORY_FILE", "KINDS", "History"]
