"""Pages for persons, organizations, deals, leads and projects."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar import Request, Router, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from salesinbox.domain.crm import DEFAULT_STAGES
from salesinbox.domain.errors import Conflict, ValidationFailed
from salesinbox.domain.tenancy import Actor
from salesinbox.services import contacts, conversations, items, workspace
from salesinbox.services.contacts import OrganizationInput, PersonInput
from salesinbox.services.items import STATUSES, ItemInput, ItemKind
from salesinbox.services.unit_of_work import Deps
from salesinbox.web.auth import logged_in
from salesinbox.web.i18n import _, error_message
from salesinbox.web.params import CurrentActor, UseCases
from salesinbox.web.routes._render import form_data, lines, page, see_other

# ---- form parsing ----------------------------------------------------------------------


def _uuid_or_none(values: dict[str, str], key: str, errors: dict[str, str]) -> uuid.UUID | None:
    raw = values.get(key, "").strip()
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        errors[key] = _("Choose an item from the list.")
        return None


def _date_or_none(values: dict[str, str], key: str, errors: dict[str, str]) -> dt.date | None:
    raw = values.get(key, "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors[key] = _("Enter a date as YYYY-MM-DD.")
        return None


def _item_input(values: dict[str, str]) -> ItemInput:
    errors: dict[str, str] = {}
    data = ItemInput(
        title=values.get("title", ""),
        person_id=_uuid_or_none(values, "person_id", errors),
        organization_id=_uuid_or_none(values, "organization_id", errors),
        owner_id=_uuid_or_none(values, "owner_id", errors),
        status=values.get("status", "open"),
        value=values.get("value") or None,
        currency=values.get("currency", "EUR"),
        stage=values.get("stage", DEFAULT_STAGES[0]),
        expected_close_date=_date_or_none(values, "expected_close_date", errors),
        description=values.get("description", ""),
        start_date=_date_or_none(values, "start_date", errors),
        end_date=_date_or_none(values, "end_date", errors),
    )
    if errors:
        raise ValidationFailed(errors)
    return data


def _person_input(values: dict[str, str]) -> PersonInput:
    errors: dict[str, str] = {}
    data = PersonInput(
        name=values.get("name", ""),
        emails=lines(values.get("emails", "")),
        phone=values.get("phone", ""),
        organization_id=_uuid_or_none(values, "organization_id", errors),
        owner_id=_uuid_or_none(values, "owner_id", errors),
    )
    if errors:
        raise ValidationFailed(errors)
    return data


def _org_input(values: dict[str, str]) -> OrganizationInput:
    errors: dict[str, str] = {}
    data = OrganizationInput(
        name=values.get("name", ""),
        domains=lines(values.get("domains", "")),
        address=values.get("address", ""),
        owner_id=_uuid_or_none(values, "owner_id", errors),
    )
    if errors:
        raise ValidationFailed(errors)
    return data


def _errors_of(exc: ValidationFailed | Conflict) -> dict[str, str]:
    return exc.errors if isinstance(exc, ValidationFailed) else {"_form": error_message(exc)}


async def _choices(deps: Deps, actor: Actor) -> dict[str, Any]:
    return {
        "persons": await contacts.list_persons(deps, actor, limit=1000),
        "organizations": await contacts.list_organizations(deps, actor, limit=1000),
        "users": await workspace.list_users(deps, actor),
    }


# ---- deals, leads, projects --------------------------------------------------------------


def item_pages(kind: ItemKind) -> Router:
    plural = f"{kind.value}s"
    base = f"/{plural}"
    ctx = {"kind": kind.value, "base": base, "statuses": [s.value for s in STATUSES[kind]], "stages": DEFAULT_STAGES}

    async def render_form(deps, actor, values, errors, item=None, status=200) -> Template:
        return await page(
            deps,
            actor,
            "pages/items/form.html",
            nav=plural,
            status=status,
            item=item,
            values=values,
            errors=errors,
            **ctx,
            **await _choices(deps, actor),
        )

    @get("/", name=f"{plural}_list")
    async def list_(
        deps: UseCases, actor: CurrentActor, status: FromQuery[str | None] = None, q: FromQuery[str] = ""
    ) -> Template:
        rows = await items.list_items(deps, actor, kind, status=status or None, query=q)
        return await page(
            deps, actor, "pages/items/list.html", nav=plural, rows=rows, q=q, status_filter=status or "", **ctx
        )

    @get("/new", name=f"{plural}_new")
    async def new(
        deps: UseCases, actor: CurrentActor, person_id: FromQuery[str] = "", organization_id: FromQuery[str] = ""
    ) -> Template:
        values = {
            "status": "open",
            "currency": "EUR",
            "stage": DEFAULT_STAGES[0],
            "owner_id": str(actor.user_id),
            "person_id": person_id,
            "organization_id": organization_id,
        }
        return await render_form(deps, actor, values, {})

    @post("/", name=f"{plural}_create")
    async def create(request: Request, deps: UseCases, actor: CurrentActor) -> Template | Redirect:
        values = await form_data(request)
        try:
            view = await items.create_item(deps, actor, kind, _item_input(values))
        except (ValidationFailed, Conflict) as exc:
            return await render_form(deps, actor, values, _errors_of(exc), status=422)
        flash(request, _("Saved."), "success")
        return see_other(f"{base}/{view.id}")

    @get("/{item_id:uuid}", name=f"{plural}_detail")
    async def detail(deps: UseCases, actor: CurrentActor, item_id: FromPath[uuid.UUID]) -> Template:
        item = await items.get_item(deps, actor, kind, item_id)
        to = (await contacts.get_person(deps, actor, item.person_id)).emails[:1] if item.person_id else []
        email = await _email_tab(deps, actor, kind.value, item_id, to, f"{base}/{item_id}")
        return await page(deps, actor, "pages/items/detail.html", nav=plural, item=item, **email, **ctx)

    @get("/{item_id:uuid}/edit", name=f"{plural}_edit")
    async def edit(deps: UseCases, actor: CurrentActor, item_id: FromPath[uuid.UUID]) -> Template:
        item = await items.get_item(deps, actor, kind, item_id)
        values = {k: "" if v is None else str(v) for k, v in vars(item).items()}
        return await render_form(deps, actor, values, {}, item=item)

    @post("/{item_id:uuid}", name=f"{plural}_update")
    async def update(
        request: Request, deps: UseCases, actor: CurrentActor, item_id: FromPath[uuid.UUID]
    ) -> Template | Redirect:
        item = await items.get_item(deps, actor, kind, item_id)
        values = await form_data(request)
        try:
            await items.update_item(deps, actor, kind, item_id, _item_input(values))
        except (ValidationFailed, Conflict) as exc:
            return await render_form(deps, actor, values, _errors_of(exc), item=item, status=422)
        flash(request, _("Saved."), "success")
        return see_other(f"{base}/{item_id}")

    @post("/{item_id:uuid}/delete", name=f"{plural}_delete")
    async def remove(request: Request, deps: UseCases, actor: CurrentActor, item_id: FromPath[uuid.UUID]) -> Redirect:
        await items.delete_item(deps, actor, kind, item_id)
        flash(request, _("Deleted."), "success")
        return see_other(base)

    return Router(
        base,
        route_handlers=[list_, new, create, detail, edit, update, remove],
        guards=[logged_in],
        include_in_schema=False,
    )


# ---- persons ---------------------------------------------------------------------------------


async def _email_tab(deps, actor, kind: str, item_id: uuid.UUID, compose_to: list[str], here: str) -> dict:
    """The Email tab's context; none below the plan that has email sync."""
    if not actor.can_sync_email:
        return {"email": None}
    return {
        "email": await conversations.item_conversations(deps, actor, kind, item_id),
        "compose_to": compose_to,
        "here": here,
    }


