"""Engines and sessions for SQLite (embedded) and PostgreSQL (scaled out).

SQLite: WAL so readers never block the writer, a busy timeout so concurrent
writers wait instead of failing, foreign keys on, and write transactions open
with BEGIN IMMEDIATE. A deferred BEGIN that later tries to write fails at once
with "database is locked" when another writer got there first; IMMEDIATE takes
the write lock up front, where busy_timeout applies. pysqlite's own implicit
transaction handling is switched off so that we issue BEGIN ourselves.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 15_000
# Pages a connection keeps in memory (SQLite's default is 2 MB): a sync reads its indexes again in every
# batch; with 2 MB a 10,000-message initial sync made ~200,000 page reads from the OS (a quarter of its
# kernel time, on the storing process, the sync's bottleneck). Filled only as pages are read.
SQLITE_CACHE_KIB = 64 * 1024
# Page size of a new database (SQLite's default is 4 KB; an existing file keeps its own). A message row
# with its bodies spans several 4 KB pages; storing a 10,000-message mailbox wrote 139,000 pages
# (one pwrite each) and its batches took 2.8 s, 2.3 s with 16 KB pages (bench/README.md).
SQLITE_PAGE_BYTES = 16 * 1024


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    if not is_sqlite(url):
        # No JIT: it compiles every query the planner costs high (a count over a large mailbox) and
        # spent more time compiling (300 ms) than such a query runs; the app's queries are short.
        return create_async_engine(url, pool_pre_ping=True, connect_args={"options": "-c jit=off"})
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")  # before WAL: it applies only to an empty file
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class SessionFactories:
    """A read factory (deferred BEGIN) and a write factory (BEGIN IMMEDIATE on SQLite)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.read = async_sessionmaker(engine, expire_on_commit=False)
        writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        self.write = async_sessionmaker(writer, expire_on_commit=False)
