"""Deals, leads and projects: the items conversations link to.

The three share one shape (title, person, organization, owner, status) and one
set of use cases; what differs is described by an ``ItemKind``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from salesinbox.adapters.db.tables import Deal, Lead, Organization, Person, Project, User
from salesinbox.domain.crm import (
    DEFAULT_STAGES,
    NO_SUCH_ITEM,
    DealStatus,
    LeadStatus,
    ProjectStatus,
    normalize_currency,
    parse_money,
    require_text,
)
from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.services import linking, links
from salesinbox.services.contacts import check_owner, check_reference
from salesinbox.services.unit_of_work import Deps


class ItemKind(StrEnum):
    DEAL = "deal"
    LEAD = "lead"
    PROJECT = "project"


TABLES = {ItemKind.DEAL: Deal, ItemKind.LEAD: Lead, ItemKind.PROJECT: Project}
STATUSES = {ItemKind.DEAL: DealStatus, ItemKind.LEAD: LeadStatus, ItemKind.PROJECT: ProjectStatus}


@dataclass
class ItemInput:
    """Fields of a deal, lead or project; those a kind does not have are ignored."""

    title: str
    person_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    status: str = "open"
    value: Decimal | str | None = None
    currency: str = "EUR"
    stage: str = DEFAULT_STAGES[0]
    expected_close_date: dt.date | None = None
    description: str = ""
    start_date: dt.date | None = None
    end_date: dt.date | None = None


@dataclass(frozen=True)
class ItemView:
    id: uuid.UUID
    kind: ItemKind
    title: str
    status: str
    person_id: uuid.UUID | None
    person_name: str | None
    organization_id: uuid.UUID | None
    organization_name: str | None
    owner_id: uuid.UUID | None
    owner_name: str | None
    value: Decimal | None
    currency: str | None
    stage: str | None
    pipeline: str | None
    expected_close_date: dt.date | None
    description: str | None
    start_date: dt.date | None
    end_date: dt.date | None
    created_at: dt.datetime
    updated_at: dt.datetime


def _check_status(kind: ItemKind, status: str) -> str:
    try:
        return STATUSES[kind](status).value
    except ValueError as exc:
        allowed = ", ".join(s.value for s in STATUSES[kind])
        raise ValidationFailed({"status": Text("Choose one of: %(choices)s.", choices=allowed)}) from exc


def _check_stage(stage: str) -> str:
    if stage not in DEFAULT_STAGES:
        raise ValidationFailed({"stage": Text("Choose one of the pipeline's stages.")})
    return stage


def _apply(kind: ItemKind, row, data: ItemInput) -> None:
    row.title = require_text("title", data.title)
    row.person_id, row.organization_id = data.person_id, data.organization_id
    new_status = _check_status(kind, data.status)
    if kind is ItemKind.DEAL:
        row.value, row.currency = parse_money(data.value), normalize_currency(data.currency)
        row.stage, row.expected_close_date = _check_stage(data.stage), data.expected_close_date
        if new_status != row.status:
            row.closed_at = None if new_status == DealStatus.OPEN else dt.datetime.now(dt.UTC)
    elif kind is ItemKind.LEAD:
        row.value, row.currency = parse_money(data.value), normalize_currency(data.currency)
    else:
        row.description = (data.description or "").strip()
        if data.start_date and data.end_date and data.end_date < data.start_date:
            raise ValidationFailed({"end_date": Text("The end date is before the start date.")})
        row.start_date, row.end_date = data.start_date, data.end_date
    row.status = new_status


def _with_names(table):
    """The item with its person's, organization's and owner's names, in one query."""
    same_company = table.company_id
    return (
        select(table, Person.name, Organization.name, User.name)
        .outerjoin(Person, (Person.company_id == same_company) & (Person.id == table.person_id))
        .outerjoin(Organization, (Organization.company_id == same_company) & (Organization.id == table.organization_id))
        .outerjoin(User, (User.company_id == same_company) & (User.id == table.owner_id))
    )


