"""Who may see what. Every read of mail goes through here.

For now (before linking and shared visibility arrive) a user sees the mail of
the accounts they can use: their own private accounts and the team accounts
they are a member of. Admins get no exception: a user's inbox is private.
"""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesinbox.adapters.db.tables import EmailAccount, EmailAccountMember
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
