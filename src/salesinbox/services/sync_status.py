"""What the sync has done, per account: for `salesinbox status`, the API and the UI."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import distinct, func, select

from salesinbox.adapters.db.tables import EmailAccount, MailFolder, Message, MessageLocation
from salesinbox.domain.errors import NotFound
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.services.access import usable_account_ids
from salesinbox.services.unit_of_work import Deps


@dataclass(frozen=True)
class FolderStatusView:
    name: str
    role: str
    state: str
    server_total: int
    synced: int
    last_sync: dt.datetime | None
    last_error: str | None


@dataclass(frozen=True)
class AccountStatusView:
    id: uuid.UUID
    address: str
    state: str
    server_total: int  # messages the server holds in the synced folders, within the sync window
    synced: int  # of those, mirrored here: one per (folder, UID)
    backlog: int  # still to fetch
    messages: int  # distinct stored messages
    conversations: int
    last_sync: dt.datetime | None
    last_error: str | None
    folders: list[FolderStatusView]


async def account_statuses(deps: Deps, account_ids: list[uuid.UUID] | None = None) -> list[AccountStatusView]:
    """Operator view (CLI) when ``account_ids`` is None; callers pass the ids an actor may see."""
    async with deps.reading() as db:
        stmt = select(EmailAccount).order_by(EmailAccount.address)
        if account_ids is not None:
            stmt = stmt.where(EmailAccount.id.in_(account_ids))
        return [await _status(db, a) for a in await db.scalars(stmt)]


async def _status(db, account: EmailAccount) -> AccountStatusView:
    folders = list(
        await db.scalars(
            select(MailFolder)
            .where(MailFolder.company_id == account.company_id, MailFolder.account_id == account.id)
            .order_by(MailFolder.name)
        )
    )
    here = (MessageLocation.company_id == account.company_id) & (MessageLocation.account_id == account.id)
    synced = await db.scalar(select(func.count()).select_from(MessageLocation).where(here))
    messages = await db.scalar(select(func.count(distinct(MessageLocation.message_id))).where(here))
    conversations = await db.scalar(
        select(func.count(distinct(Message.conversation_id)))
        .join(
            MessageLocation,
            (MessageLocation.company_id == Message.company_id) & (MessageLocation.message_id == Message.id),
        )
        .where(here)
    )
    folder_errors = [f.last_error for f in folders if f.last_error]
    return AccountStatusView(
        id=account.id,
        address=account.address,
        state=account.sync_state,
        server_total=sum(f.server_total for f in folders),
        synced=synced or 0,
        backlog=max(0, sum(f.server_total for f in folders) - (synced or 0)),
        messages=messages or 0,
        conversations=conversations or 0,
        last_sync=account.last_sync_at,
        last_error=account.sync_error or (folder_errors[0] if folder_errors else None),
        folders=[
            FolderStatusView(f.name, f.role, f.state, f.server_total, f.synced, f.last_sync_at, f.last_error)
            for f in folders
        ],
    )


async def statuses_for(deps: Deps, actor: Actor, account_id: uuid.UUID | None = None) -> list[AccountStatusView]:
    """Sync health of the accounts the actor may use (one of them with ``account_id``)."""
    async with deps.reading() as db:
        usable = await usable_account_ids(db, actor)
    if account_id is not None:
        if account_id not in usable:
            raise NotFound(Text("No such email account."))
        usable = [account_id]
    return await account_statuses(deps, usable) if usable else []
