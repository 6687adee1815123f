"""Linking and sharing from the pages: a conversation's links and visibility, the Email tab's
conversation panel, and the blocklist settings page."""

from __future__ import annotations

import uuid

from litestar import Request, Router, get, post
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from salesinbox.domain.errors import ValidationFailed
from salesinbox.domain.tenancy import Actor
from salesinbox.services import blocklist, contacts, conversations, items, links
from salesinbox.services.items import ItemKind
from salesinbox.services.unit_of_work import Deps
from salesinbox.web.auth import logged_in
from salesinbox.web.i18n import _
from salesinbox.web.params import CurrentActor, UseCases
from salesinbox.web.routes._render import form_data, page, safe_next, see_other
from salesinbox.web.routes.pages_accounts import plan_gate


async def link_choices(deps: Deps, actor: Actor) -> dict[str, list]:
    """Open deals, leads and projects, for the "Link to" picker."""
    return {kind.value: await items.list_items(deps, actor, kind, status="open") for kind in ItemKind}


@get("/conversations/{conversation_id:uuid}/panel", name="conversation_panel")
async def conversation_panel(
    request: Request, deps: UseCases, actor: CurrentActor, conversation_id: FromPath[uuid.UUID]
) -> Template:
    """A conversation opened in place, on a deal's, lead's, project's, person's or organization's Email tab."""
    opened = await conversations.get_conversation(deps, actor, conversation_id)
    back = safe_next(request.query_params.get("next"), "/inbox")
    return Template(
        "pages/inbox/_panel.html",
        context={"opened": opened, "next": back, "link_choices": await link_choices(deps, actor)},
    )


@post("/conversations/{conversation_id:uuid}/links", name="conversation_link")
async def conversation_link(
    request: Request, deps: UseCases, actor: CurrentActor, conversation_id: FromPath[uuid.UUID]
) -> Redirect:
    values = await form_data(request)
    kind, _sep, item = values.get("item", "").partition(":")
    try:
        item_id = uuid.UUID(item)
    except ValueError:
        item_id = None
    if item_id is None:
        flash(request, _("Choose a deal, lead or project to link to."), "error")
    else:
        try:
            view = await links.link(deps, actor, conversation_id, kind, item_id)
        except ValidationFailed:
            flash(request, _("That item cannot be linked."), "error")
        else:
            flash(request, _("Linked to %(title)s.") % {"title": view.title}, "success")
    return see_other(safe_next(values.get("next"), "/inbox"))


@post("/conversations/{conversation_id:uuid}/links/{link_id:uuid}/delete", name="conversation_unlink")
async def conversation_unlink(
    request: Request,
    deps: UseCases,
    actor: CurrentActor,
    conversation_id: FromPath[uuid.UUID],
    link_id: FromPath[uuid.UUID],
) -> Redirect:
    values = await form_data(request)
    await links.unlink(deps, actor, conversation_id, link_id)
    flash(request, _("Unlinked. It will not be linked to that item again automatically."), "success")
    return see_other(safe_next(values.get("next"), "/inbox"))


@post("/conversations/{conversation_id:uuid}/visibility", name="conversation_visibility")
async def conversation_visibility(
    request: Request, deps: UseCases, actor: CurrentActor, conversation_id: FromPath[uuid.UUID]
) -> Redirect:
    values = await form_data(request)
    try:
        await links.set_visibility(deps, actor, conversation_id, values.get("visibility", ""))
    except ValidationFailed:
        flash(request, _("Choose who can see this conversation."), "error")
    else:
        flash(request, _("Visibility changed."), "success")
    return see_other(safe_next(values.get("next"), "/inbox"))


@post("/contacts/from-sender", name="person_from_sender")
async def person_from_sender(request: Request, deps: UseCases, actor: CurrentActor) -> Redirect:
    """"Create a person from this sender", from a message in a conversation."""
    values = await form_data(request)
    try:
        email, name = values.get("email", ""), values.get("name", "")
        person, created = await contacts.person_for_address(deps, actor, email, name)
    except ValidationFailed:
        flash(request, _("That is not an email address."), "error")
        return see_other(safe_next(values.get("next"), "/inbox"))
    flash(request, _("Person created.") if created else _("This sender is already a person."), "success")
    return see_other(f"/persons/{person.id}")


async def _blocklist_page(deps, actor, values=None, errors=None, status=200) -> Template:
    return await page(
        deps,
        actor,
        "pages/settings/blocklist.html",
        nav="blocklist",
        status=status,
        entries=await blocklist.list_blocked(deps, actor),
        values=values or {},
        errors=errors or {},
    )


@get("/settings/blocklist", name="blocklist")
async def blocklist_page(deps: UseCases, actor: CurrentActor) -> Template:
    return await _blocklist_page(deps, actor)


@post("/settings/blocklist", name="blocklist_add")
async def blocklist_add(request: Request, deps: UseCases, actor: CurrentActor) -> Template | Redirect:
    values = await form_data(request)
    scope = "company" if values.get("scope") == "company" else "mine"
    try:
        await blocklist.block(deps, actor, values.get("value", ""), scope=scope)
    except ValidationFailed as exc:
        return await _blocklist_page(deps, actor, values, {"value": exc.errors.get("value", "")}, status=422)
    flash(request, _("Added to the blocklist."), "success")
    return see_other("/settings/blocklist")


@post("/settings/blocklist/{entry_id:uuid}/delete", name="blocklist_remove")
async def blocklist_remove(
    request: Request, deps: UseCases, actor: CurrentActor, entry_id: FromPath[uuid.UUID]
) -> Redirect:
    await blocklist.unblock(deps, actor, entry_id)
    flash(request, _("Removed from the blocklist."), "success")
    return see_other("/settings/blocklist")


ROUTES = [
    Router(
        "/",
        before_request=plan_gate,
        route_handlers=[
            conversation_panel,
            conversation_link,
            conversation_unlink,
            conversation_visibility,
            person_from_sender,
            blocklist_page,
            blocklist_add,
            blocklist_remove,
        ],
        guards=[logged_in],
        include_in_schema=False,
    )
]
