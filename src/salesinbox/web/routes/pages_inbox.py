"""The Sales Inbox, read path: folders, conversation list, reading pane, live updates.

Three panes on one page. The list and the reading pane are also served as
fragments for htmx (``HX-Request``), with real URLs pushed to the history so
Back, reload and bookmarks work:

    /inbox/{folder}                      list, nothing open
    /inbox/{folder}/{conversation_id}    list + the conversation open
    /inbox/{folder}/list                 the list fragment (paging, live refresh)
    /inbox/events                        Server-Sent Events: "mail" when what the user sees changed
    /messages/{message_id}/body          a message's HTML, sanitised, for the sandboxed frame

Received HTML is never put into our page: it is sanitised (nh3) and served as
its own document under a CSP that allows no script and, until the user asks,
no remote loads; the reading pane shows it in ``<iframe sandbox>`` without
allow-scripts or allow-same-origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from litestar import Request, Response, Router, get, post
from litestar.channels import ChannelsPlugin
from litestar.params import FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage

from salesinbox.domain.errors import NotFound
from salesinbox.domain.text import Text
from salesinbox.services import accounts, actions, conversations, drafts, labels, outbox, sync_status
from salesinbox.services.conversations import FOLDERS
from salesinbox.services.unit_of_work import MAIL_CHANNEL
from salesinbox.web.auth import logged_in
from salesinbox.web.i18n import _
from salesinbox.web.params import CurrentActor, UseCases
from salesinbox.web.routes._render import page
from salesinbox.web.routes.pages_accounts import plan_gate
from salesinbox.web.routes.pages_labels import report_words
from salesinbox.web.routes.pages_links import link_choices

PAGE_SIZE = 50
log = logging.getLogger(__name__)
_NOT_SCHEME = re.compile(r"[^a-z]")
_NOT_HOST = re.compile(r"[^A-Za-z0-9.:\[\]-]")
SHOWN_FOLDERS = ("inbox", "needs_linking", "sent", "outbox", "drafts", "archive", "trash", "junk")


def folder_names() -> dict[str, str]:
    return {
        "inbox": _("Inbox"),
        "needs_linking": _("Needs linking"),
        "sent": _("Sent"),
        "outbox": _("Outbox"),
        "drafts": _("Drafts"),
        "archive": _("Archive"),
        "trash": _("Trash"),
        "junk": _("Junk"),
    }


def _folder(folder: str) -> str:
    if folder not in (*FOLDERS, "outbox", conversations.NEEDS_LINKING):
        raise NotFound(Text("No such folder."))
    return folder


def _filters(request: Request) -> tuple[conversations.Filters, dict[str, str]]:
    """The list filters from the URL (so they survive reloads, links and Back), and their raw values."""
    raw = {
        k: request.query_params.get(k, "")
        for k in ("unread", "attachments", "account", "participant", "after", "before", "label")
    }

    def day(text: str):
        try:
            return dt.date.fromisoformat(text) if text else None
        except ValueError:
            return None

    try:
        account = uuid.UUID(raw["account"]) if raw["account"] else None
    except ValueError:
        account = None
    filters = conversations.Filters(
        unread=True if raw["unread"] == "1" else None,
        has_attachments=True if raw["attachments"] == "1" else None,
        account_id=account,
        participant=raw["participant"],
        after=day(raw["after"]),
        before=day(raw["before"]),
        label=raw["label"],
    )
    return filters, {k: v for k, v in raw.items() if v}


async def _list_context(deps, actor, folder: str, q: str, page_number: int, request: Request | None = None) -> dict:
    page_number = max(page_number, 1)
    if folder == "outbox":
        return {
            "folder": folder,
            "folder_name": folder_names()[folder],
            "q": "",
            "page_number": 1,
            "conversations": [],
            "outgoing": await outbox.list_outbox(deps, actor),
            "has_next": False,
            "filters": {},
            "filter_query": "",
        }
    filters, raw = _filters(request) if request is not None else (conversations.Filters(), {})
    if filters.account_id is not None and filters.account_id not in {
        a.id for a in await accounts.list_accounts(deps, actor)
    }:
        raw.pop("account", None)  # not one of the user's accounts: it lists nothing, and is not echoed back
    rows = await conversations.list_conversations(
        deps,
        actor,
        folder=folder,
        query=q,
        limit=PAGE_SIZE + 1,
        offset=(page_number - 1) * PAGE_SIZE,
        filters=filters,
    )
    return {
        "folder": folder,
        "folder_name": folder_names()[folder],
        "q": q,
        "page_number": page_number,
        # Drafts being written here, listed at once (the synced Drafts folder shows them after the next pass).
        "saved_drafts": await drafts.list_drafts(deps, actor) if folder == "drafts" and page_number == 1 else [],
        "conversations": rows[:PAGE_SIZE],
        "has_next": len(rows) > PAGE_SIZE,
        "filters": raw,
        "filter_query": urlencode(raw),
    }


async def _inbox_page(
    deps, actor, folder: str, q: str, page_number: int, conversation_id: uuid.UUID | None, sending=None, request=None
):
    context = await _list_context(deps, actor, folder, q, page_number, request)
    if sending is not None:
        try:
            sending = await outbox.get_outbound(deps, actor, sending)
        except NotFound:
            sending = None
    opened = await _in_inbox(deps, actor, conversation_id) if conversation_id else None
    return await page(
        deps,
        actor,
        "pages/inbox/inbox.html",
        nav="inbox",
        folders=SHOWN_FOLDERS,
        folder_names=folder_names(),
        unread=await conversations.unread_counts(deps, actor),
        health=await sync_status.statuses_for(deps, actor),
        sending_accounts=await accounts.list_accounts(deps, actor),
        opened=opened,
        sending=sending,
        link_choices=await link_choices(deps, actor) if opened else {},
        all_labels=await labels.list_labels(deps, actor),
        **context,
    )


async def _in_inbox(deps, actor, conversation_id: uuid.UUID) -> conversations.ConversationView:
    """A conversation of the actor's own accounts: one shared with them is read on its items, not here."""
    opened = await conversations.get_conversation(deps, actor, conversation_id)
    if not opened.in_inbox:
        raise NotFound(Text("No such conversation."))
    return opened


