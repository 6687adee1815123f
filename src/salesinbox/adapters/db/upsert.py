"""Inserts that leave an existing row alone (ON CONFLICT DO NOTHING), on SQLite and PostgreSQL alike."""

from __future__ import annotations

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
