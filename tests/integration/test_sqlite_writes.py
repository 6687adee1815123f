"""SQLite in embedded mode: concurrent writers wait their turn instead of failing."""

import asyncio

from sqlalchemy import text

from salesinbox.adapters.db.engine import SQLITE_PAGE_BYTES, SessionFactories, create_engine
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
            page = (await s.execute(text("PRAGMA page_size"))).scalar_one()
        assert (mode, fks, page) == ("wal", 1, SQLITE_PAGE_BYTES)
    finally:
        await sessions.engine.dispose()


async def test_an_existing_database_keeps_its_page_size(workdir):
    """The larger page applies to new files only: one made with SQLite's default opens as it is."""
    import sqlite3

    path = workdir / "made-elsewhere.db"
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE t (n INTEGER)")
    plain.execute("INSERT INTO t VALUES (1)")
    plain.commit()
    default_size = plain.execute("PRAGMA page_size").fetchone()[0]
    plain.close()
    sessions = SessionFactories(create_engine(f"sqlite+aiosqlite:///{path}"))
    try:
        async with sessions.read() as s:
            assert (await s.execute(text("SELECT n FROM t"))).scalar_one() == 1
            assert (await s.execute(text("PRAGMA page_size"))).scalar_one() == default_size != SQLITE_PAGE_BYTES
    finally:
        await sessions.engine.dispose()
