"""Persons (several email addresses each) and organizations (several domains each)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from salesinbox.adapters.db.tables import (
    Deal,
    Lead,
    Organization,
    OrganizationDomain,
    Person,
    PersonEmail,
    Project,
    User,
)
from salesinbox.domain.crm import normalize_domain, normalize_email, require_text, unique_keys
from salesinbox.domain.errors import Conflict, NotFound, ValidationFailed
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.services import linking
from salesinbox.services.unit_of_work import Deps


@dataclass
class PersonInput:
    name: str
    emails: list[str] = field(default_factory=list)
    phone: str = ""
    organization_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None


@dataclass
class OrganizationInput:
    name: str
    domains: list[str] = field(default_factory=list)
    address: str = ""
    owner_id: uuid.UUID | None = None


@dataclass(frozen=True)
class PersonView:
    id: uuid.UUID
    name: str
    emails: list[str]
    phone: str
    organization_id: uuid.UUID | None
    organization_name: str | None
    owner_id: uuid.UUID | None
    created_at: dt.datetime


@dataclass(frozen=True)
class OrganizationView:
    id: uuid.UUID
    name: str
    domains: list[str]
    address: str
    owner_id: uuid.UUID | None
    created_at: dt.datetime


# ---- shared reference checks -------------------------------------------------

async def check_reference(db: AsyncSession, actor: Actor, table, item_id: uuid.UUID | None, field_name: str) -> None:
    """A referenced item must exist in the actor's company; else a field error, never a foreign row."""
    if item_id is not None and await db.get(table, (actor.company_id, item_id)) is None:
        raise ValidationFailed({field_name: Text("No such item in this company.")})


async def check_owner(db: AsyncSession, actor: Actor, owner_id: uuid.UUID | None) -> uuid.UUID:
    await check_reference(db, actor, User, owner_id, "owner_id")
    return owner_id or actor.user_id


# ---- persons -----------------------------------------------------------------

async def _person_views(db: AsyncSession, actor: Actor, persons) -> list[PersonView]:
    """Views of many persons in three queries, whatever their number."""
    ids = [p.id for p in persons]
    emails: dict[uuid.UUID, list[str]] = {i: [] for i in ids}
    for person_id, email in await db.execute(
        select(PersonEmail.person_id, PersonEmail.email)
        .where(PersonEmail.company_id == actor.company_id, PersonEmail.person_id.in_(ids))
        .order_by(PersonEmail.position)
    ):
        emails[person_id].append(email)
    org_ids = {p.organization_id for p in persons if p.organization_id}
    org_names = dict((await db.execute(select(Organization.id, Organization.name).where(
        Organization.company_id == actor.company_id, Organization.id.in_(org_ids)))).all()) if org_ids else {}
    return [
        PersonView(p.id, p.name, emails[p.id], p.phone, p.organization_id, org_names.get(p.organization_id),
                   p.owner_id, p.created_at)
        for p in persons
    ]


async def _load_person(db: AsyncSession, actor: Actor, person_id: uuid.UUID) -> Person:
    person = await db.get(Person, (actor.company_id, person_id))
    if person is None:
        raise NotFound(Text("No such person."))
    return person


async def _set_person_emails(db: AsyncSession, actor: Actor, person: Person, emails: list[str]) -> None:
    try:
        keys = unique_keys(emails, normalize_email)
    except ValidationFailed as exc:  # named after the input field, so the form shows it there
        raise ValidationFailed({"emails": exc.errors["email"]}) from exc
    taken = (await db.execute(
        select(PersonEmail.email, Person.name).join(
            Person, (Person.company_id == PersonEmail.company_id) & (Person.id == PersonEmail.person_id)
        ).where(PersonEmail.company_id == actor.company_id, PersonEmail.email.in_(keys),
                PersonEmail.person_id != person.id)
    )).first()
    if taken:
        raise Conflict(Text("%(email)s already belongs to %(name)s.", email=taken.email, name=taken.name))
    before = set(await db.scalars(select(PersonEmail.email).where(
        PersonEmail.company_id == actor.company_id, PersonEmail.person_id == person.id)))
    await db.execute(delete(PersonEmail).where(
        PersonEmail.company_id == actor.company_id, PersonEmail.person_id == person.id))
    await db.flush()
    for position, key in enumerate(keys):
        db.add(PersonEmail(company_id=actor.company_id, person_id=person.id, email=key, position=position))
    await db.flush()
    # Retroactive linking: mail with an address this person gained (or lost) is looked at again.
    await linking.refresh_matching(db, actor.company_id, emails=before.symmetric_difference(keys))