async def _person_form(deps, actor, values, errors, person=None, status=200) -> Template:
    return await page(
        deps,
        actor,
        "pages/persons/form.html",
        nav="persons",
        status=status,
        person=person,
        values=values,
        errors=errors,
        **await _choices(deps, actor),
    )


@get("/", name="persons_list")
async def persons_list(deps: UseCases, actor: CurrentActor, q: FromQuery[str] = "") -> Template:
    rows = await contacts.list_persons(deps, actor, query=q)
    return await page(deps, actor, "pages/persons/list.html", nav="persons", rows=rows, q=q)


@get("/new", name="persons_new")
async def persons_new(deps: UseCases, actor: CurrentActor, organization_id: FromQuery[str] = "") -> Template:
    return await _person_form(deps, actor, {"owner_id": str(actor.user_id), "organization_id": organization_id}, {})


@post("/", name="persons_create")
async def persons_create(request: Request, deps: UseCases, actor: CurrentActor) -> Template | Redirect:
    values = await form_data(request)
    try:
        view = await contacts.create_person(deps, actor, _person_input(values))
    except (ValidationFailed, Conflict) as exc:
        return await _person_form(deps, actor, values, _errors_of(exc), status=422)
    flash(request, _("Saved."), "success")
    return see_other(f"/persons/{view.id}")


