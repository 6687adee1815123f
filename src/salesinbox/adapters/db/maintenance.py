"""Keeping the query planner informed while tables grow fast.

An initial sync takes the mail tables from empty to tens of thousands of rows
in seconds; PostgreSQL's autovacuum analyses them only after its next nap, and
until then plans every lookup for empty tables (nested loops over sequential
scans). Analysing the hot tables as they double in size keeps the plans right.
SQLite needs nothing here.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

HOT_TABLES = ("messages", "message_thread_keys", "message_locations", "conversations", "message_search")


async def refresh_statistics(db: AsyncSession) -> None:
    if db.get_bind().dialect.name != "postgresql":
        return
    await db.execute(text(f"ANALYZE {', '.join(HOT_TABLES)}"))