async def create_person(deps: Deps, actor: Actor, data: PersonInput) -> PersonView:
    name = require_text("name", data.name, max_length=200)
    async with deps.writing() as db:
        await check_reference(db, actor, Organization, data.organization_id, "organization_id")
        person = Person(company_id=actor.company_id, name=name, phone=(data.phone or "").strip()[:50],
                        organization_id=data.organization_id, owner_id=await check_owner(db, actor, data.owner_id))
        db.add(person)
        await db.flush()
        await _set_person_emails(db, actor, person, data.emails)
        await db.flush()
        return (await _person_views(db, actor, [person]))[0]


async def update_person(deps: Deps, actor: Actor, person_id: uuid.UUID, data: PersonInput) -> PersonView:
    name = require_text("name", data.name, max_length=200)
    async with deps.writing() as db:
        person = await _load_person(db, actor, person_id)
        await check_reference(db, actor, Organization, data.organization_id, "organization_id")
        person.name, person.phone = name, (data.phone or "").strip()[:50]
        person.organization_id = data.organization_id
        person.owner_id = await check_owner(db, actor, data.owner_id or person.owner_id)
        await _set_person_emails(db, actor, person, data.emails)
        await db.flush()
        return (await _person_views(db, actor, [person]))[0]


async def get_person(deps: Deps, actor: Actor, person_id: uuid.UUID) -> PersonView:
    async with deps.reading() as db:
        return (await _person_views(db, actor, [await _load_person(db, actor, person_id)]))[0]


async def list_persons(deps: Deps, actor: Actor, *, query: str = "", organization_id: uuid.UUID | None = None,
                       limit: int = 200) -> list[PersonView]:
    async with deps.reading() as db:
        stmt = select(Person).where(Person.company_id == actor.company_id)
        if organization_id:
            stmt = stmt.where(Person.organization_id == organization_id)
        if query.strip():
            like = f"%{query.strip().lower()}%"
            emails = select(PersonEmail.person_id).where(
                PersonEmail.company_id == actor.company_id, PersonEmail.email.like(like))
            stmt = stmt.where(or_(Person.name.ilike(like), Person.id.in_(emails)))
        rows = (await db.scalars(stmt.order_by(Person.name).limit(limit))).all()
        return await _person_views(db, actor, rows)


async def delete_person(deps: Deps, actor: Actor, person_id: uuid.UUID) -> None:
    async with deps.writing() as db:
        person = await _load_person(db, actor, person_id)
        emails, _ = await linking.contact_keys(db, actor.company_id, person.id, None)
        for table in (Deal, Lead, Project):
            await db.execute(update(table).where(
                table.company_id == actor.company_id, table.person_id == person.id).values(person_id=None))
        await db.delete(person)
        await db.flush()
        await linking.refresh_matching(db, actor.company_id, emails=emails)


# ---- organizations -----------------------------------------------------------

async def _org_view(db: AsyncSession, org: Organization) -> OrganizationView:
    domains = (await db.scalars(select(OrganizationDomain.domain).where(
        OrganizationDomain.company_id == org.company_id, OrganizationDomain.organization_id == org.id
    ).order_by(OrganizationDomain.domain))).all()
    return OrganizationView(org.id, org.name, list(domains), org.address, org.owner_id, org.created_at)


async def _load_org(db: AsyncSession, actor: Actor, org_id: uuid.UUID) -> Organization:
    org = await db.get(Organization, (actor.company_id, org_id))
    if org is None:
        raise NotFound(Text("No such organization."))
    return org


async def _set_org_domains(db: AsyncSession, actor: Actor, org: Organization, domains: list[str]) -> None:
    keys = unique_keys(domains, normalize_domain)
    taken = (await db.execute(
        select(OrganizationDomain.domain, Organization.name).join(
            Organization, (Organization.company_id == OrganizationDomain.company_id)
            & (Organization.id == OrganizationDomain.organization_id)
        ).where(OrganizationDomain.company_id == actor.company_id, OrganizationDomain.domain.in_(keys),
                OrganizationDomain.organization_id != org.id)
    )).first()
    if taken:
        raise Conflict(Text("%(domain)s already belongs to %(name)s.", domain=taken.domain, name=taken.name))
    before = set(await db.scalars(select(OrganizationDomain.domain).where(
        OrganizationDomain.company_id == actor.company_id, OrganizationDomain.organization_id == org.id)))
    await db.execute(delete(OrganizationDomain).where(
        OrganizationDomain.company_id == actor.company_id, OrganizationDomain.organization_id == org.id))
    await db.flush()
    for key in keys:
        db.add(OrganizationDomain(company_id=actor.company_id, organization_id=org.id, domain=key))
    await db.flush()
    await linking.refresh_matching(db, actor.company_id, domains=before.symmetric_difference(keys))