@get("/{person_id:uuid}", name="persons_detail")
async def persons_detail(deps: UseCases, actor: CurrentActor, person_id: FromPath[uuid.UUID]) -> Template:
    person = await contacts.get_person(deps, actor, person_id)
    deals = await items.list_items(deps, actor, ItemKind.DEAL, person_id=person_id)
    leads = await items.list_items(deps, actor, ItemKind.LEAD, person_id=person_id)
    projects = await items.list_items(deps, actor, ItemKind.PROJECT, person_id=person_id)
    return await page(
        deps,
        actor,
        "pages/persons/detail.html",
        nav="persons",
        person=person,
        deals=deals,
        leads=leads,
        projects=projects,
        **await _email_tab(deps, actor, "person", person_id, person.emails[:1], f"/persons/{person_id}"),
    )


@get("/{person_id:uuid}/edit", name="persons_edit")
async def persons_edit(deps: UseCases, actor: CurrentActor, person_id: FromPath[uuid.UUID]) -> Template:
    person = await contacts.get_person(deps, actor, person_id)
    values = {
        "name": person.name,
        "emails": "\n".join(person.emails),
        "phone": person.phone,
        "organization_id": str(person.organization_id or ""),
        "owner_id": str(person.owner_id or ""),
    }
    return await _person_form(deps, actor, values, {}, person=person)


@post("/{person_id:uuid}", name="persons_update")
async def persons_update(
    request: Request, deps: UseCases, actor: CurrentActor, person_id: FromPath[uuid.UUID]
) -> Template | Redirect:
    person = await contacts.get_person(deps, actor, person_id)
    values = await form_data(request)
    try:
        await contacts.update_person(deps, actor, person_id, _person_input(values))
    except (ValidationFailed, Conflict) as exc:
        return await _person_form(deps, actor, values, _errors_of(exc), person=person, status=422)
    flash(request, _("Saved."), "success")
    return see_other(f"/persons/{person_id}")


@post("/{person_id:uuid}/delete", name="persons_delete")
async def persons_delete(
    request: Request, deps: UseCases, actor: CurrentActor, person_id: FromPath[uuid.UUID]
) -> Redirect:
    await contacts.delete_person(deps, actor, person_id)
    flash(request, _("Deleted."), "success")
    return see_other("/persons")


# ---- organizations -----------------------------------------------------------------------------


async def _org_form(deps, actor, values, errors, org=None, status=200) -> Template:
    return await page(
        deps,
        actor,
        "pages/organizations/form.html",
        nav="organizations",
        status=status,
        org=org,
        values=values,
        errors=errors,
        users=await workspace.list_users(deps, actor),
    )


