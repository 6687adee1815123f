"""The blocklist: addresses and domains whose mail is never linked, for the whole company or one user.

The company's list is the admins' to change; each user keeps their own,
which applies to the conversations of the accounts they own. Changing
either re-runs the linking rules on the conversations it concerns (an
existing link stays: the rules never unlink).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import or_, select

from salesinbox.adapters.db.tables import BlockedAddress
from salesinbox.domain.crm import normalize_domain, normalize_email
from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.services import linking
from salesinbox.services.unit_of_work import Deps
from salesinbox.services.workspace import require_admin


@dataclass(frozen=True)
class BlockedView:
    id: uuid.UUID
    value: str
    scope: str  # company | mine


def _normalize(value: str) -> str:
    text = value.strip().lower()
    try:
        return normalize_email(text) if "@" in text.lstrip("@") else normalize_domain(text)
    except ValidationFailed as exc:
        raise ValidationFailed({"value": Text("Enter an email address or a domain (example.com).")}) from exc


async def list_blocked(deps: Deps, actor: Actor) -> list[BlockedView]:
    async with deps.reading() as db:
        rows = await db.scalars(
            select(BlockedAddress)
            .where(BlockedAddress.company_id == actor.company_id,
                   or_(BlockedAddress.user_id.is_(None), BlockedAddress.user_id == actor.user_id))
            .order_by(BlockedAddress.value)
        )
        return [BlockedView(r.id, r.value, "company" if r.user_id is None else "mine") for r in rows]


async def block(deps: Deps, actor: Actor, value: str, *, scope: str = "mine") -> BlockedView:
    if scope not in ("company", "mine"):
        raise ValidationFailed({"scope": Text("Choose one of: %(choices)s.", choices="company, mine")})
    if scope == "company":
        require_admin(actor)
    key = _normalize(value)
    user_id = None if scope == "company" else actor.user_id
    async with deps.writing() as db:
        found = await db.scalar(select(BlockedAddress).where(
            BlockedAddress.company_id == actor.company_id, BlockedAddress.value == key,
            BlockedAddress.user_id.is_(None) if user_id is None else BlockedAddress.user_id == user_id))
        if found is None:
            found = BlockedAddress(company_id=actor.company_id, user_id=user_id, value=key)
            db.add(found)
            await db.flush()
            await _relink(db, actor.company_id, key)
        return BlockedView(found.id, found.value, scope)


async def unblock(deps: Deps, actor: Actor, blocked_id: uuid.UUID) -> None:
    async with deps.writing() as db:
        row = await db.get(BlockedAddress, (actor.company_id, blocked_id))
        if row is None or row.user_id not in (None, actor.user_id):
            raise NotFound(Text("No such blocklist entry."))
        if row.user_id is None:
            require_admin(actor)
        value = row.value
        await db.delete(row)
        await db.flush()
        await _relink(db, actor.company_id, value)


async def _relink(db, company_id: uuid.UUID, value: str) -> None:
    if "@" in value:
        await linking.refresh_matching(db, company_id, emails=[value])
    else:
        await linking.refresh_matching(db, company_id, domains=[value])
