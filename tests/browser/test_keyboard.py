"""The Gmail-style keyboard and right-to-left text, in a real browser against the real app and Dovecot:
j j e z (the row goes at once, Undo brings it back on the server too), # z, x and the bulk toolbar,
c, /, g i, g d, Esc, Ctrl+Enter, keys ignored while typing; Arabic and Hebrew typed in compose (plain text,
and rich text block by block, kept in the saved draft and the sent mail) and received in the list and the
reading pane read right to left, English stays left to right."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.conftest import app_on_empty_database, screenshot
from tests.browser.test_drafts import messages_in
from tests.browser.test_first_steps import fill_account, log_in
from tests.browser.test_inbox import _mail, set_up
from tests.integration.test_actions import server_flags
from tests.rig.plugin import new_mailbox, wait_until
from tests.support.server import LiveServer

pytestmark = pytest.mark.browser

ENGLISH = [f"Quote {n}" for n in range(1, 7)]
ARABIC_SUBJECT, ARABIC_TEXT = "عرض السعر للربع الرابع", "مرحبا، نرسل لكم عرض السعر.\nشكرا لكم"
ARABIC_LINE, HEBREW_ITEM = "مرحبا، هذا عرضنا للربع الرابع.", "שלום, מצורפת הצעת המחיר"
HEBREW_SUBJECT, HEBREW_HTML = "הצעת מחיר", "<p>שלום, מצורפת הצעת המחיר.</p><p>Thanks, Dana</p>"


@pytest.fixture(scope="module")
def box(dovecot, smtp_server, backend):
    """A mailbox of its own for each backend's run: the server fixture counts what it holds."""
    return new_mailbox(dovecot, smtp_server)


@pytest.fixture(scope="module")
def server(backend: str, workdir: Path, browser: Browser, box, dovecot) -> Iterator[LiveServer]:
    """The app with its embedded sync, set up, with ``box`` connected and synced: six English
    conversations, one in Arabic (plain text), one in Hebrew (HTML)."""
    for day, subject in enumerate(ENGLISH, start=5):  # the newest, at the top
        dovecot.deliver(box.address, _mail(box.address, subject, f"The figures for {subject}.", day=day))
    dovecot.deliver(box.address, _mail(box.address, ARABIC_SUBJECT, ARABIC_TEXT, day=1,
                                       sender="Layla <layla@customer.example>"))
    dovecot.deliver(box.address, _mail(box.address, HEBREW_SUBJECT, "שלום", html=HEBREW_HTML, day=2,
                                       sender="Dana <dana@customer.example>"))
    with app_on_empty_database(backend, workdir, "keyboard", run_sync=True) as live:
        context = browser.new_context(locale="en-GB")
        context.set_default_timeout(15_000)
        page = context.new_page()
        set_up(page, live.url)
        page.goto(live.url + "/accounts/new")
        fill_account(page, box, box.password)
        page.get_by_test_id("field-sync_start").select_option("all")
        page.get_by_test_id("connect").click()
        expect(page.get_by_test_id("sync-counts")).to_have_text("8 of 8 messages", timeout=45_000)
        context.close()
        yield live


def inbox(page: Page, server: LiveServer) -> Locator:
    log_in(page, server.url)
    page.goto(server.url + "/inbox/inbox")
    rows = page.get_by_test_id("conversation")
    expect(rows).to_have_count(8)
    return rows


def row(page: Page, subject: str) -> Locator:
    return page.get_by_test_id("conversation").filter(has_text=subject)


def direction(locator: Locator) -> str:
    return locator.evaluate("(el) => getComputedStyle(el).direction")


def test_j_j_e_archives_the_row_at_once_and_z_brings_it_back_on_the_server_too(page: Page, server, box):
    rows = inbox(page, server)
    page.keyboard.press("j")
    page.keyboard.press("j")
    second = rows.nth(1)
    expect(second).to_have_class(re.compile(r"\bis-selected\b"))
    subject = second.locator(".c-subject").inner_text()
    assert subject == "Quote 5"

    page.keyboard.press("e")
    expect(row(page, subject)).to_be_hidden()
    expect(page.get_by_test_id("toast")).to_have_text(re.compile(r"Archived\.\s*Undo \(z\)"))
    expect(page.locator("[data-testid=conversation]:visible")).to_have_count(7)
    wait_until(lambda: subject not in server_flags(box, "INBOX"), timeout=10, what="the archive on the server")

    page.keyboard.press("z")
    expect(row(page, subject)).to_be_visible()
    expect(page.get_by_test_id("toast-text")).to_have_text("Moved back to the Inbox.")
    expect(page.get_by_test_id("undo")).to_be_hidden()
    wait_until(lambda: subject in server_flags(box, "INBOX"), timeout=10, what="the undo on the server")
    assert subject not in server_flags(box, "Archive")
    page.reload()  # what the server lists, not what the page remembers
    expect(row(page, subject)).to_have_count(1)
    expect(page.get_by_test_id("conversation")).to_have_count(8)


