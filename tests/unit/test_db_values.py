"""The hand-made value conversions of the database adapter agree with SQLAlchemy's own.

``upsert.insert_rows`` formats UUIDs and datetimes itself, and ``FastUuid``
reads UUIDs back without ``uuid.UUID``'s parsing; a difference would store a
value the ORM cannot find again, or read back a different id.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Uuid
from sqlalchemy.dialects import sqlite

from salesinbox.adapters.db.tables import FastUuid, Message
from salesinbox.adapters.db.upsert import _sqlite_datetime

SQLITE = sqlite.dialect()
READ_UUID = FastUuid().result_processor(SQLITE, None)
READ_STOCK_UUID = Uuid().result_processor(SQLITE, None)
WRITE_DATETIME = sqlite.DATETIME().bind_processor(SQLITE)


@given(st.uuids())
def test_a_stored_uuid_reads_back_equal_to_the_stock_reading(value: uuid.UUID) -> None:
    read = READ_UUID(value.hex)
    assert read == value == READ_STOCK_UUID(value.hex)
    assert hash(read) == hash(value) and str(read) == str(value) and read.version == value.version
    assert isinstance(read, uuid.UUID)


@pytest.mark.parametrize("text", [str(uuid.UUID(int=5)), "{" + str(uuid.UUID(int=7)) + "}"])
def test_other_spellings_of_a_uuid_take_the_usual_way(text: str) -> None:
    assert READ_UUID(text) == uuid.UUID(text)


def _outcome(read, text: str):
    try:
        return read(text)
    except ValueError:
        return ValueError


@pytest.mark.parametrize(
    "text", ["-" + "f" * 31, " " + "f" * 31, "0x" + "f" * 30, "g" * 32, "\u0661" * 32, "f" * 31, "f" * 33]
)
def test_odd_text_reads_as_the_stock_reading_reads_it(text: str) -> None:
    assert _outcome(READ_UUID, text) == _outcome(uuid.UUID, text)


def test_none_reads_as_none() -> None:
    assert READ_UUID(None) is None


def test_the_tables_use_the_fast_reading() -> None:
    assert isinstance(Message.__table__.c.id.type, FastUuid)


@given(st.datetimes(timezones=st.timezones()))
def test_a_datetime_is_written_as_sqlalchemy_writes_it_in_utc(value: dt.datetime) -> None:
    if value.utcoffset() is None:  # an ambiguous or non-existent local time some zones give
        return
    assert _sqlite_datetime(value) == WRITE_DATETIME(value.astimezone(dt.UTC).replace(tzinfo=None))


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError):
        _sqlite_datetime(dt.datetime(2026, 1, 1))
