"""Rich text and drafts in a real browser, against the real app and Dovecot: type, stop, and the draft is in
the server's Drafts folder (once, however often it is saved); reload compose from the draft, send it, and it
leaves Drafts and arrives as HTML with a plain-text part; without JavaScript "Save draft" still keeps it."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
from imapclient import IMAPClient
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import app_on_empty_database, screenshot
from tests.browser.test_first_steps import fill_account, log_in
from tests.browser.test_inbox import set_up
from tests.rig.plugin import new_mailbox, wait_until
from tests.support.server import LiveServer

pytestmark = pytest.mark.browser


def messages_in(box, folder: str) -> list[email.message.EmailMessage]:
    with IMAPClient(box.imap_host, port=box.imap_port, ssl=False, timeout=10) as client:
        client.login(box.login, box.password)
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        fetched = client.fetch(uids, [b"BODY.PEEK[]"]).values() if uids else []
        # A copy the app removes between SEARCH and FETCH answers with no body (NIL): it is gone.
        return [email.message_from_bytes(d[b"BODY[]"], policy=policy.default) for d in fetched if d.get(b"BODY[]")]


@pytest.fixture(scope="module")
def box(dovecot, smtp_server, backend):
    """A mailbox of its own for each backend's run (the Drafts folder is counted)."""
    return new_mailbox(dovecot, smtp_server)


@pytest.fixture(scope="module")
def server(backend: str, workdir: Path, browser: Browser, box) -> Iterator[LiveServer]:
    """The app with its embedded sync, set up, with ``box`` connected."""
    with app_on_empty_database(backend, workdir, "drafts", run_sync=True) as live:
        context = browser.new_context(locale="en-GB")
        context.set_default_timeout(15_000)
        page = context.new_page()
        set_up(page, live.url)
        page.goto(live.url + "/accounts/new")
        fill_account(page, box, box.password)
        page.get_by_test_id("connect").click()
        expect(page.get_by_test_id("sync-counts")).to_contain_text("messages", timeout=45_000)
        context.close()
        yield live


def test_a_draft_typed_in_rich_text_is_saved_on_the_server_reopened_and_sent(page: Page, server, box, dovecot,
                                                                             smtp_server, backend):
    customer = new_mailbox(dovecot, smtp_server)
    log_in(page, server.url)
    page.goto(server.url + "/compose")
    page.get_by_test_id("field-to").fill(customer.address)
    page.get_by_test_id("field-subject").fill("Rich offer")
    editor = page.get_by_test_id("rich-editor-content")
    editor.click()
    page.keyboard.type("Dear Ana, ")
    page.keyboard.press("Control+b")
    page.keyboard.type("our best price")
    page.keyboard.press("Control+b")
    page.keyboard.type(" is below.")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Bulleted list").click()
    page.keyboard.type("Licences: 40")
    page.keyboard.press("Enter")
    page.keyboard.type("Support: included")
    expect(page.get_by_test_id("draft-status")).to_have_text("Saved", timeout=15_000)
    expect(page).to_have_url(re.compile(r"/compose\?draft="))
    screenshot(page, "compose-rich-text", backend)

    saved = [m for m in messages_in(box, "Drafts") if m["Subject"] == "Rich offer"]
    assert len(saved) == 1
    assert "<strong>our best price</strong>" in saved[0].get_body(("html",)).get_content()

    page.keyboard.type(" (24/7)")  # a second save replaces the first copy

    def replaced() -> bool:
        copies = messages_in(box, "Drafts")
        return len(copies) == 1 and "(24/7)" in copies[0].get_body(("plain",)).get_content()

    wait_until(replaced, timeout=20, what="the second save replacing the first copy")
    expect(page.get_by_test_id("draft-status")).to_have_text("Saved")

    page.reload()  # the draft comes back, as rich text
    expect(page.get_by_test_id("field-subject")).to_have_value("Rich offer")
    page.goto(server.url + "/inbox/drafts")  # listed in Drafts, and opens back in compose from there
    expect(page.get_by_test_id("saved-draft")).to_contain_text("Rich offer")
    screenshot(page, "drafts-folder", backend)
    page.get_by_test_id("saved-draft").get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/compose\?draft="))
    expect(page.get_by_test_id("field-subject")).to_have_value("Rich offer")
    expect(page.get_by_test_id("rich-editor-content").locator("strong")).to_have_text("our best price")
    expect(page.get_by_test_id("rich-editor-content").locator("li")).to_have_count(2)
    page.get_by_test_id("send").click()
    expect(page).to_have_url(re.compile(r"/inbox/sent\?sending="))

    wait_until(lambda: any(m["Subject"] == "Rich offer" for m in messages_in(customer, "INBOX")), timeout=40,
               what="delivery")
    arrived = next(m for m in messages_in(customer, "INBOX") if m["Subject"] == "Rich offer")
    assert arrived.get_content_type() == "multipart/alternative"
    assert "* Licences: 40" in arrived.get_body(("plain",)).get_content()
    assert '<li dir="auto"><p dir="auto">Support: included (24/7)</p></li>' in arrived.get_body(("html",)).get_content()
    assert messages_in(box, "Drafts") == []


def test_pasted_script_never_runs_and_never_leaves(browser: Browser, server, box):
    # Its own tab: the one console error expected here is the CSP refusing the pasted handler.
    context = browser.new_context(locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    console = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: console.append(str(exc)))
    try:
        log_in(page, server.url)
        page.goto(server.url + "/compose")
        page.get_by_test_id("field-subject").fill("Pasted")
        page.evaluate("window.pwned = 0")
        page.get_by_test_id("rich-editor-content").click()
        page.evaluate("""() => {
            const data = new DataTransfer();
            data.setData("text/html",
                         '<p>Hi<img src=x onerror="window.pwned=1"><script>window.pwned=2</script></p>');
            document.querySelector("[data-testid=rich-editor-content]").dispatchEvent(
                new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
        }""")
        expect(page.get_by_test_id("draft-status")).to_have_text("Saved", timeout=15_000)
        assert page.evaluate("window.pwned") == 0
        assert page.get_by_test_id("rich-editor-content").inner_html() == '<p dir="auto">Hi</p>'
        assert all("Content Security Policy" in line and "inline event handler" in line for line in console), console
        copy = next(m for m in messages_in(box, "Drafts") if m["Subject"] == "Pasted")
        html = copy.get_body(("html",)).get_content()
        assert '<p dir="auto">Hi</p>' in html and "onerror" not in html and "<script" not in html and "<img" not in html
    finally:
        context.close()


def test_without_javascript_save_draft_keeps_the_text_in_drafts(browser: Browser, server, box):
    context = browser.new_context(java_script_enabled=False, locale="en-GB")
    page = context.new_page()
    try:
        log_in(page, server.url)
        page.goto(server.url + "/compose")
        page.get_by_test_id("field-subject").fill("Plain and simple")
        page.get_by_test_id("field-text").fill("Written without scripts.")
        page.get_by_test_id("save-draft").click()
        expect(page).to_have_url(re.compile(r"/compose\?draft="))
        expect(page.get_by_test_id("field-text")).to_have_value("Written without scripts.")
        saved = [m for m in messages_in(box, "Drafts") if m["Subject"] == "Plain and simple"]
        assert len(saved) == 1 and saved[0].get_content_type() == "text/plain"
        page.get_by_test_id("discard-draft").click()
        expect(page).to_have_url(re.compile(r"/inbox/drafts$"))
        assert [m for m in messages_in(box, "Drafts") if m["Subject"] == "Plain and simple"] == []
    finally:
        context.close()