def test_delete_with_hash_then_z_restores_from_trash(page: Page, server, box):
    inbox(page, server)
    row(page, "Quote 4").click()
    expect(page.get_by_test_id("conversation-subject")).to_have_text("Quote 4")

    page.keyboard.press("#")
    expect(row(page, "Quote 4")).to_be_hidden()
    expect(page.get_by_test_id("conversation-view")).to_have_count(0)  # the pane does not show what went
    expect(page).to_have_url(re.compile(r"/inbox/inbox$"))
    expect(page.get_by_test_id("toast")).to_contain_text("Moved to Trash.")
    wait_until(lambda: "Quote 4" in server_flags(box, "Trash"), timeout=10, what="the delete on the server")

    page.get_by_test_id("undo").click()  # the button does what z does
    expect(row(page, "Quote 4")).to_be_visible()
    wait_until(lambda: "Quote 4" in server_flags(box, "INBOX"), timeout=10, what="the restore on the server")
    assert "Quote 4" not in server_flags(box, "Trash")


def test_x_chooses_rows_and_the_toolbar_archives_them_together(page: Page, server, box, backend):
    rows = inbox(page, server)
    toolbar = page.get_by_test_id("bulk-toolbar")
    expect(toolbar).to_be_hidden()
    page.keyboard.press("j")
    first = rows.nth(0).locator(".c-subject").inner_text()
    page.keyboard.press("e")  # one archived alone first, so the picture has a toast and a choice
    expect(page.get_by_test_id("toast")).to_be_visible()
    wait_until(lambda: first in server_flags(box, "Archive"), timeout=10, what="the single archive")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("x")
    chosen = page.locator(".conversation.is-chosen")
    expect(chosen).to_have_count(2)
    expect(toolbar).to_be_visible()
    expect(page.get_by_test_id("bulk-count")).to_have_text("2")
    subjects = [chosen.nth(n).locator(".c-subject").inner_text() for n in range(2)]
    screenshot(page, "inbox-chosen-and-toast", backend)

    page.get_by_test_id("bulk-archive").click()
    for subject in subjects:
        expect(row(page, subject)).to_be_hidden()
    expect(toolbar).to_be_hidden()
    expect(page.get_by_test_id("toast")).to_contain_text("Archived.")
    wait_until(lambda: set(subjects) <= set(server_flags(box, "Archive")), timeout=10, what="the bulk archive")
    assert not set(subjects) & set(server_flags(box, "INBOX"))

    page.keyboard.press("z")  # the undo brings both back
    wait_until(lambda: set(subjects) <= set(server_flags(box, "INBOX")), timeout=10, what="the bulk undo")
    for subject in subjects:
        expect(row(page, subject)).to_be_visible()
    page.goto(server.url + "/inbox/archive")
    expect(row(page, first)).to_have_count(1)
    page.get_by_test_id("conversation-check").first.check()  # a click chooses too
    page.get_by_test_id("bulk-unarchive").click()
    expect(page.get_by_test_id("toast")).to_contain_text("Moved back to the Inbox.")
    wait_until(lambda: first in server_flags(box, "INBOX"), timeout=10, what="the unarchive")

    page.goto(server.url + "/inbox/inbox")
    page.keyboard.press("j")
    expect(page.get_by_test_id("conversation").first).to_contain_text(first)
    assert b"\\Seen" not in server_flags(box, "INBOX")[first]
    page.keyboard.press("x")
    page.keyboard.press("Shift+I")  # on the chosen ones
    expect(page.get_by_test_id("toast")).to_contain_text("Marked as read.")
    wait_until(lambda: b"\\Seen" in server_flags(box, "INBOX")[first], timeout=10, what="read on the server")


