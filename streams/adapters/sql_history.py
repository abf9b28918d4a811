"""The SQL history sink: monitoring points, alerts and version events, in batches, to SQL tables.

With ``DRIFTLINE_HISTORY_DB`` set, what Driftline already keeps in Redis (capped) is also written
to three tables of that database, so that Grafana, Superset or any SQL tool can chart a model's
whole life; the schema is documented in ``docs/sql-history.md``:

- ``driftline_points``: each monitoring history point (:mod:`monitoring.timeline`), one row per
  number (a metric of a version and variant, a drift statistic of a feature, a fairness gap or
  a group's rate), long format: ``SELECT at, value ... WHERE metric = 'f1'`` is a time series;
- ``driftline_alerts``: every alert delivered, keyed by its ``alert_id``;
- ``driftline_version_events``: every decision of the retrainer (request, gates, stage,
  promotion, rejection, rollback), keyed by the history record's id.

Rows wait in memory and are written ``flush_s`` after the first of them arrived, in one
transaction per batch. The tables are created when the first batch is written. A database that
is down or refuses a batch never blocks scoring or monitoring: the rows stay queued (the oldest
dropped beyond ``max_rows``, and counted) and the next flush tries again; the failure is logged
once and reported by :attr:`SqlHistory.failing` until a batch goes through.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from streams.adapters.sql import redacted, sql_engine

log = logging.getLogger("driftline.history")

metadata = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only
_AT = sa.DateTime(timezone=True)

POINTS = sa.Table(
    "driftline_points",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("at", _AT, nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("worker", sa.String(255), nullable=False),
    sa.Column("champion", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(128), nullable=False),
    sa.Column("feature", sa.String(255)),
    sa.Column("group_name", sa.String(255)),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("value", sa.Float),
    sa.Index("ix_driftline_points_model_metric_at", "model", "metric", "at"),
)
ALERTS = sa.Table(
    "driftline_alerts",
    metadata,
    sa.Column("alert_id", sa.String(64), primary_key=True),
    sa.Column("at", _AT, nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("feature", sa.String(255)),
    sa.Column("detector", sa.String(64), nullable=False),
    sa.Column("statistic", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("details", sa.Text, nullable=False),
    sa.Index("ix_driftline_alerts_model_at", "model", "at"),
)
EVENTS = sa.Table(
    "driftline_version_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("at", _AT, nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("version", sa.String(64)),
    sa.Column("request_id", sa.String(64)),
    sa.Column("reason", sa.Text),
    sa.Column("details", sa.Text, nullable=False),
    sa.Index("ix_driftline_version_events_model_at", "model", "at"),
)
# 0, 1, 2: a status charts as a number like everything else in driftline_points.
STATUS_CODES = {"ok": 0.0, "degraded": 1.0, "alerting": 2.0}


def _when(unix_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix_s, dt.UTC)


def _value(x: Any) -> float | None:
    return None if x is None or isinstance(x, bool) else float(x)


def point_rows(model: str, point: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of ``driftline_points`` for one history point (:mod:`monitoring.timeline`).

    Examples
    --------
    >>> point = {"at": 0.0, "worker": "w", "champion": "3", "status": "ok", "events": 10,
    ...          "labels": 4, "metrics": {"3/champion": {"f1": 0.8, "estimated": {"f1": 0.7}}},
    ...          "groups": {}, "drift": {"features": {"champion": {"age": {"psi": 0.02}}},
    ...                                  "scores": {}, "counts": {}}}
    >>> [(r["scope"], r["feature"], r["metric"], r["value"]) for r in point_rows("m", point)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('', None, 'status', 0.0), ('', None, 'events', 10.0), ('', None, 'labels', 4.0),
     ('3/champion', None, 'f1', 0.8), ('3/champion', None, 'estimated_f1', 0.7),
     ('champion', 'age', 'psi', 0.02)]
    """
    base = {
        "at": _when(float(point.get("at") or time.time())),
        "model": model,
        "worker": str(point.get("worker") or ""),
        "champion": str(point.get("champion") or ""),
    }
    rows: list[dict[str, Any]] = []

    def add(
        scope: str, metric: str, value: Any, feature: str | None = None, group: Any = None
    ) -> None:
        row = {"scope": scope, "feature": feature, "group_name": group, "metric": metric}
        rows.append({**base, **row, "value": _value(value)})

    add("", "status", STATUS_CODES.get(str(point.get("status"))))
    add("", "events", point.get("events"))
    add("", "labels", point.get("labels"))
    for scope, metrics in (point.get("metrics") or {}).items():
        for metric, value in metrics.items():
            if isinstance(value, Mapping):  # the label-free estimate: estimated_f1, ...
                for name, figure in value.items():
                    add(scope, f"{metric}_{name}", figure)
            else:
                add(scope, metric, value)
    for scope, fair in (point.get("groups") or {}).items():
        add(scope, "dp_gap", fair.get("dp_gap"))
        add(scope, "eo_gap", fair.get("eo_gap"))
        for group, rates in (fair.get("groups") or {}).items():
            for metric, value in rates.items():
                add(scope, metric, value, group=group)
    drift = point.get("drift") or {}
    for variant, features in (drift.get("features") or {}).items():
        for feature, stats in features.items():
            for metric, value in stats.items():
                add(variant, metric, value, feature=feature)
    for scope, stats in (drift.get("scores") or {}).items():
        for metric, value in stats.items():
            add(scope, f"score_{metric}", value)
    for kind, count in (drift.get("counts") or {}).items():
        add("", f"findings_{kind}", count)
    return rows


