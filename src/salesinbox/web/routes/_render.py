"""Rendering pages: the layout's context (who is logged in, which nav item is
active) and reading submitted forms."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.response import Redirect, Template

from salesinbox.domain.tenancy import Actor
from salesinbox.services import workspace
from salesinbox.services.unit_of_work import Deps


async def page(
    deps: Deps, actor: Actor, template: str, *, nav: str = "", status: int = 200, **context: Any
) -> Template:
    me = await workspace.get_user(deps, actor, actor.user_id)
    company = await workspace.get_company(deps, actor)
    return Template(
        template, status_code=status, context={"me": me, "company": company, "actor": actor, "nav": nav, **context}
    )


async def form_data(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: str(form.get(key, "")) for key in form}


async def form_list(request: Request, key: str) -> list[str]:
    form = await request.form()
    return [str(v) for v in form.getall(key, [])] if hasattr(form, "getall") else []


def lines(text: str) -> list[str]:
    """Addresses or domains typed one per line or separated by commas."""
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site: never an open redirect to another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return default if parts.scheme or parts.netloc else target


def see_other(path: str) -> Redirect:
    return Redirect(path, status_code=303)
