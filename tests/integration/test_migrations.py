"""The schema is built only by migrations, and they match the tables in code."""

from pathlib import Path

from sqlalchemy import create_engine, inspect

from salesinbox.adapters.db import migrate
from salesinbox.adapters.db.tables import Base
from tests.support.databases import ThrowawayDatabase


def _sync_url(url: str) -> str:
    return url.replace("+aiosqlite", "").replace("+psycopg", "+psycopg")


def test_migrations_build_every_table_from_empty_and_alembic_check_finds_no_drift(backend: str, workdir: Path):
    db = ThrowawayDatabase(backend, workdir).create()  # create() runs `upgrade head` on an empty database
    try:
        migrate.check(db.url)
        engine = create_engine(_sync_url(db.url))
        try:
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        assert set(Base.metadata.tables) <= tables
    finally:
        db.drop()


def test_every_tenant_table_has_company_id_first_in_its_primary_key():
    untenanted = {"companies", "web_sessions", "sync_workers"}  # sync_workers: processes, not tenant data
    for name, table in Base.metadata.tables.items():
        if name in untenanted:
            continue
        assert [c.name for c in table.primary_key.columns][0] == "company_id", name
