"""Email account pages: connect (with "Test connection"), detail, members, disconnect."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from litestar import Request, Router, get, post
from litestar.params import FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from salesinbox.domain.accounts import (
    AccountKind,
    ContactPolicy,
    Security,
    SyncStart,
    default_visibility_for,
    visibilities_for,
)
from salesinbox.domain.errors import Conflict, NotFound, ValidationFailed
from salesinbox.domain.providers import all_presets, get_preset
from salesinbox.domain.tenancy import EMAIL_SYNC_MINIMUM_PLAN, Actor
from salesinbox.services import accounts, oauth_sign_in, sync_status, workspace
from salesinbox.services.accounts import AccountInput, ConnectionFailed, ConnectionReport
from salesinbox.services.unit_of_work import Deps
from salesinbox.web.auth import actor_of, logged_in
from salesinbox.web.i18n import _, error_message
from salesinbox.web.params import CurrentActor, UseCases
from salesinbox.web.routes._render import form_data, form_list, page, see_other

PASSWORD_FIELDS = ("password",)


def _preset_values(provider: str, kind: str = "private") -> dict[str, str]:
    preset = get_preset(provider if provider in {p.key for p in all_presets()} else "other")
    return {
        "provider": preset.key,
        "kind": kind,
        "imap_host": preset.imap_host,
        "imap_port": str(preset.imap_port or ""),
        "imap_security": preset.imap_security,
        "smtp_host": preset.smtp_host,
        "smtp_port": str(preset.smtp_port or ""),
        "smtp_security": preset.smtp_security,
        "attachment_limit_mb": str(preset.attachment_limit_bytes // (1024 * 1024)),
        "sync_start": SyncStart.ONE_MONTH.value,
        "contact_policy": ContactPolicy.FROM_SENT.value,
        "default_visibility": default_visibility_for(AccountKind.TEAM if kind == "team" else AccountKind.PRIVATE),
    }


def _int_or_none(raw: str, key: str, errors: dict[str, str]) -> int | None:
    if not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        errors[key] = _("Enter a whole number.")
        return None


def _choice(enum, raw: str, key: str, errors: dict[str, str]):
    try:
        return enum(raw) if raw else None
    except ValueError:
        errors[key] = _("Choose one of the options.")
        return None


def _account_input(values: dict[str, str], member_ids: list[str]) -> AccountInput:
    errors: dict[str, str] = {}
    members = []
    for raw in member_ids:
        try:
            members.append(uuid.UUID(raw))
        except ValueError:
            errors["member_ids"] = _("Choose members from the list.")
    data = AccountInput(
        address=values.get("address", ""),
        login=values.get("login", ""),
        password=values.get("password", ""),
        provider=values.get("provider", "other"),
        kind=_choice(AccountKind, values.get("kind", "private"), "kind", errors),
        display_name=values.get("display_name", ""),
        imap_host=values.get("imap_host", ""),
        imap_port=_int_or_none(values.get("imap_port", ""), "imap_port", errors),
        imap_security=_choice(Security, values.get("imap_security", ""), "imap_security", errors),
        smtp_host=values.get("smtp_host", ""),
        smtp_port=_int_or_none(values.get("smtp_port", ""), "smtp_port", errors),
        smtp_security=_choice(Security, values.get("smtp_security", ""), "smtp_security", errors),
        attachment_limit_mb=_int_or_none(values.get("attachment_limit_mb", ""), "attachment_limit_mb", errors),
        sync_start=_choice(SyncStart, values.get("sync_start", "1m"), "sync_start", errors) or SyncStart.ONE_MONTH,
        default_visibility=values.get("default_visibility") or None,
        contact_policy=_choice(ContactPolicy, values.get("contact_policy", "sent"), "contact_policy", errors)
        or ContactPolicy.FROM_SENT,
        member_ids=members,
    )
    if errors:
        raise ValidationFailed(errors)
    return data


async def _form(
    deps: Deps,
    actor: Actor,
    values: dict[str, Any],
    *,
    errors=None,
    report=None,
    test_report=None,
    status: int = 200,
) -> Template:
    safe_values = {k: v for k, v in values.items() if k not in PASSWORD_FIELDS}
    kind = AccountKind.TEAM if values.get("kind") == "team" else AccountKind.PRIVATE
    return await page(
        deps,
        actor,
        "pages/accounts/form.html",
        nav="accounts",
        status=status,
        values=safe_values,
        errors=errors or {},
        report=report,
        test_report=test_report,
        presets=list(all_presets()),
        securities=[s.value for s in Security],
        sync_starts=list(SyncStart),
        contact_policies=list(ContactPolicy),
        visibilities=[v.value for v in visibilities_for(kind)],
        users=await workspace.list_users(deps, actor),
        preset=get_preset(safe_values.get("provider") or "other"),
        oauth_providers=oauth_sign_in.sign_in_providers(deps),
    )


@get("/", name="accounts_list")
async def accounts_list(deps: UseCases, actor: CurrentActor) -> Template:
    rows = await accounts.list_accounts(deps, actor)
    return await page(deps, actor, "pages/accounts/list.html", nav="accounts", rows=rows)


@get("/new", name="accounts_new")
async def accounts_new(
    deps: UseCases, actor: CurrentActor, provider: FromQuery[str] = "other", kind: FromQuery[str] = "private"
) -> Template:
    accounts.require_email_sync(actor)
    return await _form(deps, actor, _preset_values(provider, kind))


@post("/test", name="accounts_test_settings")
async def accounts_test_settings(request: HTMXRequest, deps: UseCases, actor: CurrentActor) -> Template:
    values = await form_data(request)
    try:
        data = _account_input(values, await form_list(request, "member_ids"))
        report = await accounts.test_connection(deps, actor, data)
        errors = {}
    except ValidationFailed as exc:
        report, errors = None, exc.errors
    if request.htmx:
        return Template("partials/connection_result.html", context={"report": report, "errors": errors})
    return await _form(deps, actor, values, errors=errors, test_report=report)


@post("/", name="accounts_connect")
async def accounts_connect(request: Request, deps: UseCases, actor: CurrentActor) -> Template | Redirect:
    values = await form_data(request)
    try:
        data = _account_input(values, await form_list(request, "member_ids"))
        view = await accounts.connect_account(deps, actor, data)
    except ConnectionFailed as exc:
        return await _form(deps, actor, values, report=exc.report, status=422)
    except (ValidationFailed, Conflict) as exc:
        errors = exc.errors if isinstance(exc, ValidationFailed) else {"address": error_message(exc)}
        return await _form(deps, actor, values, errors=errors, status=422)
    flash(request, _("%(address)s is connected.") % {"address": view.address}, "success")
    return see_other(f"/accounts/{view.id}")


async def _detail(
    deps: Deps, actor: Actor, account_id: uuid.UUID, report: ConnectionReport | None = None
) -> Template:
    account = await accounts.access_account(deps, actor, account_id)
    return await page(
        deps,
        actor,
        "pages/accounts/detail.html",
        nav="accounts",
        account=account,
        report=report,
        users=await workspace.list_users(deps, actor),
        preset=get_preset(account.provider),
        account_fields=asdict(account),
        health=await _health(deps, actor, account_id),
        oauth_providers=oauth_sign_in.sign_in_providers(deps),
    )


async def _health(deps: Deps, actor: Actor, account_id: uuid.UUID):
    """This account's sync health, if the actor reads its mail (owner, team member)."""
    try:
        found = await sync_status.statuses_for(deps, actor, account_id)
    except NotFound:
        return None
    return found[0] if found else None