def alert_row(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The row of ``driftline_alerts`` for one alert (``streams.contracts.messages.Alert``)."""
    return {
        "alert_id": str(alert["alert_id"]),
        "at": _when(float(alert["at"])),
        "model": str(alert["model"]),
        "version": str(alert.get("version") or ""),
        "kind": str(alert["kind"]),
        "feature": alert.get("feature"),
        "detector": str(alert.get("detector") or ""),
        "statistic": _value(alert.get("statistic")),
        "threshold": _value(alert.get("threshold")),
        "details": orjson.dumps(alert.get("details") or {}).decode(),
    }


def event_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The row of ``driftline_version_events`` for one history record (models.history)."""
    at = dt.datetime.fromisoformat(str(entry["at"]))
    version = entry.get("version")
    return {
        "event_id": str(entry["id"]),
        "at": at if at.tzinfo else at.replace(tzinfo=dt.UTC),
        "model": str(entry["model"]),
        "kind": str(entry["kind"]),
        "version": None if version is None else str(version),
        "request_id": entry.get("request_id"),
        "reason": entry.get("reason"),
        "details": orjson.dumps(entry, default=str).decode(),
    }


class SqlHistory:
    """Queues rows of the three tables and writes them to ``db`` in batches.

    Parameters
    ----------
    db
        A SQLAlchemy URL or a SQLite file path.
    flush_s
        How long the first queued row waits before its batch is written.
    max_rows
        The most rows queued while the database is unreachable; older ones are dropped.
    """

    def __init__(self, db: str, flush_s: float = 5.0, max_rows: int = 100_000) -> None:
        self.database = redacted(db)
        self.engine = sql_engine(db, pool_pre_ping=True)
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.queued: dict[sa.Table, list[dict[str, Any]]] = {POINTS: [], ALERTS: [], EVENTS: []}
        self.oldest: float | None = None
        self.written = 0
        self.dropped = 0
        self.failing: str | None = None
        self._created = False
        self._lock = asyncio.Lock()

    def _queue(self, table: sa.Table, rows: Iterable[dict[str, Any]]) -> None:
        self.queued[table].extend(rows)
        self.oldest = self.oldest or time.monotonic()
        over = sum(len(r) for r in self.queued.values()) - self.max_rows
        if over > 0:
            cut = min(over, len(self.queued[POINTS]))  # points first: alerts matter more
            del self.queued[POINTS][:cut]
            self.dropped += cut

    def add_point(self, model: str, point: Mapping[str, Any]) -> None:
        """Queue one monitoring history point."""
        self._queue(POINTS, point_rows(model, point))

    def add_alerts(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        """Queue alerts as delivered."""
        self._queue(ALERTS, (alert_row(a) for a in alerts))

    def add_event(self, entry: Mapping[str, Any]) -> None:
        """Queue one version event (a record of the registry history)."""
        self._queue(EVENTS, [event_row(entry)])

    def pending(self) -> int:
        """Rows queued and not written yet."""
        return sum(len(rows) for rows in self.queued.values())

    def write(self, batch: Mapping[sa.Table, list[dict[str, Any]]]) -> int:
        """Write one batch in one transaction (creating the tables first); blocking."""
        if not self._created:
            metadata.create_all(self.engine)
            self._created = True
        with self.engine.begin() as conn:
            for table, rows in batch.items():
                if rows:
                    conn.execute(self._insert(table), rows)
        return sum(len(rows) for rows in batch.values())

    def _insert(self, table: sa.Table) -> sa.Insert:
        # An alert or event already there (a batch whose commit went through but whose answer
        # was lost, written again) is skipped: each is written once, and a batch never jams.
        if table is POINTS:
            return table.insert()
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        return table.insert()

    async def flush(self, force: bool = False) -> int:
        """Write what is queued when its time has come (now, with ``force``); never raises.

        Returns the rows written (0 when nothing was due, or the database failed).
        """
        due = self.oldest is not None and time.monotonic() - self.oldest >= self.flush_s
        if not (force or due) or not self.pending():
            return 0
        async with self._lock:
            batch = self.queued
            self.queued = {POINTS: [], ALERTS: [], EVENTS: []}
            self.oldest = None
            try:
                done = await asyncio.to_thread(self.write, batch)
            except SQLAlchemyError as exc:
                for table, rows in batch.items():  # back in front, in their order
                    self.queued[table][:0] = rows
                self.oldest = time.monotonic()
                if self.failing is None:
                    log.warning("history database %s: %s", self.database, exc)
                self.failing = str(exc).splitlines()[0]
                return 0
            self.failing = None
            self.written += done
            return done

    async def aclose(self) -> None:
        """Write what is left, then let the connections go."""
        await self.flush(force=True)
        self.engine.dispose()


__all__ = [
    "ALERTS",
    "EVENTS",
    "POINTS",
    "STATUS_CODES",
    "SqlHistory",
    "alert_row",
    "event_row",
    "metadata",
    "point_rows",
]
