"""Units of work: one database transaction per use case.

``reading`` opens a deferred transaction; ``writing`` one that takes the write
lock up front on SQLite (BEGIN IMMEDIATE) and commits on success. No network
call is ever made inside a writing unit of work: mail servers are slow and a
held write lock stalls every other writer in embedded mode.

A ``Deps`` may carry a ``fence`` (the sync supervisor gives each leased
account a copy holding its ``sync_leases.Lease``): every writing unit of work
then checks it first, inside the same transaction, so a process that lost the
account's lease cannot write for it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from salesinbox.services.ports import (
    BatchFetcher,
    BlobStore,
    ImageSource,
    MailboxSession,
    MailProbe,
    OAuthClient,
    PasswordHasher,
    SecretBox,
    ServerLogin,
)

log = logging.getLogger(__name__)
_MAIL_CHANGED = "salesinbox.mail_changed"
MAIL_CHANNEL = "salesinbox_mail"  # the Channels channel (and PostgreSQL NOTIFY channel) of "new mail" events


class WriteFence(Protocol):
    async def verify(self, db: AsyncSession) -> None:
        """Raise unless this process may still write; runs inside the writing transaction."""


class MailEvents(Protocol):
    async def publish(self, company_ids: Iterable[uuid.UUID]) -> None:
        """Tell live streams that these companies' mail changed (after the change committed)."""


def mail_changed(db: AsyncSession, company_id: uuid.UUID) -> None:
    """Mark the transaction: once it commits, ``Deps.writing`` publishes a "new mail" event."""
    db.info.setdefault(_MAIL_CHANGED, set()).add(company_id)


@dataclass
class Deps:
    """Everything the use cases need, wired once by ``bootstrap``."""

    read_sessions: async_sessionmaker[AsyncSession]
    write_sessions: async_sessionmaker[AsyncSession]
    secrets: SecretBox
    passwords: PasswordHasher
    probe: MailProbe
    blobs: BlobStore
    open_mailbox: Callable[[ServerLogin], MailboxSession]
    images: ImageSource | None = None  # None: the image proxy refuses every image
    fetcher: BatchFetcher | None = None  # None: the sync fetches and parses in its own process
    oauth: OAuthClient | None = None  # None: no OAuth sign-in is offered
    fence: WriteFence | None = None  # set on a leased account's copy (services/sync_leases.py)
    events: MailEvents | None = None  # "new mail" to live streams (adapters/events.py)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self.read_sessions() as db:
            yield db

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        async with self.write_sessions() as db:
            async with db.begin():
                if self.fence is not None:
                    await self.fence.verify(db)
                yield db
            changed = db.info.pop(_MAIL_CHANGED, None)
        if changed and self.events is not None:
            try:
                await self.events.publish(changed)
            except Exception:  # a nudge; the streams' periodic check still sees the change
                log.warning("could not publish a mail event", exc_info=True)
