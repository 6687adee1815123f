"""Labels in a real browser, with the app's embedded sync: label a conversation from the reading pane,
filter the list by the label (kept in the URL), label chosen rows in bulk, and see a label another mail
client set arrive by itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import app_on_empty_database, screenshot
from tests.browser.test_first_steps import fill_account
from tests.browser.test_inbox import set_up
from tests.integration.test_actions import server_flags
from tests.integration.test_sync import imap
from tests.support.server import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def syncing_server(backend: str, workdir: Path) -> Iterator[LiveServer]:
    with app_on_empty_database(backend, workdir, "labels", run_sync=True) as server:
        yield server


def _mail(to: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Paula Buyer <paula@customer.test>", to, subject
    message["Message-ID"] = make_msgid(domain="customer.test")
    message.set_content(f"{subject}: details inside.")
    return bytes(message)


def test_label_a_conversation_filter_by_it_label_in_bulk_and_see_another_clients_label(
    page: Page, syncing_server, backend, dovecot, smtp_server
):
    from tests.rig.plugin import new_mailbox, wait_until

    box = new_mailbox(dovecot, smtp_server)
    base = syncing_server.url
    for subject in ("Quote for Acme", "Invoice 1042", "Lunch on Friday"):
        dovecot.deliver(box.address, _mail(box.address, subject))
    set_up(page, base)
    page.goto(base + "/accounts/new")
    fill_account(page, box, box.password)
    page.get_by_test_id("field-sync_start").select_option("all")
    page.get_by_test_id("connect").click()
    expect(page.get_by_test_id("account-address")).to_have_text(box.address)

    # A label made in Settings.
    page.get_by_test_id("nav-labels").click()
    page.get_by_test_id("field-name").fill("Hot lead")
    page.get_by_test_id("label-create").click()
    expect(page.get_by_test_id("label-row")).to_have_count(1)

    # Labelled from the reading pane: picked, plus a new one typed in; on the server as keywords.
    page.goto(base + "/inbox/inbox")
    expect(page.get_by_test_id("conversation")).to_have_count(3, timeout=30_000)
    page.get_by_test_id("conversation").filter(has_text="Quote for Acme").locator(".conversation-link").click()
    expect(page.get_by_test_id("conversation-subject")).to_have_text("Quote for Acme")
    page.get_by_test_id("label-picker-toggle").click()
    page.get_by_test_id("label-choice").check()
    page.get_by_test_id("new-label").fill("Q4 pipeline")
    screenshot(page, "label-picker", backend)
    page.get_by_test_id("labels-save").click()
    labels = page.get_by_test_id("conversation-labels").get_by_test_id("label-chip")
    expect(labels).to_have_text(["Hot lead", "Q4 pipeline"])
    assert {b"Hot_lead", b"Q4_pipeline"} <= server_flags(box, "INBOX")["Quote for Acme"]

    # Filtered by label from the Filters panel: in the URL, and it survives a reload.
    page.goto(base + "/inbox/inbox")
    page.get_by_test_id("filters-toggle").click()
    page.get_by_test_id("filter-label").select_option("Hot lead")
    page.get_by_test_id("apply-filters").click()
    expect(page).to_have_url(re.compile(r"label=Hot(\+|%20)lead"))
    expect(page.get_by_test_id("conversation")).to_have_count(1)
    page.reload()
    expect(page.get_by_test_id("conversation")).to_have_text(re.compile("Quote for Acme"))
    expect(page.get_by_test_id("conversation").get_by_test_id("label-chip")).to_have_text(["Hot lead", "Q4 pipeline"])
    screenshot(page, "label-filter", backend)

    # Bulk: two chosen rows get a label at once.
    page.goto(base + "/inbox/inbox")
    for subject in ("Invoice 1042", "Lunch on Friday"):
        page.get_by_test_id("conversation").filter(has_text=subject).get_by_test_id("conversation-check").check()
    page.get_by_test_id("bulk-label-choice").select_option(label="Q4 pipeline")
    page.get_by_test_id("bulk-label").click()
    expect(page.get_by_test_id("toast-text")).to_have_text("Label added.")
    invoice = page.get_by_test_id("conversation").filter(has_text="Invoice 1042")
    expect(invoice.get_by_test_id("label-chip")).to_have_text(["Q4 pipeline"])
    page.get_by_test_id("label-link").filter(has_text="Q4 pipeline").click()
    expect(page.get_by_test_id("conversation")).to_have_count(3)

    # Another mail client tags a message: the embedded sync brings the label.
    with imap(box) as client:
        client.select_folder("INBOX")
        uids = client.search(["SUBJECT", "Lunch on Friday"])
        client.add_flags(uids, [b"Personal"])
    page.goto(base + "/inbox/inbox")

    def arrived() -> bool:
        page.goto(base + "/inbox/inbox?label=Personal")
        return page.get_by_test_id("conversation").count() == 1

    wait_until(arrived, timeout=30, interval=0.2, what="the keyword set elsewhere to arrive as a label")
    expect(page.get_by_test_id("conversation")).to_have_text(re.compile("Lunch on Friday"))
    screenshot(page, "labels-inbox", backend)

    # Renamed in Settings: the conversations keep it, the keyword on the server stays.
    page.get_by_test_id("nav-labels").click()
    row = page.get_by_test_id("label-row").filter(has=page.locator('input[value="Hot lead"]'))
    row.get_by_test_id("label-name").fill("Hot prospect")
    row.get_by_test_id("label-rename").click()
    expect(page.get_by_test_id("flash")).to_have_text("Renamed to “Hot prospect”.")
    screenshot(page, "labels-settings", backend)
    page.goto(base + "/inbox/inbox?label=Hot+prospect")
    expect(page.get_by_test_id("conversation")).to_have_text(re.compile("Quote for Acme"))
    assert b"Hot_lead" in server_flags(box, "INBOX")["Quote for Acme"]
