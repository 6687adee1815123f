"""Run Alembic migrations from code (the CLI, `make run` and the tests call this)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config

_HERE = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
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
    _in_own_thread(command.upgrade, alembic_config(database_url), "head")


def check(database_url: str) -> None:
    """Raise when the tables in code differ from what the migrations build."""
    _in_own_thread(command.check, alembic_config(database_url))
