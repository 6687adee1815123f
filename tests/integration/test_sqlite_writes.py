"""SQLite in embedded mode: concurrent writers wait their turn instead of failing."""

import asyncio

from sqlalchemy import text

from salesinbox.adapters.db.engine import SessionFactories, create_engine
from tests.support.databases import ThrowawayDatabase


async def test_concurrent_write_transactions_all_commit_on_sqlite(workdir):
    db = ThrowawayDatabase("sqlite", workdir).create()
    sessions = SessionFactories(create_engine(db.url))
    try:
        async with sessions.write() as s, s.begin():
            await s.execute(text("CREATE TABLE counter (n INTEGER)"))
            await s.execute(text("INSERT INTO counter VALUES (0)"))

        async def bump() -> None:
            # read-then-write: with a deferred BEGIN two of these deadlock into "database is locked"
            async with sessions.write() as s, s.begin():
                n = (await s.execute(text("SELECT n FROM counter"))).scalar_one()
                await asyncio.sleep(0)
                await s.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

        await asyncio.gather(*(bump() for _ in range(20)))
        async with sessions.read() as s:
            assert (await s.execute(text("SELECT n FROM counter"))).scalar_one() == 20
            mode = (await s.execute(text("PRAGMA journal_mode"))).scalar_one()
            fks = (await s.execute(text("PRAGMA foreign_keys"))).scalar_one()
        assert (mode, fks) == ("wal", 1)
    finally:
        await sessions.engine.dispose()