@get("/inbox", name="inbox_home")
async def inbox_home() -> Redirect:
    return Redirect("/inbox/inbox", status_code=303)


@get("/inbox/{folder:str}", name="inbox_folder")
async def inbox_folder(
    request: HTMXRequest,
    deps: UseCases,
    actor: CurrentActor,
    folder: FromPath[str],
    q: FromQuery[str] = "",
    page_number: FromQuery[int] = 1,
    sending: FromQuery[uuid.UUID | None] = None,
) -> Template:
    folder = _folder(folder)
    if request.htmx and request.htmx.target == "conversation-list":
        context = await _list_context(deps, actor, folder, q, page_number, request)
        return Template("pages/inbox/_list.html", context={**context, "fragment": True})
    return await _inbox_page(deps, actor, folder, q, page_number, None, sending, request)


@get("/inbox/{folder:str}/list", name="inbox_list")
async def inbox_list(
    request: Request,
    deps: UseCases,
    actor: CurrentActor,
    folder: FromPath[str],
    q: FromQuery[str] = "",
    page_number: FromQuery[int] = 1,
) -> Template:
    # The live refresh's own answer leaves #list-refresh in place: a refresh queued behind it stays on a live element.
    context = await _list_context(deps, actor, _folder(folder), q, page_number, request)
    return Template("pages/inbox/_list.html", context={**context, "fragment": True, "live_refresh": True})


@get("/inbox/{folder:str}/{conversation_id:uuid}", name="inbox_conversation")
async def inbox_conversation(
    request: HTMXRequest,
    deps: UseCases,
    actor: CurrentActor,
    folder: FromPath[str],
    conversation_id: FromPath[uuid.UUID],
    q: FromQuery[str] = "",
    page_number: FromQuery[int] = 1,
) -> Template:
    folder = _folder(folder)
    if request.htmx and request.htmx.target == "reading-pane":
        opened = await _in_inbox(deps, actor, conversation_id)
        _mark_read_later(deps, actor, opened)
        return Template(
            "pages/inbox/_conversation.html",
            context={
                "opened": opened,
                "folder": folder,
                "q": q,
                "page_number": page_number,
                "link_choices": await link_choices(deps, actor),
                "all_labels": await labels.list_labels(deps, actor),
            },
        )
    response = await _inbox_page(deps, actor, folder, q, page_number, conversation_id, request=request)
    _mark_read_later(deps, actor, response.context["opened"])
    return response


_marking: set[asyncio.Task] = set()


