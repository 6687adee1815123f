"""Alembic environment: async engine, batch mode for SQLite's ALTER limits."""

from __future__ import annotations

import asyncio

from alembic import context

from salesinbox.adapters.db.engine import create_engine
from salesinbox.adapters.db.tables import Base

config = context.config
target_metadata = Base.metadata


def _include_object(obj, name, type_, reflected, compare_to) -> bool:
    # The full-text index is dialect-specific SQL (FTS5 / tsvector), made by
    # hand in the migrations and kept out of the model comparison.
    return not (type_ == "table" and name and name.startswith("message_search"))


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `salesinbox migrate`")
asyncio.run(_run_async())
