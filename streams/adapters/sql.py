"""SQL databases through SQLAlchemy: an engine from a URL, and a query read into a table.

A database is named by a SQLAlchemy URL (``postgresql://user@host/db``, ``sqlite:///path``);
a bare path with no scheme is a SQLite file, the embedded default that needs no server and no
driver beyond Python's own. ``postgresql://`` (and ``postgres://``) use psycopg 3, the driver
of the ``postgres`` extra.

:func:`read_query` runs one statement in a transaction it never commits and returns its rows
as a :class:`models.table.Table` of plain cells, what :mod:`models` takes: the pure library
holds no database client. Every failure is one line that names the database (its password
masked) and what to fix: the database cannot be reached, the query fails, the statement
returns no rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from models.card import QueryInfo
from models.errors import DataError
from models.table import Cell, Table
from streams.errors import ConfigError

# Schemes SQLAlchemy would otherwise give to psycopg2, which Driftline does not install.
_POSTGRES = {"postgresql", "postgres"}


def sql_url(db: str) -> str:
    """The SQLAlchemy URL of ``db``: a URL as it is, a bare path as a SQLite file.

    Examples
    --------
    >>> sql_url("data/train.sqlite").startswith("sqlite:///") and sql_url("x.db").endswith("x.db")
    True
    >>> sql_url("postgresql://me@db.example/credit")
    'postgresql+psycopg://me@db.example/credit'
    >>> sql_url("sqlite://")
    'sqlite://'
    """
    db = db.strip()
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    scheme, rest = db.split("://", 1)
    if scheme in _POSTGRES:
        return f"postgresql+psycopg://{rest}"
    return db


def redacted(db: str) -> str:
    """``db`` as a URL with its password masked, fit for logs, errors and model cards.

    Examples
    --------
    >>> redacted("postgresql://me:secret@db.example:5432/credit")
    'postgresql+psycopg://me:***@db.example:5432/credit'
    """
    try:
        return make_url(sql_url(db)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<an invalid database URL>"


def sql_engine(db: str, **options: Any) -> Engine:
    """An engine for ``db`` (see :func:`sql_url`); nothing is connected yet.

    Raises
    ------
    ConfigError
        Not a database URL, or its driver is not installed (says which extra brings it).
    """
    url = sql_url(db)
    try:
        return sa.create_engine(url, **options)
    except NoSuchModuleError as exc:
        raise ConfigError(
            f"{redacted(db)}: SQLAlchemy knows no such database kind ({exc}); expected "
            "postgresql://user@host/db, sqlite:///path or a SQLite file path"
        ) from None
    except ArgumentError as exc:
        raise ConfigError(
            f"{db!r} is not a database URL: expected dialect[+driver]://user@host/db "
            f"(e.g. postgresql://user@host/db) or a SQLite file path ({exc})"
        ) from None
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"{redacted(db)}: no driver for this database ({exc}); for PostgreSQL install "
            "the postgres extra: pip install 'driftline[postgres]'"
        ) from None


def _cell(value: object) -> Cell:
    """A driver's value as a plain cell: numbers stay numbers, times and ids become text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def _reason(exc: SQLAlchemyError) -> str:
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_query(
    db: str, query: str, params: Mapping[str, Any] | None = None, *, allow_empty: bool = False
) -> tuple[Table, QueryInfo]:
    """Run ``query`` on ``db`` and return its rows, and what the model card records of it.

    Parameters
    ----------
    db
        A SQLAlchemy URL or a SQLite file path (:func:`sql_url`).
    query
        One statement that returns rows (a ``SELECT``). It runs in a transaction that is
        rolled back: it reads, and whatever else it does is undone.
    params
        Values of its named parameters (``:name``); those it does not use are ignored.
    allow_empty
        Return an empty table rather than raise when the query returns no rows.

    Returns
    -------
    tuple of Table and QueryInfo
        The rows, and the query with the redacted URL, the row count and the sha256 of the
        result's canonical bytes (its fingerprint).

    Raises
    ------
    ConfigError
        A bad URL or a missing driver.
    DataError
        The database cannot be reached, the query fails, returns no rows (unless
        ``allow_empty``) or returns duplicate column names.
    """
    src = redacted(db)
    if not query.strip():
        raise DataError(f"{src}: the query is empty; give a SELECT statement", source=src)
    engine = sql_engine(db)
    path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
        engine.dispose()  # SQLite would create an empty database there and find no table
        raise DataError(f"{src}: no such SQLite file", source=src)
    try:
        try:
            conn = engine.connect()
        except SQLAlchemyError as exc:
            raise DataError(f"{src}: cannot connect: {_reason(exc)}", source=src) from None
        with conn:
            try:
                result = conn.execute(sa.text(query), dict(params or {}))
            except SQLAlchemyError as exc:
                raise DataError(f"{src}: the query failed: {_reason(exc)}", source=src) from None
            if not result.returns_rows:
                raise DataError(
                    f"{src}: the statement returns no rows; give a SELECT statement", source=src
                )
            names = result.keys()  # a result, not a dict: iterating it reads the rows
            columns = tuple(str(c) for c in names)
            rows = tuple(tuple(_cell(v) for v in row) for row in result)
            conn.rollback()
    finally:
        engine.dispose()
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(
            f"{src}: the query returns duplicate column name(s): {', '.join(dupes)}; "
            "name them apart with AS",
            source=src,
        )
    if not rows and not allow_empty:
        raise DataError(
            f"{src}: the query returned no rows (columns: {', '.join(columns)})", source=src
        )
    table = Table(columns, rows)
    return table, QueryInfo(
        database=src, query=query.strip(), rows=len(rows), sha256=table.sha256()
    )


__all__ = ["read_query", "redacted", "sql_engine", "sql_url"]