def _mark_read_later(deps, actor, opened) -> None:
    """Opening an unread conversation marks it read, on the server too; the page does not wait for IMAP."""
    if opened is None or not any(m.unread for m in opened.messages):
        return

    async def mark() -> None:
        try:
            await actions.set_read(deps, actor, opened.id, True)
        except Exception:  # the server said no or went away: it stays unread, nothing is lost
            log.warning("could not mark a conversation read", exc_info=True)

    task = asyncio.create_task(mark())
    _marking.add(task)
    task.add_done_callback(_marking.discard)


@get("/inbox/events", name="inbox_events")
async def inbox_events(request: Request, deps: UseCases, actor: CurrentActor) -> ServerSentEvent:
    """One stream per tab: a "mail" event whenever the synced mail this user sees changed.

    The version lives in the database, so a pass run by any process is seen.
    It is read again when a "new mail" event names the user's company
    (Litestar Channels: in memory embedded, PostgreSQL LISTEN scaled out) and
    at least every ``live_poll_seconds`` whatever came.
    """
    channels: ChannelsPlugin = request.app.plugins.get(ChannelsPlugin)
    every = request.app.state.live_poll_seconds

    async def changes() -> AsyncIterator[ServerSentEventMessage]:
        async with channels.start_subscription([MAIL_CHANNEL]) as subscriber:  # listening before "ready"
            seen = await conversations.inbox_version(deps, actor)
            yield ServerSentEventMessage(event="ready", data=seen, id=seen, retry=3000)
            nudged = asyncio.Event()
            listening = asyncio.create_task(_nudge_on_mail(subscriber, str(actor.company_id), nudged))
            try:
                while True:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(nudged.wait(), every)
                    nudged.clear()
                    now = await conversations.inbox_version(deps, actor)
                    if now != seen:
                        seen = now
                        yield ServerSentEventMessage(event="mail", data=now, id=now)
            finally:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)

    return ServerSentEvent(changes(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _nudge_on_mail(subscriber, company_id: str, nudged: asyncio.Event) -> None:
    async for payload in subscriber.iter_events():
        if company_id in payload.decode().split(","):
            nudged.set()


def _proxy_builder(request: Request):
    from salesinbox.services import image_proxy

    deps = request.app.state.deps
    return lambda url: image_proxy.proxy_url(deps, url)


@get("/messages/{message_id:uuid}/body", name="message_body")
async def message_body(
    request: Request, deps: UseCases, actor: CurrentActor, message_id: FromPath[uuid.UUID], images: FromQuery[int] = 0
) -> Response:
    body = await conversations.message_html(deps, actor, message_id, proxy=_proxy_builder(request) if images else None)
    html = body.html if body else ""
    if body and body.folded_html:
        html += f'<details class="si-quoted"><summary>···</summary>{body.folded_html}</details>'
    base = request.base_url
    # Goes into a header value: only what a scheme and a host:port can hold.
    scheme, host = _NOT_SCHEME.sub("", base.scheme), _NOT_HOST.sub("", base.netloc)
    origin = f"{scheme}://{host}"
    image_sources = f"data: {origin}/proxy/image {origin}/attachments/" if images else f"data: {origin}/attachments/"
    policy = (
        f"default-src 'none'; img-src {image_sources}; style-src 'unsafe-inline'; font-src data:; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox allow-popups "
        "allow-popups-to-escape-sandbox"
    )
    document = (
        '<!doctype html><html><head><meta charset="utf-8"><base target="_blank">'
        "<style>body{margin:0;padding:4px 2px;font:14px/1.45 system-ui,sans-serif;color:#1f2328;"
        "overflow-wrap:anywhere}img{max-width:100%;height:auto}"
        "blockquote{margin:0;margin-inline-start:.8em;padding-inline-start:.8em;border-inline-start:2px solid #cfd4db;"
        "color:#3d4550}details.si-quoted summary{cursor:pointer;color:#5b6470}"
        # Direction per block (Arabic, Hebrew, Persian, Urdu next to English), unless the sender set one.
        ":where(p,div,li,dd,dt,td,th,blockquote,pre,h1,h2,h3,h4,h5,h6,summary):not([dir]):not(body [dir] *)"
        "{unicode-bidi:plaintext}"
        '</style></head><body dir="auto">' + html + "</body></html>"
    )
    return Response(
        document,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "SAMEORIGIN",
        },
    )


_ACTIONS = {
    "archive": (actions.archive, lambda: _("Archived.")),
    "trash": (actions.trash, lambda: _("Moved to Trash.")),
    "restore": (actions.restore, lambda: _("Moved back to the Inbox.")),
    "unarchive": (actions.unarchive, lambda: _("Moved back to the Inbox.")),
}


@post("/inbox/{folder:str}/{conversation_id:uuid}/{action:str}", name="inbox_action")
async def inbox_action(
    request: HTMXRequest,
    deps: UseCases,
    actor: CurrentActor,
    folder: FromPath[str],
    conversation_id: FromPath[uuid.UUID],
    action: FromPath[str],
) -> Response:
    """Archive, delete, restore, read, unread: done on the mail server, then back to the list."""
    folder = _folder(folder)
    if action in ("read", "unread"):
        report = await actions.set_read(deps, actor, conversation_id, action == "read")
        done = _("Marked as read.") if action == "read" else _("Marked as unread.")
    elif action in _ACTIONS:
        run, words = _ACTIONS[action]
        report = await run(deps, actor, conversation_id)
        done = words()
    else:
        raise NotFound(Text("No such action."))
    if report.skipped_folders:
        words = _("Not everything changed: the server renumbered %(folders)s; try again after the next sync.")
        flash(request, words % {"folders": ", ".join(report.skipped_folders)}, "error")
    else:
        flash(request, done, "success")
    target = f"/inbox/{folder}"
    if request.htmx:
        return Response(None, status_code=204, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


_BULK_WORDS = {
    "archive": lambda: _("Archived."),
    "trash": lambda: _("Moved to Trash."),
    "restore": lambda: _("Moved back to the Inbox."),
    "unarchive": lambda: _("Moved back to the Inbox."),
    "read": lambda: _("Marked as read."),
    "unread": lambda: _("Marked as unread."),
}


@post("/inbox/{folder:str}/bulk", name="inbox_bulk")
async def inbox_bulk(request: Request, deps: UseCases, actor: CurrentActor, folder: FromPath[str]) -> Response:
    """One action on the chosen conversations (form: ``action``, ``ids`` repeated), on the mail server.

    Scoped like the single actions: one id the user cannot see and nothing is
    done (404). A form post goes back to the folder with a flash; a script
    asking for JSON (the keyboard's undoable archive and delete) gets the words.
    """
    folder = _folder(folder)
    form = await request.form()
    action = str(form.get("action", ""))
    if action not in _BULK_WORDS and action not in ("label", "unlabel"):
        raise NotFound(Text("No such action."))
    try:
        ids = [uuid.UUID(str(value)) for value in form.getall("ids", [])]
    except ValueError:
        raise NotFound(Text("No such conversation.")) from None
    if action in ("label", "unlabel"):
        message, ok = await _label_many(deps, actor, action, ids, str(form.get("label", "")))
        return _bulk_answer(request, folder, message, ok)
    report = await actions.act_on_many(deps, actor, action, ids)
    if report.skipped_folders:
        words = _("Not everything changed: the server renumbered %(folders)s; try again after the next sync.")
        message, ok = words % {"folders": ", ".join(report.skipped_folders)}, False
    elif action == "trash" and folder == "trash":
        message, ok = _("Deleted forever."), True
    else:
        message, ok = _BULK_WORDS[action](), True
    return _bulk_answer(request, folder, message, ok)


def _bulk_answer(request: Request, folder: str, message: str, ok: bool) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return Response({"ok": ok, "message": message}, status_code=200, headers={"Cache-Control": "no-store"})
    flash(request, message, "success" if ok else "error")
    return Redirect(f"/inbox/{folder}", status_code=303)


async def _label_many(deps, actor, action: str, ids: list[uuid.UUID], label: str) -> tuple[str, bool]:
    """The bulk toolbar's "Label" / "Remove label": one label (by id) on or off the chosen conversations."""
    try:
        label_id = uuid.UUID(label)
    except ValueError:
        return _("Choose a label."), False
    report = await labels.label_many(deps, actor, ids, label_id, add=action == "label")
    done = _("Label added.") if action == "label" else _("Label removed.")
    return report_words(report, done)


ROUTES = [
    Router(
        "/",
        before_request=plan_gate,
        route_handlers=[
            inbox_home,
            inbox_events,
            inbox_list,
            inbox_conversation,
            inbox_folder,
            inbox_action,
            inbox_bulk,
            message_body,
        ],
        guards=[logged_in],
        include_in_schema=False,
    )
]
