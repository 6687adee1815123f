"""Who is asking: a logged-in browser (server-side session) or an API token.

The API accepts only ``Authorization: Bearer`` tokens, never the session
cookie; that is why the API is exempt from CSRF checks and the pages are not.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from salesinbox.domain.tenancy import Actor
from salesinbox.services import tokens, workspace
from salesinbox.services.unit_of_work import Deps
from salesinbox.web.i18n import current_locale, negotiate
from salesinbox.web.sessions import rotate_session

API_PREFIX = "/api/v1"
SESSION_USER = "uid"
SESSION_COMPANY = "cid"


def is_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


class ActorMiddleware(ASGIMiddleware):
    """Puts the request's ``Actor`` (or None) into ``scope["state"]["actor"]``."""

    scopes = ("http",)

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        actor = await self._resolve(scope)
        scope.setdefault("state", {})["actor"] = actor
        headers = dict(scope.get("headers") or [])
        token = current_locale.set(negotiate(headers.get(b"accept-language", b"").decode("latin-1")))
        try:
            await next_app(scope, receive, send)
        finally:
            current_locale.reset(token)

    async def _resolve(self, scope: Scope) -> Actor | None:
        if is_api(scope["path"]):
            return await self._from_bearer(scope)
        session = scope.get("session") or {}
        try:
            company_id, user_id = uuid.UUID(session[SESSION_COMPANY]), uuid.UUID(session[SESSION_USER])
        except (KeyError, ValueError, TypeError):
            return None
        return await workspace.actor_for(self.deps, company_id, user_id)

    async def _from_bearer(self, scope: Scope) -> Actor | None:
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                scheme, _, credential = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and credential.strip():
                    return await tokens.actor_for_token(self.deps, credential.strip())
        return None


def actor_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor | None:
    return connection.scope.get("state", {}).get("actor")


def logged_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if actor_of(connection) is None:
        raise NotAuthorizedException("Log in first.")


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    actor = actor_of(connection)
    if actor is None:
        raise NotAuthorizedException("Log in first.")
    if not actor.is_admin:
        raise PermissionDeniedException("Only an admin can do this.")


async def provide_actor(request: Request) -> Actor:
    actor = actor_of(request)
    if actor is None:
        raise NotAuthorizedException("Log in first.")
    return actor


def start_session(connection: ASGIConnection[Any, Any, Any, Any], actor: Actor) -> None:
    rotate_session(connection)  # a fresh session id on login defeats session fixation
    connection.set_session({SESSION_COMPANY: str(actor.company_id), SESSION_USER: str(actor.user_id)})
