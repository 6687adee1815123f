"""A conversation's links, linking verdict and visibility: reading them and changing them by hand."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesinbox.adapters.db.ids import new_id
from salesinbox.adapters.db.tables import (
    Conversation,
    ConversationLink,
    ConversationLinkState,
    ConversationVisibility,
    EmailAccount,
    Message,
    MessageLocation,
    User,
)
from salesinbox.domain.accounts import AccountKind, Visibility, visibilities_for
from salesinbox.domain.crm import NO_SUCH_ITEM
from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.domain.linking import KINDS, Outcome
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.services import linking
from salesinbox.services.access import readable_conversation, usable_account_ids
from salesinbox.services.accounts import require_email_sync
from salesinbox.services.unit_of_work import Deps


@dataclass(frozen=True)
class LinkView:
    id: uuid.UUID
    item_type: str
    item_id: uuid.UUID
    title: str
    status: str
    origin: str  # auto | manual
    reason: str  # "Linked because ..."
    rule: str  # person_email | organization_domain | manual
    created_at: dt.datetime
    reason_name: str = ""  # the person, organization or user the reason names
    reason_value: str = ""  # the matching address or domain


@dataclass(frozen=True)
class CandidateView:
    item_type: str
    item_id: uuid.UUID
    title: str
    reason: str
    rule: str = ""
    reason_name: str = ""
    reason_value: str = ""


@dataclass(frozen=True)
class LinkingView:
    outcome: str  # linked | needs_linking | no_match | internal | bulk | blocked | pending
    explanation: str
    candidates: list[CandidateView] = field(default_factory=list)


@dataclass(frozen=True)
class Sharing:
    visibility: str | None
    choices: list[str]
    in_inbox: bool


async def links_of(db: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID) -> list[LinkView]:
    rows = list(
        await db.scalars(
            select(ConversationLink)
            .where(
                ConversationLink.company_id == company_id,
                ConversationLink.conversation_id == conversation_id,
                ConversationLink.removed_at.is_(None),
            )
            .order_by(ConversationLink.created_at, ConversationLink.id)
        )
    )
    views = []
    for row in rows:
        table = linking.ITEM_TABLES[row.item_type]
        item = (
            await db.execute(
                select(table.title, table.status).where(table.company_id == company_id, table.id == row.item_id)
            )
        ).first()
        if item is None:
            continue
        reason = json.loads(row.reason or "{}")
        views.append(
            LinkView(
                row.id,
                row.item_type,
                row.item_id,
                item.title,
                item.status,
                row.origin,
                linking.describe_reason(reason),
                reason.get("rule", ""),
                row.created_at,
                reason.get("name", ""),
                reason.get("value", ""),
            )
        )
    return views


async def linking_of(db: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID) -> LinkingView:
    state = await db.get(ConversationLinkState, (company_id, conversation_id))
    if state is None:
        return LinkingView("pending", "The linking rules have not looked at this conversation yet.")
    detail = json.loads(state.detail or "{}")
    candidates = [
        CandidateView(
            c["item_type"], uuid.UUID(c["item_id"]), c["title"], linking.describe_reason(c),
            c.get("rule", ""), c.get("name", ""), c.get("value", ""),
        )
        for kind in KINDS
        for c in detail.get("candidates", {}).get(kind, [])
    ]
    outcome = Outcome(state.outcome)
    return LinkingView(outcome.value, linking.OUTCOME_WORDS[outcome], candidates)


async def _holding_accounts(db, actor: Actor, conversation_id: uuid.UUID, usable: list[uuid.UUID]):
    """The actor's accounts that hold this conversation."""
    return list(
        await db.scalars(
            select(EmailAccount)
            .where(
                EmailAccount.company_id == actor.company_id,
                EmailAccount.id.in_(
                    select(MessageLocation.account_id)
                    .join(
                        Message,
                        (Message.company_id == MessageLocation.company_id) & (Message.id == MessageLocation.message_id),
                    )
                    .where(
                        Message.company_id == actor.company_id,
                        Message.conversation_id == conversation_id,
                        MessageLocation.account_id.in_(usable),
                    )
                ),
            )
            .order_by(EmailAccount.created_at, EmailAccount.id)
        )
    )


async def sharing_of(db, actor: Actor, conversation_id: uuid.UUID, usable: list[uuid.UUID]) -> Sharing:
    accounts = await _holding_accounts(db, actor, conversation_id, usable)
    if not accounts:
        return Sharing(None, [], False)
    first = accounts[0]
    own = await db.get(ConversationVisibility, (actor.company_id, conversation_id, first.id))
    choices = [v.value for v in visibilities_for(AccountKind(first.kind))]
    return Sharing(own.visibility if own else first.default_visibility, choices, True)


async def _readable(db, actor: Actor, conversation_id: uuid.UUID) -> list[uuid.UUID]:
    usable = await usable_account_ids(db, actor)
    found = await db.scalar(
        select(Conversation.id).where(
            Conversation.company_id == actor.company_id,
            Conversation.id == conversation_id,
            readable_conversation(usable, actor.company_id, Conversation.id),
        )
    )
    if found is None:
        raise NotFound(Text("No such conversation."))
    return usable


