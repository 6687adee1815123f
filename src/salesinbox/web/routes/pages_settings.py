"""Settings pages: users and roles (admins), personal API tokens."""

from __future__ import annotations

import uuid

from litestar import Request, Router, get, post
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from salesinbox.domain.errors import Conflict, ValidationFailed
from salesinbox.services import tokens, workspace
from salesinbox.web.auth import admin_only, logged_in
from salesinbox.web.i18n import _, error_message
from salesinbox.web.params import CurrentActor, UseCases
from salesinbox.web.routes._render import form_data, page, see_other


async def _users_page(deps, actor, values=None, errors=None, status=200) -> Template:
    return await page(
        deps,
        actor,
        "pages/settings/users.html",
        nav="users",
        status=status,
        users=await workspace.list_users(deps, actor),
        values=values or {},
        errors=errors or {},
    )


@get("/users", name="users_list")
async def users_list(deps: UseCases, actor: CurrentActor) -> Template:
    return await _users_page(deps, actor)


@post("/users", name="users_add")
async def users_add(request: Request, deps: UseCases, actor: CurrentActor) -> Template | Redirect:
    values = await form_data(request)
    try:
        user = await workspace.add_user(
            deps,
            actor,
            email=values.get("email", ""),
            password=values.get("password", ""),
            name=values.get("name", ""),
            admin=values.get("role") == "admin",
        )
    except (ValidationFailed, Conflict) as exc:
        errors = exc.errors if isinstance(exc, ValidationFailed) else {"email": error_message(exc)}
        values.pop("password", None)
        return await _users_page(deps, actor, values, errors, status=422)
    flash(request, _("%(name)s can now log in.") % {"name": user.name}, "success")
    return see_other("/settings/users")


@post("/users/{user_id:uuid}/role", name="users_role")
async def users_role(request: Request, deps: UseCases, actor: CurrentActor, user_id: FromPath[uuid.UUID]) -> Redirect:
    values = await form_data(request)
    try:
        await workspace.change_role(deps, actor, user_id, values.get("role", ""))
        flash(request, _("Role changed."), "success")
    except (ValidationFailed, Conflict) as exc:
        flash(request, error_message(exc), "error")
    return see_other("/settings/users")


@get("/tokens", name="tokens_list")
async def tokens_list(deps: UseCases, actor: CurrentActor) -> Template:
    return await page(
        deps,
        actor,
        "pages/settings/tokens.html",
        nav="tokens",
        tokens=await tokens.list_tokens(deps, actor),
        new_token=None,
    )


@post("/tokens", name="tokens_create")
async def tokens_create(request: Request, deps: UseCases, actor: CurrentActor) -> Template:
    values = await form_data(request)
    new = await tokens.create_token(deps, actor, values.get("name") or "API token")
    # The secret is shown on this response only; it is never stored in clear.
    return await page(
        deps,
        actor,
        "pages/settings/tokens.html",
        nav="tokens",
        status=201,
        tokens=await tokens.list_tokens(deps, actor),
        new_token=new,
    )


@post("/tokens/{token_id:uuid}/revoke", name="tokens_revoke")
async def tokens_revoke(
    request: Request, deps: UseCases, actor: CurrentActor, token_id: FromPath[uuid.UUID]
) -> Redirect:
    await tokens.revoke_token(deps, actor, token_id)
    flash(request, _("Token revoked."), "success")
    return see_other("/settings/tokens")


ROUTES = [
    Router(
        "/settings", route_handlers=[users_list, users_add, users_role], guards=[admin_only], include_in_schema=False
    ),
    Router(
        "/settings",
        route_handlers=[tokens_list, tokens_create, tokens_revoke],
        guards=[logged_in],
        include_in_schema=False,
    ),
]
