"""The workspace: first-run set-up, users, roles, login."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select

from salesinbox.adapters.db.tables import Company, User
from salesinbox.domain.crm import require_text
from salesinbox.domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from salesinbox.domain.tenancy import Actor, Plan, Role, has_email_sync
from salesinbox.domain.text import Text
from salesinbox.services.unit_of_work import Deps

MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class CompanyView:
    id: uuid.UUID
    name: str
    plan: Plan
    has_email_sync: bool


@dataclass(frozen=True)
class UserView:
    id: uuid.UUID
    email: str
    name: str
    role: Role
    is_active: bool


def company_view(row: Company) -> CompanyView:
    plan = Plan(row.plan)
    return CompanyView(row.id, row.name, plan, has_email_sync(plan))


def user_view(row: User) -> UserView:
    return UserView(row.id, row.email, row.name, Role(row.role), row.is_active)


def check_login_email(address: str, field: str = "email") -> str:
    # Self-hosted teams use internal and test domains (corp.internal, *.test):
    # check the syntax, not whether the domain is on the public internet.
    try:
        return validate_email(address.strip(), check_deliverability=False, globally_deliverable=False,
                              test_environment=True).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed({field: str(exc)}) from exc


def check_new_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationFailed({"password": Text("Use at least %(min)s characters.", min=MIN_PASSWORD_LENGTH)})
    return password


def check_plan(plan: str) -> Plan:
    try:
        return Plan(plan.strip().lower())
    except ValueError as exc:
        names = ", ".join(p.value for p in Plan)
        raise ValidationFailed({"plan": Text("Choose one of: %(choices)s.", choices=names)}) from exc


async def has_company(deps: Deps) -> bool:
    async with deps.reading() as db:
        return bool(await db.scalar(select(func.count()).select_from(Company)))


async def initialize_company(
    deps: Deps, *, company_name: str, admin_email: str, admin_password: str,
    admin_name: str = "", plan: str = "growth",
) -> tuple[CompanyView, UserView]:
    """First run: create the company and its first admin."""
    name = require_text("company", company_name, max_length=200)
    email = check_login_email(admin_email)
    password = check_new_password(admin_password)
    chosen_plan = check_plan(plan)
    async with deps.writing() as db:
        company = Company(name=name, plan=chosen_plan.value)
        db.add(company)
        await db.flush()
        admin = await _insert_user(deps, db, company.id, email, password, admin_name, Role.ADMIN)
        return company_view(company), user_view(admin)


async def _insert_user(deps, db, company_id, email, password, name, role) -> User:
    if await db.scalar(select(User.id).where(User.email == email)):
        raise Conflict(Text("A user with the email %(email)s already exists.", email=email))
    user = User(
        company_id=company_id, email=email, name=(name or "").strip() or email.split("@")[0],
        password_hash=deps.passwords.hash(password), role=role.value,
    )
    db.add(user)
    await db.flush()
    return user


async def add_user(
    deps: Deps, actor: Actor, *, email: str, password: str, name: str = "", admin: bool = False
) -> UserView:
    require_admin(actor)
    address = check_login_email(email)
    check_new_password(password)
    async with deps.writing() as db:
        role = Role.ADMIN if admin else Role.REGULAR
        return user_view(await _insert_user(deps, db, actor.company_id, address, password, name, role))


async def change_role(deps: Deps, actor: Actor, user_id: uuid.UUID, role: str) -> UserView:
    require_admin(actor)
    try:
        new_role = Role(role)
    except ValueError as exc:
        raise ValidationFailed({"role": Text("Choose admin or regular.")}) from exc
    async with deps.writing() as db:
        user = await _load_user(db, actor.company_id, user_id)
        if new_role is not Role.ADMIN and user.role == Role.ADMIN.value:
            await _keep_one_admin(db, actor.company_id)
        user.role = new_role.value
        return user_view(user)


async def _keep_one_admin(db, company_id: uuid.UUID) -> None:
    admins = await db.scalar(
        select(func.count()).select_from(User)
        .where(User.company_id == company_id, User.role == Role.ADMIN.value, User.is_active)
    )
    if admins <= 1:
        raise Conflict(Text("The company needs at least one admin; make someone else admin first."))


async def _load_user(db, company_id: uuid.UUID, user_id: uuid.UUID) -> User:
    user = await db.get(User, (company_id, user_id))
    if user is None:
        raise NotFound(Text("No such user."))
    return user


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied(Text("Only an admin can do this."))


async def list_users(deps: Deps, actor: Actor) -> list[UserView]:
    async with deps.reading() as db:
        rows = await db.scalars(select(User).where(User.company_id == actor.company_id).order_by(User.name))
        return [user_view(r) for r in rows]


async def get_user(deps: Deps, actor: Actor, user_id: uuid.UUID) -> UserView:
    async with deps.reading() as db:
        return user_view(await _load_user(db, actor.company_id, user_id))


async def get_company(deps: Deps, actor: Actor) -> CompanyView:
    async with deps.reading() as db:
        company = await db.get(Company, actor.company_id)
        if company is None:
            raise NotFound(Text("No such company."))
        return company_view(company)


async def authenticate(deps: Deps, email: str, password: str) -> Actor | None:
    """The actor for a login, or None; the same work is done for unknown emails."""
    async with deps.reading() as db:
        user = await db.scalar(select(User).where(User.email == email.strip().lower()))
    ok = deps.passwords.verify(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        return None
    return await actor_for(deps, user.company_id, user.id)


async def actor_for(deps: Deps, company_id: uuid.UUID, user_id: uuid.UUID) -> Actor | None:
    """Re-read the user on every request, so a role change or a deactivation applies at once."""
    async with deps.reading() as db:
        row = (await db.execute(
            select(User.role, User.is_active, Company.plan)
            .join(Company, Company.id == User.company_id)
            .where(User.company_id == company_id, User.id == user_id)
        )).first()
    if row is None or not row.is_active:
        return None
    return Actor(company_id, user_id, Role(row.role), Plan(row.plan))


async def find_user_by_email(deps: Deps, email: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(company_id, user_id) of a login email: for the operator's CLI only."""
    async with deps.reading() as db:
        row = (await db.execute(select(User.company_id, User.id).where(User.email == email.strip().lower()))).first()
    if row is None:
        raise NotFound(f"No user with the email {email}.")
    return row.company_id, row.id


async def sole_company_admin(deps: Deps) -> Actor:
    """The CLI's actor where no user is named: an admin of the only company."""
    async with deps.reading() as db:
        companies = (await db.scalars(select(Company.id).limit(2))).all()
        if len(companies) != 1:
            raise ValidationFailed({"company": "Run `salesinbox init` first." if not companies
                                    else "Several companies exist; name a user with --as EMAIL."})
        admin = await db.scalar(
            select(User.id).where(User.company_id == companies[0], User.role == Role.ADMIN.value)
            .order_by(User.created_at).limit(1)
        )
    actor = await actor_for(deps, companies[0], admin)
    if actor is None:
        raise NotFound("The company has no active admin.")
    return actor