def test_slash_g_d_g_i_and_esc_and_no_key_acts_while_typing(page: Page, server):
    inbox(page, server)
    page.keyboard.press("/")
    search = page.get_by_test_id("inbox-search")
    expect(search).to_be_focused()
    page.keyboard.type("jxe#z")  # letters, not commands
    expect(search).to_have_value("jxe#z")
    expect(page.locator(".conversation.is-selected, .conversation.is-chosen")).to_have_count(0)
    expect(page.get_by_test_id("toast")).to_be_hidden()
    expect(page.locator("[data-testid=conversation]:visible")).to_have_count(8)
    page.keyboard.press("Escape")
    expect(search).not_to_be_focused()

    page.keyboard.press("j")
    page.keyboard.press("x")
    expect(page.locator(".conversation.is-chosen")).to_have_count(1)
    page.keyboard.press("Escape")  # clears the choice first
    expect(page.locator(".conversation.is-chosen")).to_have_count(0)
    page.keyboard.press("o")
    expect(page.get_by_test_id("conversation-view")).to_be_visible()
    page.keyboard.press("Escape")  # then closes the conversation
    expect(page.get_by_test_id("conversation-view")).to_have_count(0)

    page.keyboard.press("g")
    page.keyboard.press("d")
    expect(page).to_have_url(re.compile(r"/inbox/drafts$"))
    page.keyboard.press("g")
    page.keyboard.press("i")
    expect(page).to_have_url(re.compile(r"/inbox/inbox$"))
    page.keyboard.press("?")
    expect(page.get_by_test_id("shortcuts")).to_contain_text("Undo the last archive or delete")


def test_c_opens_compose_and_ctrl_enter_sends(page: Page, server, dovecot, smtp_server):
    customer = new_mailbox(dovecot, smtp_server)
    inbox(page, server)
    page.keyboard.press("c")
    expect(page).to_have_url(re.compile(r"/compose$"))
    page.get_by_test_id("field-to").fill(customer.address)
    page.get_by_test_id("field-subject").fill("Sent with the keyboard")
    text = page.get_by_test_id("rich-editor-content")  # Ctrl+Enter sends from the rich text editor too
    text.click()
    page.keyboard.type("e, #, j and z are letters here.")
    expect(text).to_have_text("e, #, j and z are letters here.")
    page.keyboard.press("Control+Enter")
    expect(page).to_have_url(re.compile(r"/inbox/sent\?sending="))
    expect(page.get_by_test_id("sending")).to_be_visible()
    wait_until(lambda: "Sent with the keyboard" in server_flags(customer, "INBOX"), timeout=40, what="delivery")


def test_arabic_and_hebrew_typed_into_compose_read_right_to_left(page: Page, server, backend):
    log_in(page, server.url)
    page.goto(server.url + "/compose")
    subject, text = page.get_by_test_id("field-subject"), page.get_by_test_id("field-text")
    page.get_by_test_id("format-plain").click()
    subject.click()
    page.keyboard.type("Offer")
    assert direction(subject) == "ltr"
    subject.fill("")
    page.keyboard.type("הצעה לרבעון הרביעי")
    assert direction(subject) == "rtl"
    text.click()
    page.keyboard.type("مرحبا، هذا عرضنا للربع الرابع.")
    page.keyboard.press("Enter")
    page.keyboard.type("Best regards, Ada")  # an English line under it keeps its own direction
    assert direction(text) == "rtl"
    assert text.evaluate("(el) => getComputedStyle(el).unicodeBidi") == "plaintext"
    screenshot(page, "compose-arabic", backend)


