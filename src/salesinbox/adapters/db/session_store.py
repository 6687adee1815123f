"""Litestar session store in the database, so every web process shares sessions."""

from __future__ import annotations

import datetime as dt

from litestar.stores.base import Store
from sqlalchemy import delete, select

from salesinbox.adapters.db.engine import SessionFactories
from salesinbox.adapters.db.tables import WebSession


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DatabaseSessionStore(Store):
    def __init__(self, sessions: SessionFactories) -> None:
        self._sessions = sessions

    async def set(self, key: str, value: str | bytes, expires_in: int | dt.timedelta | None = None) -> None:
        data = value.encode() if isinstance(value, str) else value
        expires_at = _expiry(expires_in)
        async with self._sessions.write() as db, db.begin():
            row = await db.get(WebSession, key)
            if row is None:
                db.add(WebSession(key=key, data=data, expires_at=expires_at))
            else:
                row.data, row.expires_at = data, expires_at

    async def get(self, key: str, renew_for: int | dt.timedelta | None = None) -> bytes | None:
        async with self._sessions.read() as db:
            row = await db.get(WebSession, key)
        if row is None or _expired(row):
            return None
        if renew_for and row.expires_at is not None:
            await self.set(key, row.data, renew_for)
        return row.data

    async def delete(self, key: str) -> None:
        async with self._sessions.write() as db, db.begin():
            await db.execute(delete(WebSession).where(WebSession.key == key))

    async def delete_all(self) -> None:
        async with self._sessions.write() as db, db.begin():
            await db.execute(delete(WebSession))

    async def delete_expired(self) -> None:
        async with self._sessions.write() as db, db.begin():
            await db.execute(delete(WebSession).where(WebSession.expires_at < _now()))

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        async with self._sessions.read() as db:
            expires_at = await db.scalar(select(WebSession.expires_at).where(WebSession.key == key))
        return None if expires_at is None else int((expires_at - _now()).total_seconds())


def _expiry(expires_in: int | dt.timedelta | None) -> dt.datetime | None:
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, dt.timedelta) else expires_in
    return _now() + dt.timedelta(seconds=seconds)


def _expired(row: WebSession) -> bool:
    return row.expires_at is not None and row.expires_at <= _now()
