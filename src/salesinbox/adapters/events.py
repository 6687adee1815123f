"""The "new mail" events from the sync engine to the web processes' live streams.

A write transaction that stored mail (``MailStore.store`` marks the session)
publishes, once it has committed, the ids of the companies whose mail
changed on the channel ``MAIL_CHANNEL``. Each web process's Server-Sent
Events streams listen through Litestar Channels and re-read the inbox version
of their user when their company is named (the version check keeps the
visibility rules: an event only says "look again").

- Embedded (SQLite): the sync runs inside the web process; the Channels
  memory backend carries the event in-process (``ChannelsMailEvents``).
- Scaled out (PostgreSQL): ``NOTIFY`` through the pool
  (``PostgresMailEvents``); every web process ``LISTEN``s with Litestar's
  psycopg Channels backend. No broker to run.

Events are a nudge, not a record: a stream that missed one (a web process
restarting, a sync process on SQLite outside the web process) still catches
up through its periodic database check.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, make_url, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesinbox.services.unit_of_work import MAIL_CHANNEL


def _payload(company_ids: Iterable[uuid.UUID]) -> str:
    return ",".join(sorted(str(c) for c in company_ids))  # a few ids: far below NOTIFY's 8,000 bytes


class PostgresMailEvents:
    """NOTIFY on a pooled connection; the web processes LISTEN (PsycoPgChannelsBackend)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def publish(self, company_ids: Iterable[uuid.UUID]) -> None:
        async with self._sessions() as db:
            await db.execute(select(func.pg_notify(MAIL_CHANNEL, _payload(company_ids))))
            await db.commit()


class ChannelsMailEvents:
    """In-process: straight into the web app's Channels plugin (memory backend)."""

    def __init__(self, plugin) -> None:
        self._plugin = plugin

    async def publish(self, company_ids: Iterable[uuid.UUID]) -> None:
        self._plugin.publish(_payload(company_ids), MAIL_CHANNEL)


def is_postgresql(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


def channels_backend(database_url: str):
    """The Channels backend a web process listens with: PostgreSQL LISTEN, else in memory."""
    from litestar.channels.backends.memory import MemoryChannelsBackend
    from litestar.channels.backends.psycopg import PsycoPgChannelsBackend

    url = make_url(database_url)
    if is_postgresql(database_url):
        return PsycoPgChannelsBackend(url.set(drivername="postgresql").render_as_string(hide_password=False))
    return MemoryChannelsBackend()