@get("/", name="organizations_list")
async def orgs_list(deps: UseCases, actor: CurrentActor, q: FromQuery[str] = "") -> Template:
    rows = await contacts.list_organizations(deps, actor, query=q)
    return await page(deps, actor, "pages/organizations/list.html", nav="organizations", rows=rows, q=q)


@get("/new", name="organizations_new")
async def orgs_new(deps: UseCases, actor: CurrentActor) -> Template:
    return await _org_form(deps, actor, {"owner_id": str(actor.user_id)}, {})


@post("/", name="organizations_create")
async def orgs_create(request: Request, deps: UseCases, actor: CurrentActor) -> Template | Redirect:
    values = await form_data(request)
    try:
        view = await contacts.create_organization(deps, actor, _org_input(values))
    except (ValidationFailed, Conflict) as exc:
        return await _org_form(deps, actor, values, _errors_of(exc), status=422)
    flash(request, _("Saved."), "success")
    return see_other(f"/organizations/{view.id}")


@get("/{organization_id:uuid}", name="organizations_detail")
async def orgs_detail(deps: UseCases, actor: CurrentActor, organization_id: FromPath[uuid.UUID]) -> Template:
    org = await contacts.get_organization(deps, actor, organization_id)
    persons = await contacts.list_persons(deps, actor, organization_id=organization_id)
    deals = await items.list_items(deps, actor, ItemKind.DEAL, organization_id=organization_id)
    leads = await items.list_items(deps, actor, ItemKind.LEAD, organization_id=organization_id)
    projects = await items.list_items(deps, actor, ItemKind.PROJECT, organization_id=organization_id)
    return await page(
        deps,
        actor,
        "pages/organizations/detail.html",
        nav="organizations",
        org=org,
        persons=persons,
        deals=deals,
        leads=leads,
        projects=projects,
        **await _email_tab(
            deps, actor, "organization", organization_id, [p.emails[0] for p in persons if p.emails][:10],
            f"/organizations/{organization_id}",
        ),
    )


@get("/{organization_id:uuid}/edit", name="organizations_edit")
async def orgs_edit(deps: UseCases, actor: CurrentActor, organization_id: FromPath[uuid.UUID]) -> Template:
    org = await contacts.get_organization(deps, actor, organization_id)
    values = {
        "name": org.name,
        "domains": "\n".join(org.domains),
        "address": org.address,
        "owner_id": str(org.owner_id or ""),
    }
    return await _org_form(deps, actor, values, {}, org=org)


@post("/{organization_id:uuid}", name="organizations_update")
async def orgs_update(
    request: Request, deps: UseCases, actor: CurrentActor, organization_id: FromPath[uuid.UUID]
) -> Template | Redirect:
    org = await contacts.get_organization(deps, actor, organization_id)
    values = await form_data(request)
    try:
        await contacts.update_organization(deps, actor, organization_id, _org_input(values))
    except (ValidationFailed, Conflict) as exc:
        return await _org_form(deps, actor, values, _errors_of(exc), org=org, status=422)
    flash(request, _("Saved."), "success")
    return see_other(f"/organizations/{organization_id}")


@post("/{organization_id:uuid}/delete", name="organizations_delete")
async def orgs_delete(
    request: Request, deps: UseCases, actor: CurrentActor, organization_id: FromPath[uuid.UUID]
) -> Redirect:
    await contacts.delete_organization(deps, actor, organization_id)
    flash(request, _("Deleted."), "success")
    return see_other("/organizations")


ROUTES = [
    *(item_pages(kind) for kind in ItemKind),
    Router(
        "/persons",
        route_handlers=[
            persons_list,
            persons_new,
            persons_create,
            persons_detail,
            persons_edit,
            persons_update,
            persons_delete,
        ],
        guards=[logged_in],
        include_in_schema=False,
    ),
    Router(
        "/organizations",
        route_handlers=[orgs_list, orgs_new, orgs_create, orgs_detail, orgs_edit, orgs_update, orgs_delete],
        guards=[logged_in],
        include_in_schema=False,
    ),
]
