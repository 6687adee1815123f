"""Both ways with the mail server, in a real browser, with the app's embedded sync: a flag changed by
another IMAP client shows up without a reload, and an attachment over the account's limit is refused
with the limit in words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import app_on_empty_database, screenshot
from tests.browser.test_first_steps import fill_account, log_in
from tests.browser.test_inbox import _mail, set_up
from tests.support.server import LiveServer

pytestmark = pytest.mark.browser
UNREAD = re.compile(r"\bis-unread\b")


@pytest.fixture(scope="module")
def syncing_server(backend: str, workdir: Path) -> Iterator[LiveServer]:
    with app_on_empty_database(backend, workdir, "two-way", run_sync=True) as server:
        yield server


def test_a_flag_set_elsewhere_shows_and_an_oversized_attachment_is_refused(
    page: Page, syncing_server, backend, dovecot, smtp_server, tmp_path
):
    from tests.integration.test_sync import imap
    from tests.rig.plugin import new_mailbox

    box = new_mailbox(dovecot, smtp_server)
    dovecot.deliver(box.address, _mail(box.address, "Flag me elsewhere", "Read this on your phone."))
    base = syncing_server.url
    set_up(page, base)
    page.goto(base + "/accounts/new")
    fill_account(page, box, box.password)
    page.get_by_test_id("field-sync_start").select_option("all")
    page.get_by_test_id("field-attachment_limit_mb").fill("1")
    page.get_by_test_id("connect").click()
    expect(page.get_by_test_id("account-address")).to_have_text(box.address)

    page.goto(base + "/inbox/inbox")
    row = page.get_by_test_id("conversation").filter(has_text="Flag me elsewhere")
    expect(row).to_have_class(UNREAD, timeout=30_000)

    # Another mail client (a phone) reads it: the row turns read here, without a reload.
    with imap(box) as phone:
        phone.select_folder("INBOX")
        phone.add_flags(phone.search(["SUBJECT", "Flag me elsewhere"]), [b"\\Seen"])
    expect(row).not_to_have_class(UNREAD, timeout=60_000)

    # An attachment over the account's 1 MB limit: refused before anything is queued, with the limit in words.
    page.goto(base + "/compose")
    page.get_by_test_id("field-to").fill("buyer@customer.example")
    page.get_by_test_id("field-subject").fill("Too big")
    big = tmp_path / "catalogue.pdf"
    big.write_bytes(b"%PDF-1.4\n" + bytes(1_500_000))
    page.get_by_test_id("field-attachments").set_input_files(str(big))
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("attachments-error")).to_contain_text("1 MB")
    screenshot(page, "compose-over-limit", backend)
    page.goto(base + "/inbox/outbox")
    expect(page.get_by_test_id("conversation")).to_have_count(0)

    # Autocomplete from persons for every address of the field, not only the first.
    for name, email in (("Hank Scorpio", "hank@globex.com"), ("Jane Buyer", "jane@customer.example")):
        page.goto(base + "/persons")
        page.get_by_test_id("new-person").click()
        page.get_by_test_id("field-name").fill(name)
        page.get_by_test_id("field-emails").fill(email)
        page.get_by_test_id("save").click()
        expect(page.get_by_test_id("person-emails")).to_contain_text(email)
    page.goto(base + "/compose")
    to = page.get_by_test_id("field-to")
    to.fill("ja")
    suggestions = page.locator("#contact-addresses-to option")
    expect(suggestions).to_have_count(1)
    expect(suggestions.first).to_have_attribute("value", "jane@customer.example")
    to.fill("jane@customer.example, glo")
    expect(suggestions).to_have_count(1)
    expect(suggestions.first).to_have_attribute("value", "jane@customer.example, hank@globex.com")
    to.fill("jane@customer.example, ")  # an address already chosen is not offered again
    expect(suggestions).to_have_count(1)
    expect(suggestions.first).to_have_attribute("value", "jane@customer.example, hank@globex.com")
    expect(page.locator("#contact-addresses-cc option")).to_have_count(2)

    # Send later across a daylight-saving change: the offset of the chosen date counts, not today's.
    # Warsaw is UTC+1 in winter and UTC+2 in July; 09:30 on 1 July there is 07:30 UTC, whatever today is.
    summer = page.context.browser.new_context(timezone_id="Europe/Warsaw", locale="en-GB")
    try:
        tab = summer.new_page()
        log_in(tab, base)
        tab.goto(base + "/compose")
        tab.get_by_test_id("field-to").fill("later@customer.example")
        tab.get_by_test_id("field-subject").fill("Summer meeting")
        tab.get_by_test_id("format-plain").click()
        tab.get_by_test_id("field-text").fill("See you in July.")
        tab.get_by_test_id("field-send_at").fill("2099-07-01T09:30")
        tab.get_by_test_id("send").click()
        expect(tab).to_have_url(re.compile(r"/inbox/outbox$"))
        scheduled = tab.get_by_test_id("outgoing").filter(has_text="Summer meeting")
        expect(scheduled.locator("time")).to_have_attribute("datetime", "2099-07-01T07:30:00+00:00")
    finally:
        summer.close()
