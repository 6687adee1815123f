"""Writing mail: new, reply, reply all, forward; send with a short hold so it can be undone.

The form posts to the outbox use case (``services.outbox``): the message is
committed, with its Message-ID, before any network call, and held for
``SALESINBOX_UNDO_SEND_SECONDS`` (10 by default) as "scheduled"; the outbox
worker sends it when the hold ends, unless "Undo" removed it first. A hold of
0 queues it at once, with no undo.

The same form saves a draft (``services.drafts``): "Save draft" posts it to
``/drafts`` without JavaScript; with it, ``frontend/src/compose.js`` posts it
there a few seconds after typing stops and shows the answer (JSON). Sending a
draft removes it. Rich text arrives as ``html`` (``format=html``), cleaned by
the services before it is stored or sent.
"""

from __future__ import annotations

import datetime as dt
import uuid

from litestar import Request, Router, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.response import Redirect, Response, Template

from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.mime.compose_html import text_as_html
from salesinbox.services import accounts, contacts, drafts, outbox
from salesinbox.web.auth import logged_in
from salesinbox.web.i18n import _, localize, localize_errors
from salesinbox.web.params import CurrentActor, UseCases
from salesinbox.web.routes._render import lines, page, safe_next, see_other
from salesinbox.web.routes.pages_accounts import plan_gate

FIELDS = ("account_id", "to", "cc", "bcc", "subject", "text", "html", "format", "in_reply_to", "draft_id")


async def _form(deps, actor, values: dict[str, str], errors: dict[str, str], status: int = 200) -> Template:
    if status != 200 and values.get("draft_id"):  # a form sent back: never echo an id that is not the actor's
        values["draft_id"] = await _own_draft_id(deps, actor, values["draft_id"])
    values.setdefault("format", "html" if values.get("html") else "text")
    if not values.get("html") and values.get("text"):
        values["html"] = text_as_html(values["text"])  # ready for the editor when the user turns rich text on
    return await page(
        deps,
        actor,
        "pages/compose.html",
        nav="inbox",
        status=status,
        values=values,
        errors=errors,
        sending_accounts=await accounts.list_accounts(deps, actor),
        contacts=[e for p in await contacts.list_persons(deps, actor, limit=500) for e in p.emails],
    )


@get("/compose", name="compose")
async def compose(
    deps: UseCases,
    actor: CurrentActor,
    reply_to: FromQuery[uuid.UUID | None] = None,
    mode: FromQuery[str] = "reply",
    to: FromQuery[str] = "",
    draft: FromQuery[uuid.UUID | None] = None,
) -> Template:
    """A new email (``to`` prefilled, as from a deal's Email tab), a reply, reply all or forward, or a draft."""
    values: dict[str, str] = {"to": to[:2000]} if to else {}
    if draft is not None:
        values = _draft_values(await drafts.get_draft(deps, actor, draft))
    elif reply_to is not None:
        mode = mode if mode in ("reply", "reply_all", "forward") else "reply"
        draft = await outbox.draft_for(deps, actor, reply_to, mode)
        values = {
            "account_id": str(draft.account_id or ""),
            "to": draft.to,
            "cc": draft.cc,
            "subject": draft.subject,
            "text": draft.text,
            "in_reply_to": str(draft.in_reply_to or ""),
        }
    return await _form(deps, actor, values, {})


@post("/compose", name="compose_send")
async def compose_send(request: Request, deps: UseCases, actor: CurrentActor) -> Template | Redirect:
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in (*FIELDS, "send_at", "tz_offset")}
    files = [f for f in form.getall("attachments", []) if isinstance(f, UploadFile) and f.filename]
    errors: dict[str, str] = {}
    try:
        account_id = uuid.UUID(values["account_id"])
    except ValueError:
        errors["account_id"] = _("Choose the account to send from.")
    in_reply_to = None
    if values["in_reply_to"]:
        try:
            in_reply_to = uuid.UUID(values["in_reply_to"])
        except ValueError:
            errors["_form"] = _("The message you reply to is not there any more.")
    hold = request.app.state.undo_send_seconds
    send_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=hold) if hold else None
    if values["send_at"]:
        later = _send_at(values["send_at"], values["tz_offset"])
        if later is None:
            errors["send_at"] = _("Enter a date and time.")
        elif later <= dt.datetime.now(dt.UTC):
            errors["send_at"] = _("Choose a time in the future.")
        else:
            send_at = later
    if errors:
        return await _form(deps, actor, values, errors, status=422)
    attachments = [
        outbox.Attachment(f.filename, f.content_type or "application/octet-stream", await f.read()) for f in files
    ]
    outgoing = outbox.OutgoingMessage(
        account_id=account_id,
        to=lines(values["to"]),
        cc=lines(values["cc"]),
        bcc=lines(values["bcc"]),
        subject=values["subject"],
        text="" if _rich(values) else values["text"],
        html=values["html"] if _rich(values) else None,
        in_reply_to=in_reply_to,
        send_at=send_at,
        attachments=attachments,
    )
    try:
        queued = await outbox.enqueue(deps, actor, outgoing, idempotency_key=str(form.get("idempotency_key", "")))
    except ValidationFailed as exc:
        errors = dict(exc.errors)
        if "in_reply_to" in errors:  # not one of this user's messages: drop the reference, say so
            values["in_reply_to"] = ""
            errors["_form"] = errors.pop("in_reply_to")
        return await _form(deps, actor, values, errors, status=422)
    await _sent_draft(deps, actor, values["draft_id"])
    if values["send_at"]:
        flash(request, _("Scheduled. It waits in the Outbox until then."), "success")
        return Redirect("/inbox/outbox", status_code=303)
    return Redirect(f"/inbox/sent?sending={queued.id}", status_code=303)


