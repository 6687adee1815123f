"""Who may see what. Every read of mail goes through here.

Two questions, answered for one actor:

- **Whose inbox is it in?** A conversation is in a user's Sales Inbox (and
  search, unread counts, live events) only when one of the accounts they use
  holds it: their own private accounts, and the team accounts they are a
  member of. ``usable_account_ids`` / ``inbox_location``.
- **Who may read it?** Those users, and every user of the company when an
  account that holds it shares it. A conversation's visibility is per holding
  account: the account's default (private accounts: Private; team accounts:
  Team only) unless changed for that conversation (``ConversationVisibility``).
  Shared conversations are found through the deals, leads, projects, persons
  and organizations they are linked to or involve, never in another user's
  inbox. ``readable_location``.

Every user of a company may open every deal, lead and project (items have no
per-user permissions yet), so "users who can access every linked item" is
every user of the company. Admins get no exception: a user's inbox is private
even from admins.
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesinbox.adapters.db.tables import (
    ConversationVisibility,
    EmailAccount,
    EmailAccountMember,
    Message,
    MessageLocation,
)
from salesinbox.domain.accounts import Visibility
from salesinbox.domain.tenancy import Actor


async def usable_account_ids(db: AsyncSession, actor: Actor) -> list[uuid.UUID]:
    member_of = select(EmailAccountMember.account_id).where(
        EmailAccountMember.company_id == actor.company_id, EmailAccountMember.user_id == actor.user_id
    )
    rows = await db.scalars(
        select(EmailAccount.id).where(
            EmailAccount.company_id == actor.company_id,
            or_(EmailAccount.owner_id == actor.user_id, EmailAccount.id.in_(member_of)),
        )
    )
    return list(rows)


def inbox_location(accounts: list[uuid.UUID], company_id: uuid.UUID):
    """A MessageLocation in one of these (the actor's usable) accounts."""
    return and_(MessageLocation.company_id == company_id, MessageLocation.account_id.in_(accounts))


def visibility_of(company_id: uuid.UUID, conversation_id, account_id):
    """SQL: the visibility of a conversation in an account (its own setting, else the account's default).

    ``conversation_id`` and ``account_id`` are columns of an enclosing query,
    possibly several levels out (``EXISTS`` inside a select of messages):
    the correlation is explicit, because SQLAlchemy's automatic one only looks
    one level out, and an uncorrelated subquery here would read another
    conversation's setting (PostgreSQL refuses it; SQLite silently does it).
    """
    outer = (Message, MessageLocation)
    own = (
        select(ConversationVisibility.visibility)
        .where(
            ConversationVisibility.company_id == company_id,
            ConversationVisibility.conversation_id == conversation_id,
            ConversationVisibility.account_id == account_id,
        )
        .correlate(*outer)
        .scalar_subquery()
    )
    default = (
        select(EmailAccount.default_visibility)
        .where(EmailAccount.company_id == company_id, EmailAccount.id == account_id)
        .correlate(*outer)
        .scalar_subquery()
    )
    return func.coalesce(own, default)


def readable_location(accounts: list[uuid.UUID], company_id: uuid.UUID):
    """A MessageLocation (of the ``Message`` in the same query) the actor may read: theirs, or shared."""
    return and_(
        MessageLocation.company_id == company_id,
        or_(
            MessageLocation.account_id.in_(accounts),
            visibility_of(company_id, Message.conversation_id, MessageLocation.account_id) == Visibility.SHARED.value,
        ),
    )


def readable_conversation(accounts: list[uuid.UUID], company_id: uuid.UUID, conversation_id):
    """SQL: the conversation holds a message the actor may read."""
    return (
        select(MessageLocation.message_id)
        .join(Message, (Message.company_id == MessageLocation.company_id) & (Message.id == MessageLocation.message_id))
        .where(Message.company_id == company_id, Message.conversation_id == conversation_id,
               readable_location(accounts, company_id))
        .exists()
    )
