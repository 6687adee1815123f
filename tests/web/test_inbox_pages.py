"""The Sales Inbox pages over HTTP against the real app, with mail synced from a real Dovecot."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

import pytest

from salesinbox.services import sync
from tests.support.http import PageSession, has_testid, logged_in_session
from tests.support.mailboxes import connect_mailbox

HOSTILE = (
    '<p>Hi <b>there</b></p><script>alert(1)</script><img src="http://attacker.invalid/pixel.gif" onerror="alert(2)">'
)


def _mail(to: str, subject: str, text: str, html: str | None = None, attachment: bytes | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = "Jane Buyer <jane@customer.example>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(dt.datetime(2026, 10, 2, 9, tzinfo=dt.UTC))
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    if attachment:
        message.add_attachment(attachment, maintype="application", subtype="pdf", filename="offer.pdf")
    return bytes(message)


@pytest.fixture
async def synced(deps, tenant, dovecot, mailbox):
    dovecot.deliver(mailbox.address, _mail(mailbox.address, "Offer for Q4", "Please find the offer attached.",
                                           HOSTILE, attachment=b"%PDF-1.4 offer"))
    dovecot.deliver(mailbox.address, _mail(mailbox.address, "Lunch?", "Are you free on Friday, wombat?"))
    return Synced(await connect_mailbox(deps, tenant.admin, mailbox), mailbox.address)


@dataclass(frozen=True)
class Synced:
    account_id: object
    mailbox_address: str


@pytest.fixture
async def browser(live_server, tenant) -> AsyncIterator[PageSession]:
    session = await logged_in_session(live_server.url, tenant.admin_email, tenant.admin_password)
    yield session
    await session.aclose()


async def test_the_inbox_lists_folders_unread_counts_and_conversations(browser, synced):
    page = await browser.get("/inbox/inbox")
    assert page.status_code == 200
    html = page.text
    assert has_testid(html, "inbox") and has_testid(html, "folder-sent")
    assert 'data-testid="unread-inbox"' in html and ">2</span>" in html
    assert "Offer for Q4" in html and "Lunch?" in html and "attachment-mark" in html


async def test_a_conversation_opens_with_its_messages_and_attachments(browser, synced):
    listing = (await browser.get("/inbox/inbox", params={"q": "Offer"})).text
    assert "Offer for Q4" in listing and "Lunch?" not in listing
    link = listing.split('href="/inbox/inbox/', 1)[1].split('"', 1)[0].split("?", 1)[0]
    opened = await browser.get(f"/inbox/inbox/{link}")
    assert opened.status_code == 200
    assert has_testid(opened.text, "conversation-view") and "offer.pdf" in opened.text
    assert has_testid(opened.text, "show-images")  # the pixel from attacker.invalid is held back
    fragment = await browser.get(f"/inbox/inbox/{link}", headers={"HX-Request": "true", "HX-Target": "reading-pane"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and "conversation-view" in fragment.text


async def test_the_message_body_is_sanitised_and_served_under_a_strict_policy(browser, synced):
    listing = (await browser.get("/inbox/inbox", params={"q": "Offer"})).text
    link = listing.split('href="/inbox/inbox/', 1)[1].split('"', 1)[0].split("?", 1)[0]
    opened = (await browser.get(f"/inbox/inbox/{link}")).text
    body_path = opened.split('src="/messages/', 1)[1].split('"', 1)[0]
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in opened  # no allow-scripts, no same-origin
    body = await browser.get(f"/messages/{body_path}")
    assert body.status_code == 200
    assert "<script" not in body.text and "onerror" not in body.text and "attacker.invalid" not in body.text
    assert "<b>there</b>" in body.text
    policy = body.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy and "sandbox" in policy
    assert body.headers["x-content-type-options"] == "nosniff"


async def test_an_unknown_folder_is_404(browser, synced):
    assert (await browser.get("/inbox/nowhere")).status_code == 404


async def test_the_change_counter_moves_with_the_users_mail_and_not_with_another_companys(deps, tenant, synced,
                                                                                          dovecot, mailbox_factory):
    from salesinbox.services import conversations
    from tests.conftest import create_tenant

    before = await conversations.inbox_version(deps, tenant.admin)
    other = await create_tenant(deps, name="Other Ltd")
    box = mailbox_factory()
    dovecot.deliver(box.address, _mail(box.address, "Elsewhere", "their mail"))
    await connect_mailbox(deps, other.admin, box)
    assert await conversations.inbox_version(deps, tenant.admin) == before

    dovecot.deliver(synced.mailbox_address, _mail(synced.mailbox_address, "Mine", "my new mail"))
    await sync.sync_account_once(deps, synced.account_id)
    assert await conversations.inbox_version(deps, tenant.admin) != before


async def test_the_event_stream_announces_new_mail(live_server, browser, deps, synced, dovecot):
    import asyncio

    async with browser.http.stream("GET", "/inbox/events") as stream:
        lines = stream.aiter_lines()

        async def next_event() -> str:
            async for line in lines:
                if line.startswith("event:"):
                    return line.split(":", 1)[1].strip()
            return ""

        assert await asyncio.wait_for(next_event(), 10) == "ready"
        dovecot.deliver(synced.mailbox_address, _mail(synced.mailbox_address, "Live", "fresh"))
        await sync.sync_account_once(deps, synced.account_id)
        assert await asyncio.wait_for(next_event(), 15) == "mail"


async def test_filters_narrow_the_list_and_stay_in_the_url(browser, synced):
    both = (await browser.get("/inbox/inbox")).text
    assert "Offer for Q4" in both and "Lunch?" in both
    with_files = (await browser.get("/inbox/inbox", params={"attachments": "1"})).text
    assert "Offer for Q4" in with_files and "Lunch?" not in with_files
    assert "attachments=1" in with_files  # the live refresh and the pages keep the filter
    nobody = (await browser.get("/inbox/inbox", params={"participant": "nobody@nowhere.test"})).text
    assert 'data-testid="list-empty"' in nobody
    jane = (await browser.get("/inbox/inbox", params={"participant": "jane@customer", "unread": "1"})).text
    assert "Offer for Q4" in jane and "Lunch?" in jane
    later = (await browser.get("/inbox/inbox", params={"after": "2026-10-03"})).text
    assert 'data-testid="list-empty"' in later
    earlier = (await browser.get("/inbox/inbox", params={"before": "2026-10-02", "after": "2026-10-02"})).text
    assert "Offer for Q4" in earlier


async def test_send_later_waits_in_the_outbox_and_can_be_cancelled(browser, synced, deps, tenant):
    page = (await browser.get("/compose")).text
    key = page.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    form = {"account_id": str(synced.account_id), "to": "later@customer.example", "subject": "Next week",
            "text": "x", "send_at": "2099-01-05T09:30", "tz_offset": "-60", "idempotency_key": key}
    sent = await browser.post("/compose", form)
    assert sent.status_code == 303 and sent.headers["location"] == "/inbox/outbox"
    again = await browser.post("/compose", form)  # a double submit: the same key, one message
    assert again.status_code == 303
    outbox_page = (await browser.get("/inbox/outbox")).text
    assert outbox_page.count('data-testid="outgoing"') == 1 and "Next week" in outbox_page
    assert 'data-status="scheduled"' in outbox_page and "2099" in outbox_page
    [waiting] = await outbox_items(deps, tenant)
    assert waiting.send_at.isoformat().startswith("2099-01-05T08:30")  # 09:30 at UTC+1 is 08:30 UTC

    past = await browser.post("/compose", {**form, "send_at": "2001-01-01T10:00", "idempotency_key": "other"})
    assert past.status_code == 422 and "future" in past.text
    cancelled = await browser.post(f"/outbox/{waiting.id}/undo", {"next": "/inbox/outbox"})
    assert cancelled.status_code == 303 and cancelled.headers["location"] == "/inbox/outbox"
    assert await outbox_items(deps, tenant) == []


async def test_a_sent_message_is_held_for_the_configured_undo_time(browser, synced, deps, tenant, settings):
    from tests.support.server import LiveServer

    async def send(session, subject: str):
        page = (await session.get("/compose")).text
        key = page.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
        form = {"account_id": str(synced.account_id), "to": "held@customer.example", "subject": subject,
                "text": "x", "idempotency_key": key}
        answer = await session.post("/compose", form)
        assert answer.status_code == 303, answer.text
        [item] = [m for m in await outbox_items(deps, tenant) if m.subject == subject]
        return item, (await session.get(answer.headers["location"])).text

    before = dt.datetime.now(dt.UTC)
    held, page = await send(browser, "Held by default")
    assert held.status == "scheduled" and 'data-testid="undo-send"' in page
    assert dt.timedelta(seconds=9) <= held.send_at - before <= dt.timedelta(seconds=12)

    server = LiveServer(settings.model_copy(update={"undo_send_seconds": 0})).start()  # SALESINBOX_UNDO_SEND_SECONDS=0
    try:
        session = await logged_in_session(server.url, tenant.admin_email, tenant.admin_password)
        try:
            at_once, page = await send(session, "Not held")
        finally:
            await session.aclose()
    finally:
        server.stop()
    assert at_once.status == "queued" and 'data-testid="undo-send"' not in page  # no worker here: it waits


async def outbox_items(deps, tenant):
    from salesinbox.services import outbox

    return await outbox.list_outbox(deps, tenant.admin)


async def test_opening_an_unread_conversation_marks_it_read_on_the_server(browser, synced, deps, tenant, mailbox):
    import asyncio

    from salesinbox.services import conversations
    from tests.integration.test_actions import server_flags

    [lunch] = [c for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")
               if c.subject == "Lunch?"]
    assert lunch.unread
    assert (await browser.get(f"/inbox/inbox/{lunch.id}")).status_code == 200
    for _ in range(50):
        if b"\\Seen" in server_flags(mailbox, "INBOX")["Lunch?"]:
            break
        await asyncio.sleep(0.1)
    assert b"\\Seen" in server_flags(mailbox, "INBOX")["Lunch?"]
    [lunch] = [c for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")
               if c.subject == "Lunch?"]
    assert not lunch.unread


async def test_chosen_conversations_are_archived_together_and_come_back_together(browser, synced, deps, tenant,
                                                                               mailbox):
    from salesinbox.services import conversations
    from tests.integration.test_actions import server_flags

    ids = [str(c.id) for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")]
    await browser.get("/inbox/inbox")
    answer = await browser.post("/inbox/inbox/bulk", {"action": "archive", "ids": ids},
                                headers={"Accept": "application/json"})
    assert answer.status_code == 200 and answer.json() == {"ok": True, "message": "Archived."}
    assert set(server_flags(mailbox, "Archive")) == {"Offer for Q4", "Lunch?"} and server_flags(mailbox, "INBOX") == {}

    undone = await browser.post("/inbox/inbox/bulk", {"action": "unarchive", "ids": ids})  # a form, no script
    assert undone.status_code == 303 and undone.headers["location"] == "/inbox/inbox"
    assert set(server_flags(mailbox, "INBOX")) == {"Offer for Q4", "Lunch?"}
    assert (await browser.post("/inbox/inbox/bulk", {"action": "explode", "ids": ids})).status_code == 404
    assert (await browser.post("/inbox/inbox/bulk", {"action": "read", "ids": ["not-an-id"]})).status_code == 404
    assert (await browser.post("/inbox/inbox/bulk", {"action": "read"})).status_code == 422
