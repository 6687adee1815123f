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


def test_the_quick_look_at_the_newest_revision_agrees_with_alembic():
    from alembic.script import ScriptDirectory

    assert migrate._newest_revision() == ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()


def test_a_database_behind_the_newest_revision_is_upgraded_and_one_at_it_is_left_alone(backend: str, workdir: Path):
    from alembic import command

    db = ThrowawayDatabase(backend, workdir).create()
    try:
        newest = migrate._newest_revision()
        assert migrate._current_revision(db.url) == newest
        migrate.upgrade(db.url)  # nothing to do: one query
        migrate._in_own_thread(command.downgrade, migrate.alembic_config(db.url), "-1")
        assert migrate._current_revision(db.url) != newest
        migrate.upgrade(db.url)
        assert migrate._current_revision(db.url) == newest
    finally:
        db.drop()