async def set_visibility(deps: Deps, actor: Actor, conversation_id: uuid.UUID, visibility: str) -> str:
    """Change who sees a conversation, in each of the actor's accounts that hold it.

    Private accounts take Shared or Private, team accounts Shared or Team only;
    "private" on a team account and "team_only" on a private one mean the same
    (only the account's users), so either word is accepted for both.
    """
    require_email_sync(actor)
    try:
        wanted = Visibility(visibility)
    except ValueError as exc:
        choices = "shared, private, team_only"
        raise ValidationFailed({"visibility": Text("Choose one of: %(choices)s.", choices=choices)}) from exc
    async with deps.writing() as db:
        usable = await usable_account_ids(db, actor)
        accounts = await _holding_accounts(db, actor, conversation_id, usable)
        if not accounts:
            await _readable(db, actor, conversation_id)  # NotFound when it is not even readable
            raise ValidationFailed({"visibility": Text(
                "Only the users of an account that holds this conversation can change who sees it."
            )})
        now = dt.datetime.now(dt.UTC)
        for account in accounts:
            value = wanted
            if wanted is not Visibility.SHARED:
                value = Visibility.TEAM_ONLY if account.kind == AccountKind.TEAM else Visibility.PRIVATE
            row = await db.get(ConversationVisibility, (actor.company_id, conversation_id, account.id))
            if row is None:
                db.add(
                    ConversationVisibility(
                        company_id=actor.company_id,
                        conversation_id=conversation_id,
                        account_id=account.id,
                        visibility=value.value,
                        changed_by=actor.user_id,
                        changed_at=now,
                    )
                )
            else:
                row.visibility, row.changed_by, row.changed_at = value.value, actor.user_id, now
        await db.flush()
        return (await sharing_of(db, actor, conversation_id, usable)).visibility or wanted.value


async def link(deps: Deps, actor: Actor, conversation_id: uuid.UUID, item_type: str, item_id: uuid.UUID) -> LinkView:
    """Link by hand (also undoes an earlier unlink of the same item)."""
    require_email_sync(actor)
    if item_type not in KINDS:
        raise ValidationFailed({"item_type": Text("Choose one of: %(choices)s.", choices="deal, lead, project")})
    async with deps.writing() as db:
        await _readable(db, actor, conversation_id)
        table = linking.ITEM_TABLES[item_type]
        if await db.get(table, (actor.company_id, item_id)) is None:
            raise ValidationFailed({"item_id": NO_SUCH_ITEM[item_type]})
        name = await db.scalar(select(User.name).where(User.company_id == actor.company_id, User.id == actor.user_id))
        reason = json.dumps({"rule": "manual", "name": name or "", "kind": item_type})
        row = await db.scalar(
            select(ConversationLink).where(
                ConversationLink.company_id == actor.company_id,
                ConversationLink.conversation_id == conversation_id,
                ConversationLink.item_type == item_type,
                ConversationLink.item_id == item_id,
            )
        )
        if row is None:
            row = ConversationLink(
                company_id=actor.company_id,
                id=new_id(),
                conversation_id=conversation_id,
                item_type=item_type,
                item_id=item_id,
                origin="manual",
                reason=reason,
                created_by=actor.user_id,
            )
            db.add(row)
        elif row.removed_at is not None:
            row.removed_at, row.removed_by = None, None
            row.origin, row.reason, row.created_by = "manual", reason, actor.user_id
        await db.flush()
        await linking.refresh(db, actor.company_id, [conversation_id])
        return next(v for v in await links_of(db, actor.company_id, conversation_id) if v.id == row.id)


async def unlink(deps: Deps, actor: Actor, conversation_id: uuid.UUID, link_id: uuid.UUID) -> None:
    """Unlink; the automatic rules never link this item to this conversation again."""
    require_email_sync(actor)
    async with deps.writing() as db:
        await _readable(db, actor, conversation_id)
        row = await db.get(ConversationLink, (actor.company_id, link_id))
        if row is None or row.conversation_id != conversation_id or row.removed_at is not None:
            raise NotFound(Text("No such link."))
        row.removed_at, row.removed_by = dt.datetime.now(dt.UTC), actor.user_id
        await db.flush()
        await linking.refresh(db, actor.company_id, [conversation_id])


async def forget_item(db: AsyncSession, company_id: uuid.UUID, item_type: str, item_id: uuid.UUID) -> list[uuid.UUID]:
    """A deleted item's links go with it; returns the conversations that lost one (to look at again)."""
    ids = list(
        await db.scalars(
            select(ConversationLink.conversation_id).where(
                ConversationLink.company_id == company_id,
                ConversationLink.item_type == item_type,
                ConversationLink.item_id == item_id,
            )
        )
    )
    await db.execute(
        delete(ConversationLink).where(
            ConversationLink.company_id == company_id,
            ConversationLink.item_type == item_type,
            ConversationLink.item_id == item_id,
        )
    )
    return ids
