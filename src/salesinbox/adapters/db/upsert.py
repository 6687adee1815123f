"""Inserts that leave an existing row alone (ON CONFLICT DO NOTHING), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
import functools
import operator

from sqlalchemy import Uuid
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_missing(db: AsyncSession, table, rows: list[dict]) -> None:
    """Insert ``rows`` into ``table``; a row whose key is there already is skipped, not an error.

    Two writers may add the same row at once (a person labelling while a sync
    pass brings the same keyword): on PostgreSQL both commit.
    """
    if not rows:
        return
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    await db.execute(dialect.insert(table).on_conflict_do_nothing(), rows)


_ZERO = dt.timedelta(0)


def _sqlite_datetime(value: dt.datetime | None) -> str | None:
    """SQLAlchemy's SQLite storage format (``YYYY-MM-DD HH:MM:SS.ffffff``, zero-padded), in UTC."""
    if value is None:
        return None
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("naive datetime given to a UTC column")
    if offset != _ZERO:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value


def _converter(column, sqlite: bool):
    kind = type(column.type).__name__
    if isinstance(column.type, Uuid):
        return (lambda v: v.hex if v is not None else None) if sqlite else None
    if kind == "UtcDateTime":
        return _sqlite_datetime if sqlite else _utc
    return None  # str, int, bool: the driver takes them as they are


@functools.cache
def _plan(table, columns: tuple[str, ...], sqlite: bool):
    cols = [table.c[name] for name in columns]
    marker = "?" if sqlite else "%s"
    sql = f"INSERT INTO {table.name} ({', '.join(c.name for c in cols)}) VALUES ({', '.join(marker for _ in cols)})"
    defaults = []
    for column in table.columns:
        if column.name not in columns and column.default is not None:
            default = column.default
            defaults.append(
                (column.name, default.arg if default.is_scalar else None, default if default.is_callable else None)
            )
    return sql, [_converter(c, sqlite) for c in cols], defaults


async def insert_rows(db: AsyncSession, table, rows: list[dict], *, skip_existing: bool = False) -> None:
    """A plain multi-row INSERT of ``rows`` (all with the same keys), straight to the driver.

    The sync stores tens of thousands of rows per mailbox; SQLAlchemy's
    per-value bind processing was a fifth of the storing process's time. The
    column types used here are few and converted by hand, as SQLAlchemy would
    (UUIDs as 32 hex digits and UTC datetimes in its text format on SQLite;
    PostgreSQL's driver takes both natively); Python-side column defaults are
    applied to the keys a row leaves out. Anything else stays on ``db.execute``.
    ``skip_existing``: a row whose key is there already is left alone (ON CONFLICT DO NOTHING).
    """
    if not rows:
        return
    sqlite = db.get_bind().dialect.name == "sqlite"
    keys = tuple(rows[0])
    sql, converters, defaults = _plan(table, keys, sqlite)
    if defaults:
        extra = tuple(name for name, _, _ in defaults)
        sql, converters, _ = _plan(table, keys + extra, sqlite)
        fill = [(scalar, call) for _, scalar, call in defaults]
        rows = [
            {
                **row,
                **{
                    name: (call.arg(None) if call is not None else scalar)
                    for name, (scalar, call) in zip(extra, fill, strict=True)
                },
            }
            for row in rows
        ]
        keys = keys + extra
    values = operator.itemgetter(*keys) if len(keys) > 1 else (lambda row, key=keys[0]: (row[key],))
    converted = [(index, conv) for index, conv in enumerate(converters) if conv is not None]
    if converted:
        params = []
        for row in rows:
            one = list(values(row))
            for index, conv in converted:
                one[index] = conv(one[index])
            params.append(tuple(one))
    else:
        params = [values(row) for row in rows]
    connection = await db.connection()
    await connection.exec_driver_sql(sql + " ON CONFLICT DO NOTHING" if skip_existing else sql, params)
