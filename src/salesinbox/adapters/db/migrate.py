"""Run Alembic migrations from code (the CLI, `make run` and the tests call this)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

_HERE = Path(__file__).parent
_REVISION = re.compile(r"^(down_revision|revision) = ['\"]?([\w]+)['\"]?$", re.MULTILINE)


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    # ConfigParser interpolation: a literal % in a password must be doubled
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def _in_own_thread(work, *args) -> None:
    # env.py drives the async engine with asyncio.run(), which refuses to run
    # inside a running event loop (an async caller, Playwright's sync API);
    # a thread of its own always has none.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(work, *args).result()


def upgrade(database_url: str) -> None:
    """Bring the schema to the newest revision; a database already there costs one query.

    Every CLI command calls this: importing and running Alembic for nothing
    was a third of a second of each ``salesinbox sync --once``.
    """
    if _newest_revision() is not None and _current_revision(database_url) == _newest_revision():
        return
    from alembic import command

    _in_own_thread(command.upgrade, alembic_config(database_url), "head")


def check(database_url: str) -> None:
    """Raise when the tables in code differ from what the migrations build."""
    from alembic import command

    _in_own_thread(command.check, alembic_config(database_url))


def _newest_revision() -> str | None:
    """The head of the chain in ``migrations/versions``, read from the files; None unless exactly one."""
    revisions, parents = set(), set()
    for script in (_HERE / "migrations" / "versions").glob("*.py"):
        found = dict(_REVISION.findall(script.read_text(encoding="utf-8")))
        if "revision" not in found:
            return None
        revisions.add(found["revision"])
        parents.add(found.get("down_revision", "None"))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _current_revision(database_url: str) -> str | None:
    """The revision the database says it is at (None when it has no Alembic table or cannot say)."""
    url = sa.make_url(database_url)
    if url.drivername == "sqlite+aiosqlite":
        url = url.set(drivername="sqlite")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return rows[0][0] if len(rows) == 1 else None