def _rich(values: dict[str, str]) -> bool:
    return values.get("format") == "html" and bool(values.get("html", "").strip())


def _draft_values(draft: drafts.DraftView) -> dict[str, str]:
    return {
        "draft_id": str(draft.id),
        "account_id": str(draft.account_id),
        "to": draft.to,
        "cc": draft.cc,
        "bcc": draft.bcc,
        "subject": draft.subject,
        "text": draft.text,
        "html": draft.html or "",
        "format": "html" if draft.html else "text",
        "in_reply_to": str(draft.in_reply_to or ""),
    }


async def _sent_draft(deps, actor, draft_id: str) -> None:
    """The message is in the outbox: its draft goes (from the server too, now or by the outbox worker)."""
    try:
        await drafts.discard_draft(deps, actor, uuid.UUID(draft_id))
    except (ValueError, NotFound):
        pass  # no draft, or already gone (sent from another tab)


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


async def _own_draft_id(deps, actor, draft_id: str) -> str:
    found = _uuid_or_none(draft_id)
    try:
        return str((await drafts.get_draft(deps, actor, found)).id) if found else ""
    except NotFound:
        return ""


@post("/drafts", name="draft_save")
async def draft_save(request: Request, deps: UseCases, actor: CurrentActor) -> Template | Redirect | Response:
    """Save the compose form as a draft: JSON for the autosave script, else back to the form."""
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in FIELDS}
    wants_json = request.headers.get("accept", "").startswith("application/json")
    account_id = _uuid_or_none(values["account_id"])
    try:
        if account_id is None:
            raise ValidationFailed({"account_id": _("Choose the account to send from.")})
        saved = await drafts.save_draft(deps, actor, _uuid_or_none(values["draft_id"]), drafts.DraftInput(
            account_id=account_id, to=values["to"], cc=values["cc"], bcc=values["bcc"], subject=values["subject"],
            text=values["text"], html=values["html"] if _rich(values) else None,
            in_reply_to=_uuid_or_none(values["in_reply_to"])))
    except ValidationFailed as exc:
        if wants_json:
            return Response({"errors": localize_errors(exc.errors)}, status_code=422)
        return await _form(deps, actor, values, dict(exc.errors), status=422)
    status = _("Saved") if saved.on_server else _("Saved here; not on the mail server yet")
    if wants_json:
        return Response({"id": str(saved.id), "version": saved.version, "on_server": saved.on_server,
                         "status": status, "url": f"/compose?draft={saved.id}"})
    flash(request, status, "success" if saved.on_server else "error")
    return Redirect(f"/compose?draft={saved.id}", status_code=303)


@post("/drafts/{draft_id:uuid}/discard", name="draft_discard")
async def draft_discard(
    request: Request, deps: UseCases, actor: CurrentActor, draft_id: FromPath[uuid.UUID]
) -> Redirect:
    await drafts.discard_draft(deps, actor, draft_id)
    flash(request, _("Draft discarded."), "success")
    return Redirect("/inbox/drafts", status_code=303)


@post("/drafts/from-message/{message_id:uuid}", name="draft_from_message")
async def draft_from_message(deps: UseCases, actor: CurrentActor, message_id: FromPath[uuid.UUID]) -> Redirect:
    """"Edit" on a message in a Drafts folder: open it in compose (a draft of ours, or one another client left)."""
    draft_id = await drafts.edit_synced_draft(deps, actor, message_id)
    return Redirect(f"/compose?draft={draft_id}", status_code=303)


def _send_at(local: str, offset_minutes: str) -> dt.datetime | None:
    """A datetime-local value typed in the browser, made UTC with the browser's offset (JS getTimezoneOffset)."""
    try:
        naive = dt.datetime.fromisoformat(local)
        offset = int(offset_minutes or 0)
    except ValueError:
        return None
    if naive.tzinfo is not None or not -1000 < offset < 1000:
        return None
    return (naive + dt.timedelta(minutes=offset)).replace(tzinfo=dt.UTC)


@post("/outbox/{outbound_id:uuid}/undo", name="outbox_undo")
async def outbox_undo(
    request: Request, deps: UseCases, actor: CurrentActor, outbound_id: FromPath[uuid.UUID]
) -> Redirect:
    if await outbox.cancel(deps, actor, outbound_id):
        flash(request, _("Not sent."), "success")
    else:
        flash(request, _("Too late to undo: the message is on its way."), "error")
    form = await request.form()
    return see_other(safe_next(str(form.get("next", "")), "/inbox/inbox"))


@post("/outbox/{outbound_id:uuid}/edit", name="outbox_edit")
async def outbox_edit(
    request: Request, deps: UseCases, actor: CurrentActor, outbound_id: FromPath[uuid.UUID]
) -> Redirect:
    """A message scheduled for later goes back to compose as a draft (and is no longer scheduled)."""
    try:
        draft = await drafts.draft_from_scheduled(deps, actor, outbound_id)
    except ValidationFailed as exc:
        flash(request, localize(exc.errors.get("outbound", _("It can no longer be edited."))), "error")
        return see_other("/inbox/outbox")
    flash(request, _("No longer scheduled: edit it, then send it or choose a time again."), "success")
    return see_other(f"/compose?draft={draft.id}")


ROUTES = [
    Router(
        "/",
        before_request=plan_gate,
        route_handlers=[
            compose, compose_send, outbox_undo, outbox_edit, draft_save, draft_discard, draft_from_message,
        ],
        guards=[logged_in],
        include_in_schema=False,
    )
]
