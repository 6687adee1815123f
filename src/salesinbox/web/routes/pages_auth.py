"""First run, login and logout."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from salesinbox.domain.errors import ValidationFailed
from salesinbox.domain.tenancy import Plan
from salesinbox.services import workspace
from salesinbox.web.auth import actor_of, start_session
from salesinbox.web.i18n import _
from salesinbox.web.params import UseCases
from salesinbox.web.routes._render import form_data, safe_next, see_other


@get("/", include_in_schema=False)
async def home(request: Request, deps: UseCases) -> Redirect:
    if not await workspace.has_company(deps):
        return see_other("/setup")
    return see_other("/deals" if actor_of(request) else "/login")


@get("/setup", include_in_schema=False)
async def setup_form(deps: UseCases) -> Template:
    if await workspace.has_company(deps):
        raise NotFoundException(_("This workspace is already set up."))
    return Template("pages/setup.html", context={"plans": list(Plan), "values": {"plan": "growth"}, "errors": {}})


@post("/setup", include_in_schema=False)
async def setup_submit(request: Request, deps: UseCases) -> Template | Redirect:
    if await workspace.has_company(deps):
        raise NotFoundException(_("This workspace is already set up."))
    values = await form_data(request)
    try:
        _company, admin = await workspace.initialize_company(
            deps,
            company_name=values.get("company", ""),
            admin_email=values.get("email", ""),
            admin_password=values.get("password", ""),
            admin_name=values.get("name", ""),
            plan=values.get("plan", "growth"),
        )
    except ValidationFailed as exc:
        return Template(
            "pages/setup.html", status_code=422, context={"plans": list(Plan), "values": values, "errors": exc.errors}
        )
    actor = await workspace.authenticate(deps, admin.email, values["password"])
    start_session(request, actor)
    flash(request, _("Welcome to salesinbox. Your workspace is ready."), "success")
    return see_other("/deals")


@get("/login", include_in_schema=False)
async def login_form(request: Request, deps: UseCases, next: FromQuery[str] = "/deals") -> Template | Redirect:  # noqa: A002
    if not await workspace.has_company(deps):
        return see_other("/setup")
    if actor_of(request):
        return see_other(safe_next(next, "/deals"))
    return Template("pages/login.html", context={"next": safe_next(next, "/deals"), "error": None, "email": ""})


@post("/login", include_in_schema=False)
async def login_submit(request: Request, deps: UseCases) -> Template | Redirect:
    values = await form_data(request)
    actor = await workspace.authenticate(deps, values.get("email", ""), values.get("password", ""))
    target = safe_next(values.get("next"), "/deals")
    if actor is None:
        return Template(
            "pages/login.html",
            status_code=401,
            context={
                "next": target,
                "email": values.get("email", ""),
                "error": _("That email and password do not match an account."),
            },
        )
    start_session(request, actor)
    return see_other(target)


@post("/logout", include_in_schema=False)
async def logout(request: Request) -> Redirect:
    request.clear_session()
    return see_other("/login")


@get("/healthz", include_in_schema=False)
async def healthz(deps: UseCases) -> dict[str, str]:
    await workspace.has_company(deps)
    return {"status": "ok"}


ROUTES = [home, setup_form, setup_submit, login_form, login_submit, logout, healthz]