def _view(kind: ItemKind, row, person: str | None, org: str | None, owner: str | None) -> ItemView:
    return ItemView(
        id=row.id,
        kind=kind,
        title=row.title,
        status=row.status,
        person_id=row.person_id,
        person_name=person,
        organization_id=row.organization_id,
        organization_name=org,
        owner_id=row.owner_id,
        owner_name=owner,
        value=getattr(row, "value", None),
        currency=getattr(row, "currency", None),
        stage=getattr(row, "stage", None),
        pipeline=getattr(row, "pipeline", None),
        expected_close_date=getattr(row, "expected_close_date", None),
        description=getattr(row, "description", None),
        start_date=getattr(row, "start_date", None),
        end_date=getattr(row, "end_date", None),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _read_view(db: AsyncSession, actor: Actor, kind: ItemKind, item_id: uuid.UUID) -> ItemView:
    table = TABLES[kind]
    found = (await db.execute(
        _with_names(table).where(table.company_id == actor.company_id, table.id == item_id)
    )).first()
    if found is None:
        raise NotFound(NO_SUCH_ITEM[kind])
    return _view(kind, *found)


async def _load(db: AsyncSession, actor: Actor, kind: ItemKind, item_id: uuid.UUID):
    row = await db.get(TABLES[kind], (actor.company_id, item_id))
    if row is None:
        raise NotFound(NO_SUCH_ITEM[kind])
    return row


async def _check_refs(db: AsyncSession, actor: Actor, data: ItemInput) -> uuid.UUID:
    await check_reference(db, actor, Person, data.person_id, "person_id")
    await check_reference(db, actor, Organization, data.organization_id, "organization_id")
    return await check_owner(db, actor, data.owner_id)


async def create_item(deps: Deps, actor: Actor, kind: ItemKind, data: ItemInput) -> ItemView:
    async with deps.writing() as db:
        row = TABLES[kind](company_id=actor.company_id, status=None)
        _apply(kind, row, data)
        row.owner_id = await _check_refs(db, actor, data)
        db.add(row)
        await db.flush()
        # Retroactive linking: the new item picks up the existing mail of its person and organization.
        await linking.refresh_for_contacts(db, actor.company_id, row.person_id, row.organization_id)
        return await _read_view(db, actor, kind, row.id)


async def update_item(deps: Deps, actor: Actor, kind: ItemKind, item_id: uuid.UUID, data: ItemInput) -> ItemView:
    async with deps.writing() as db:
        row = await _load(db, actor, kind, item_id)
        # Check the references before changing the row: the checks' queries autoflush it, and a
        # foreign person_id would then fail its foreign key (a 500) instead of being refused.
        owner = await _check_refs(db, actor, ItemInput(
            title=data.title, person_id=data.person_id, organization_id=data.organization_id,
            owner_id=data.owner_id or row.owner_id))
        before = (row.person_id, row.organization_id)
        _apply(kind, row, data)
        row.owner_id = owner
        await db.flush()
        for person_id, organization_id in {before, (row.person_id, row.organization_id)}:
            await linking.refresh_for_contacts(db, actor.company_id, person_id, organization_id)
        return await _read_view(db, actor, kind, item_id)


async def get_item(deps: Deps, actor: Actor, kind: ItemKind, item_id: uuid.UUID) -> ItemView:
    async with deps.reading() as db:
        return await _read_view(db, actor, kind, item_id)


async def list_items(deps: Deps, actor: Actor, kind: ItemKind, *, status: str | None = None,
                     person_id: uuid.UUID | None = None, organization_id: uuid.UUID | None = None,
                     query: str = "", limit: int = 200) -> list[ItemView]:
    table = TABLES[kind]
    stmt = select(table.id).where(table.company_id == actor.company_id)
    if status:
        stmt = stmt.where(table.status == _check_status(kind, status))
    if person_id:
        stmt = stmt.where(table.person_id == person_id)
    if organization_id:
        stmt = stmt.where(table.organization_id == organization_id)
    if query.strip():
        stmt = stmt.where(table.title.ilike(f"%{query.strip()}%"))
    # Pick the page first, then look up names for those rows only: the joins
    # never depend on the planner guessing how many items a company has.
    page = stmt.order_by(table.created_at.desc(), table.id.desc()).limit(limit)
    named = _with_names(table).where(table.company_id == actor.company_id, table.id.in_(page))
    async with deps.reading() as db:
        rows = (await db.execute(named.order_by(table.created_at.desc(), table.id.desc()))).all()
        return [_view(kind, *r) for r in rows]


async def delete_item(deps: Deps, actor: Actor, kind: ItemKind, item_id: uuid.UUID) -> None:
    async with deps.writing() as db:
        row = await _load(db, actor, kind, item_id)
        emails, domains = await linking.contact_keys(db, actor.company_id, row.person_id, row.organization_id)
        touched = await links.forget_item(db, actor.company_id, kind.value, item_id)
        await db.delete(row)
        await db.flush()
        await linking.refresh(db, actor.company_id, touched)
        # A candidate fewer for its person's and organization's mail: a conversation that had to choose
        # between this item and one other now has a single candidate (and leaves "Needs linking").
        await linking.refresh_matching(db, actor.company_id, emails=emails, domains=domains)