def test_rich_text_blocks_each_take_their_own_direction_in_the_draft_and_the_sent_mail(
        page: Page, server, box, dovecot, smtp_server, backend):
    customer = new_mailbox(dovecot, smtp_server)
    log_in(page, server.url)
    page.goto(server.url + "/compose")
    expect(page.get_by_test_id("format-rich")).to_have_attribute("aria-pressed", "true")  # the default
    page.get_by_test_id("field-to").fill(customer.address)
    page.get_by_test_id("field-subject").fill("Offer, Arabic and English")
    editor = page.get_by_test_id("rich-editor-content")
    editor.click()
    page.keyboard.type(ARABIC_LINE)
    page.keyboard.press("Enter")
    page.keyboard.type("Best regards, Ada")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Bulleted list").click()
    page.keyboard.type(HEBREW_ITEM)

    def reads_each_block_its_own_way() -> None:
        arabic, english = editor.locator("p").filter(has_text=ARABIC_LINE), editor.locator("p", has_text="Best")
        assert direction(arabic) == "rtl"
        assert direction(english) == "ltr"  # not the direction of the first paragraph: its own
        assert direction(editor.locator("li p").filter(has_text=HEBREW_ITEM)) == "rtl"
        expect(english).to_have_attribute("dir", "auto")

    reads_each_block_its_own_way()
    screenshot(page, "compose-rich-arabic", backend)
    expect(page.get_by_test_id("draft-status")).to_have_text("Saved", timeout=15_000)
    sent_blocks = (f'<p dir="auto">{ARABIC_LINE}</p><p dir="auto">Best regards, Ada</p>'
                   f'<ul dir="auto"><li dir="auto"><p dir="auto">{HEBREW_ITEM}</p></li></ul>')

    def draft_html() -> str:
        drafts = [m for m in messages_in(box, "Drafts") if m["Subject"] == "Offer, Arabic and English"]
        return drafts[0].get_body(("html",)).get_content() if len(drafts) == 1 else ""

    wait_until(lambda: sent_blocks in draft_html(), timeout=20, what="the draft on the server, each block with dir")

    page.reload()  # the draft comes back with each block's direction
    expect(editor.locator("li")).to_have_text(HEBREW_ITEM)
    reads_each_block_its_own_way()
    page.get_by_test_id("send").click()
    expect(page).to_have_url(re.compile(r"/inbox/sent\?sending="))

    wait_until(lambda: any(m["Subject"] == "Offer, Arabic and English" for m in messages_in(customer, "INBOX")),
               timeout=40, what="delivery")
    arrived = next(m for m in messages_in(customer, "INBOX") if m["Subject"] == "Offer, Arabic and English")
    assert sent_blocks in arrived.get_body(("html",)).get_content()


def test_a_right_to_left_message_reads_right_to_left_in_the_list_and_the_pane(page: Page, server, backend):
    inbox(page, server)
    for subject in (ARABIC_SUBJECT, HEBREW_SUBJECT):
        assert direction(row(page, subject).locator(".c-subject")) == "rtl"
        assert direction(row(page, subject).locator(".c-people")) == "ltr"  # "Layla", "Dana"
    assert direction(row(page, ARABIC_SUBJECT).locator(".c-snippet")) == "rtl"
    assert direction(row(page, "Quote 2").locator(".c-subject")) == "ltr"
    assert direction(row(page, "Quote 2").locator(".c-snippet")) == "ltr"

    row(page, ARABIC_SUBJECT).click()
    expect(page.get_by_test_id("conversation-subject")).to_have_text(ARABIC_SUBJECT)
    assert direction(page.get_by_test_id("conversation-subject")) == "rtl"
    assert direction(page.get_by_test_id("message-text")) == "rtl"
    screenshot(page, "conversation-arabic", backend)

    row(page, HEBREW_SUBJECT).click()
    body = page.frame_locator("[data-testid=message-frame]").locator("body")
    expect(body).to_contain_text("שלום")
    assert direction(body) == "rtl"
    assert body.locator("p").last.evaluate("(el) => getComputedStyle(el).unicodeBidi") == "plaintext"

    row(page, "Quote 2").click()
    expect(page.get_by_test_id("conversation-subject")).to_have_text("Quote 2")
    assert direction(page.get_by_test_id("conversation-subject")) == "ltr"
    assert direction(page.get_by_test_id("message-text")) == "ltr"


def test_k_moves_up_r_a_f_open_the_replies_and_shift_u_marks_unread_on_the_server(page: Page, server, box):
    rows = inbox(page, server)
    for _ in range(3):
        page.keyboard.press("j")
    page.keyboard.press("k")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bis-selected\b"))  # down three, up one
    subject = rows.nth(1).locator(".c-subject").inner_text()
    page.keyboard.press("o")
    expect(page.get_by_test_id("conversation-subject")).to_have_text(subject)
    opened = page.url
    for key, mode in (("r", "reply"), ("a", "reply_all"), ("f", "forward")):
        page.keyboard.press(key)
        expect(page).to_have_url(re.compile(rf"/compose\?reply_to=[0-9a-f-]+&mode={mode}$"))
        expected = f"Fwd: {subject}" if mode == "forward" else f"Re: {subject}"
        expect(page.get_by_test_id("field-subject")).to_have_value(expected)
        page.goto(opened)
        expect(page.get_by_test_id("conversation-subject")).to_have_text(subject)
    wait_until(lambda: b"\\Seen" in server_flags(box, "INBOX")[subject], timeout=10, what="read when opened")
    page.keyboard.press("Shift+U")
    wait_until(lambda: b"\\Seen" not in server_flags(box, "INBOX")[subject], timeout=10, what="unread on the server")
