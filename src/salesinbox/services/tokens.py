"""Personal API tokens: ``si_<random>``; only a SHA-256 of the token is stored.

The full token is shown once, when created. Revoked tokens stop working at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from salesinbox.adapters.db.tables import ApiToken
from salesinbox.domain.crm import require_text
from salesinbox.domain.errors import NotFound
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.services.unit_of_work import Deps
from salesinbox.services.workspace import actor_for

PREFIX = "si_"


@dataclass(frozen=True)
class TokenView:
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None


@dataclass(frozen=True)
class NewToken:
    token: TokenView
    secret: str  # shown once


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _view(row: ApiToken) -> TokenView:
    return TokenView(row.id, row.name, row.created_at, row.last_used_at)


async def create_token(deps: Deps, actor: Actor, name: str = "API token") -> NewToken:
    secret = PREFIX + secrets.token_urlsafe(32)
    async with deps.writing() as db:
        row = ApiToken(
            company_id=actor.company_id, user_id=actor.user_id,
            name=require_text("name", name, max_length=100), secret_hash=_digest(secret),
        )
        db.add(row)
        await db.flush()
        return NewToken(_view(row), secret)


async def list_tokens(deps: Deps, actor: Actor) -> list[TokenView]:
    async with deps.reading() as db:
        rows = await db.scalars(
            select(ApiToken).where(
                ApiToken.company_id == actor.company_id, ApiToken.user_id == actor.user_id,
                ApiToken.revoked_at.is_(None),
            ).order_by(ApiToken.created_at.desc())
        )
        return [_view(r) for r in rows]


async def revoke_token(deps: Deps, actor: Actor, token_id: uuid.UUID) -> None:
    async with deps.writing() as db:
        row = await db.get(ApiToken, (actor.company_id, token_id))
        if row is None or row.user_id != actor.user_id or row.revoked_at is not None:
            raise NotFound(Text("No such token."))
        row.revoked_at = dt.datetime.now(dt.UTC)


async def actor_for_token(deps: Deps, secret: str) -> Actor | None:
    if not secret.startswith(PREFIX):
        return None
    async with deps.reading() as db:
        row = await db.scalar(select(ApiToken).where(ApiToken.secret_hash == _digest(secret)))
    if row is None or row.revoked_at is not None:
        return None
    await _touch(deps, row)
    return await actor_for(deps, row.company_id, row.user_id)


async def _touch(deps: Deps, row: ApiToken) -> None:
    # At most one write a minute per token: reads must not turn every API call into a write.
    now = dt.datetime.now(dt.UTC)
    if row.last_used_at and now - row.last_used_at < dt.timedelta(minutes=1):
        return
    async with deps.writing() as db:
        fresh = await db.get(ApiToken, (row.company_id, row.id))
        if fresh is not None:
            fresh.last_used_at = now
