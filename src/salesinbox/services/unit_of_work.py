"""Units of work: one database transaction per use case.

``reading`` opens a deferred transaction; ``writing`` one that takes the write
lock up front on SQLite (BEGIN IMMEDIATE) and commits on success. No network
call is ever made inside a writing unit of work: mail servers are slow and a
held write lock stalls every other writer in embedded mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

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

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self.read_sessions() as db:
            yield db

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        async with self.write_sessions() as db, db.begin():
            yield db
