"""Sign in with Google / Microsoft: connect an account, or re-authorise one (services/oauth_sign_in.py).

The pending sign-in (state, PKCE verifier, the form's choices) is kept in the
server-side session, never in the browser; the callback uses it up whatever
the outcome, so an answer can be used once only.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Request, Router, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.plugins.flash import flash
from litestar.response import Redirect

from salesinbox.domain.errors import Conflict, PermissionDenied, ValidationFailed
from salesinbox.services import accounts, oauth_sign_in
from salesinbox.services.accounts import ConnectionFailed
from salesinbox.services.oauth_sign_in import CALLBACK_PATH, PendingSignIn, SignInRefused
from salesinbox.web.auth import logged_in
from salesinbox.web.i18n import _, error_message, localize, localize_errors
from salesinbox.web.params import CurrentActor, UseCases
from salesinbox.web.routes._render import form_data, form_list, see_other

SESSION_KEY = "oauth_sign_in"


def _redirect_uri(request: Request) -> str:
    base = request.app.state.get("public_url") or f"{request.base_url.scheme}://{request.base_url.netloc}"
    return base + CALLBACK_PATH


def _keep(request: Request, pending: PendingSignIn) -> None:
    request.set_session({**(request.session or {}), SESSION_KEY: pending.to_dict()})


def _take(request: Request) -> PendingSignIn | None:
    session = dict(request.session or {})
    pending = PendingSignIn.from_dict(session.pop(SESSION_KEY, None))
    request.set_session(session)
    return pending


@post("/start", name="oauth_start")
async def oauth_start(request: Request, deps: UseCases, actor: CurrentActor) -> Redirect:
    """The connect form's "Sign in with ..." button: its choices kept, the browser sent to the provider."""
    values = await form_data(request)
    values["member_ids"] = await form_list(request, "member_ids")
    provider = values.get("provider", "")
    try:
        url, pending = oauth_sign_in.begin(deps, actor, provider, _redirect_uri(request), choices=values)
    except ValidationFailed as exc:
        flash(request, localize(next(iter(exc.errors.values()))), "error")
        return see_other(f"/accounts/new?provider={provider}")
    _keep(request, pending)
    return Redirect(url, status_code=303)


@post("/{account_id:uuid}/reauthorise", name="oauth_reauthorise")
async def oauth_reauthorise(
    request: Request, deps: UseCases, actor: CurrentActor, account_id: FromPath[uuid.UUID]
) -> Redirect:
    account = await accounts.access_account(deps, actor, account_id)
    try:
        url, pending = oauth_sign_in.begin(deps, actor, account.provider, _redirect_uri(request), account=account)
    except (ValidationFailed, PermissionDenied) as exc:
        why = localize(next(iter(exc.errors.values()))) if isinstance(exc, ValidationFailed) else error_message(exc)
        flash(request, why, "error")
        return see_other(f"/accounts/{account_id}")
    _keep(request, pending)
    return Redirect(url, status_code=303)


@get("/callback", name="oauth_callback")
async def oauth_callback(
    request: Request,
    deps: UseCases,
    actor: CurrentActor,
    returned_state: Annotated[str, QueryParameter(name="state")] = "",
    code: FromQuery[str] = "",
    error: FromQuery[str] = "",
) -> Redirect:
    pending = _take(request)
    back = f"/accounts/{pending.account_id}" if pending and pending.account_id else "/accounts/new"
    try:
        view, new = await oauth_sign_in.complete(
            deps, actor, pending, state=returned_state, code=code, error=error, redirect_uri=_redirect_uri(request)
        )
    except ConnectionFailed as exc:
        flash(
            request,
            _("Signed in, but logging in to the mail server failed: %(why)s Nothing was saved.")
            % {"why": " ".join(localize(m) for m in exc.report.messages)},
            "error",
        )
        return see_other(back)
    except (SignInRefused, Conflict, PermissionDenied) as exc:
        flash(request, error_message(exc), "error")
        return see_other(back)
    except ValidationFailed as exc:
        flash(request, " ".join(localize_errors(exc.errors).values()), "error")
        return see_other(back)
    if new:
        flash(request, _("%(address)s is connected.") % {"address": view.address}, "success")
    else:
        flash(request, _("%(address)s is authorised again; sync resumes.") % {"address": view.address}, "success")
    return see_other(f"/accounts/{view.id}")


ROUTES = [
    Router(
        "/accounts/oauth",
        route_handlers=[oauth_start, oauth_callback],
        guards=[logged_in],
        include_in_schema=False,
    ),
    Router(
        "/accounts",
        route_handlers=[oauth_reauthorise],
        guards=[logged_in],
        include_in_schema=False,
    ),
]