async def create_organization(deps: Deps, actor: Actor, data: OrganizationInput) -> OrganizationView:
    name = require_text("name", data.name, max_length=200)
    async with deps.writing() as db:
        org = Organization(company_id=actor.company_id, name=name, address=(data.address or "").strip()[:500],
                           owner_id=await check_owner(db, actor, data.owner_id))
        db.add(org)
        await db.flush()
        await _set_org_domains(db, actor, org, data.domains)
        await db.flush()
        return await _org_view(db, org)


async def update_organization(deps: Deps, actor: Actor, org_id: uuid.UUID, data: OrganizationInput) -> OrganizationView:
    name = require_text("name", data.name, max_length=200)
    async with deps.writing() as db:
        org = await _load_org(db, actor, org_id)
        org.name, org.address = name, (data.address or "").strip()[:500]
        org.owner_id = await check_owner(db, actor, data.owner_id or org.owner_id)
        await _set_org_domains(db, actor, org, data.domains)
        await db.flush()
        return await _org_view(db, org)


async def get_organization(deps: Deps, actor: Actor, org_id: uuid.UUID) -> OrganizationView:
    async with deps.reading() as db:
        return await _org_view(db, await _load_org(db, actor, org_id))


async def list_organizations(deps: Deps, actor: Actor, *, query: str = "", limit: int = 200) -> list[OrganizationView]:
    async with deps.reading() as db:
        stmt = select(Organization).where(Organization.company_id == actor.company_id)
        if query.strip():
            like = f"%{query.strip().lower()}%"
            domains = select(OrganizationDomain.organization_id).where(
                OrganizationDomain.company_id == actor.company_id, OrganizationDomain.domain.like(like))
            stmt = stmt.where(or_(Organization.name.ilike(like), Organization.id.in_(domains)))
        rows = (await db.scalars(stmt.order_by(Organization.name).limit(limit))).all()
        domains: dict[uuid.UUID, list[str]] = {o.id: [] for o in rows}
        for org_id, domain in await db.execute(
            select(OrganizationDomain.organization_id, OrganizationDomain.domain)
            .where(OrganizationDomain.company_id == actor.company_id,
                   OrganizationDomain.organization_id.in_(list(domains)))
            .order_by(OrganizationDomain.domain)
        ):
            domains[org_id].append(domain)
        return [OrganizationView(o.id, o.name, domains[o.id], o.address, o.owner_id, o.created_at) for o in rows]


async def delete_organization(deps: Deps, actor: Actor, org_id: uuid.UUID) -> None:
    async with deps.writing() as db:
        org = await _load_org(db, actor, org_id)
        _, domains = await linking.contact_keys(db, actor.company_id, None, org.id)
        for table in (Person, Deal, Lead, Project):
            await db.execute(update(table).where(
                table.company_id == actor.company_id, table.organization_id == org.id).values(organization_id=None))
        await db.delete(org)
        await db.flush()
        await linking.refresh_matching(db, actor.company_id, domains=domains)


async def person_for_address(deps: Deps, actor: Actor, email: str, name: str = "") -> tuple[PersonView, bool]:
    """"Create a person from this sender": the person who has ``email``, made now if nobody has it.

    Returns the person and whether it was created. Mail with the address is
    looked at again by the linking rules (retroactive linking).
    """
    key = normalize_email(email)
    async with deps.writing() as db:
        found = await db.scalar(
            select(Person).join(
                PersonEmail, (PersonEmail.company_id == Person.company_id) & (PersonEmail.person_id == Person.id)
            ).where(PersonEmail.company_id == actor.company_id, PersonEmail.email == key)
        )
        if found is not None:
            return (await _person_views(db, actor, [found]))[0], False
        person = Person(company_id=actor.company_id, name=(name.strip() or key)[:200], phone="",
                        owner_id=actor.user_id)
        db.add(person)
        await db.flush()
        await _set_person_emails(db, actor, person, [key])
        await db.flush()
        return (await _person_views(db, actor, [person]))[0], True