@get("/{account_id:uuid}/sync", name="accounts_sync_health")
async def accounts_sync_health(deps: UseCases, actor: CurrentActor, account_id: FromPath[uuid.UUID]) -> Template:
    """The sync card alone: polled while an initial sync runs, so its bar moves live."""
    await accounts.access_account(deps, actor, account_id)
    return Template("partials/sync_health.html", context={"health": await _health(deps, actor, account_id)})


@get("/{account_id:uuid}", name="accounts_detail")
async def accounts_detail(deps: UseCases, actor: CurrentActor, account_id: FromPath[uuid.UUID]) -> Template:
    return await _detail(deps, actor, account_id)


@post("/{account_id:uuid}/test", name="accounts_test")
async def accounts_test(
    request: HTMXRequest, deps: UseCases, actor: CurrentActor, account_id: FromPath[uuid.UUID]
) -> Template:
    report = await accounts.test_account(deps, actor, account_id)
    if request.htmx:
        return Template("partials/connection_result.html", context={"report": report, "errors": {}})
    return await _detail(deps, actor, account_id, report)


@post("/{account_id:uuid}/members", name="accounts_members")
async def accounts_members(
    request: Request, deps: UseCases, actor: CurrentActor, account_id: FromPath[uuid.UUID]
) -> Redirect:
    try:
        member_ids = [uuid.UUID(v) for v in await form_list(request, "member_ids")]
        await accounts.set_team_members(deps, actor, account_id, member_ids)
        flash(request, _("Members saved."), "success")
    except ValueError:
        flash(request, _("Choose members from the list."), "error")
    except ValidationFailed as exc:
        flash(request, error_message(exc), "error")
    return see_other(f"/accounts/{account_id}")


@post("/{account_id:uuid}/delete", name="accounts_delete")
async def accounts_delete(
    request: Request, deps: UseCases, actor: CurrentActor, account_id: FromPath[uuid.UUID]
) -> Redirect:
    await accounts.disconnect_account(deps, actor, account_id)
    flash(request, _("The account is disconnected."), "success")
    return see_other("/accounts")


async def plan_gate(request: Request) -> Template | None:
    """A company below the Growth plan sees why, not a broken page."""
    actor = actor_of(request)
    if actor is None or actor.can_sync_email:
        return None
    deps: UseCases = request.app.state.deps
    return await page(
        deps,
        actor,
        "pages/plan_gate.html",
        nav="accounts",
        status=402,
        feature=_("Email sync"),
        plan=EMAIL_SYNC_MINIMUM_PLAN.value,
    )


ROUTES = [
    Router(
        "/accounts",
        before_request=plan_gate,
        route_handlers=[
            accounts_list,
            accounts_new,
            accounts_test_settings,
            accounts_connect,
            accounts_detail,
            accounts_sync_health,
            accounts_test,
            accounts_members,
            accounts_delete,
        ],
        guards=[logged_in],
        include_in_schema=False,
    )
]
