"""Linking and visibility in a real browser, with the app's embedded sync: mail lands on the right deal with
its reason, an ambiguous one waits in "Needs linking", and a colleague sees a conversation only as the
visibility rules say."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import app_on_empty_database, screenshot
from tests.browser.test_first_steps import fill_account
from tests.browser.test_inbox import set_up
from tests.support.server import LiveServer

pytestmark = pytest.mark.browser
BEN_EMAIL, BEN_PASSWORD = "ben@acme.test", "Ben-pass-1!"


@pytest.fixture(scope="module")
def syncing_server(backend: str, workdir: Path) -> Iterator[LiveServer]:
    with app_on_empty_database(backend, workdir, "linking", run_sync=True) as server:
        yield server


def _mail(to: str, subject: str, sender: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = make_msgid(domain="customer.test")
    message.set_content(f"{subject}: can we talk?")
    return bytes(message)


def _token(page: Page, base: str) -> str:
    page.goto(base + "/settings/tokens")
    page.get_by_test_id("create-token").click()
    return page.get_by_test_id("new-token").inner_text().strip()


def _log_in_as(browser: Browser, base: str, email: str, password: str) -> Page:
    tab = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB").new_page()
    tab.set_default_timeout(15_000)
    tab.goto(base + "/login")
    tab.get_by_test_id("field-email").fill(email)
    tab.get_by_test_id("field-password").fill(password)
    tab.get_by_test_id("login-submit").click()
    expect(tab).to_have_url(re.compile(r"/deals$"))
    return tab


def test_mail_lands_on_its_deal_ambiguous_mail_waits_and_colleagues_see_only_what_is_shared(
    page: Page, browser: Browser, syncing_server, backend, dovecot, smtp_server
):
    from tests.rig.plugin import new_mailbox

    box = new_mailbox(dovecot, smtp_server)
    base = syncing_server.url
    set_up(page, base)
    api = httpx.Client(base_url=base + "/api/v1", headers={"Authorization": f"Bearer {_token(page, base)}"})
    assert api.post("/users", json={"email": BEN_EMAIL, "password": BEN_PASSWORD, "name": "Ben"}).status_code == 201

    def person(name: str, email: str) -> str:
        return api.post("/persons", json={"name": name, "emails": [email]}).json()["data"]["id"]

    def deal(title: str, person_id: str) -> str:
        return api.post("/deals", json={"title": title, "person_id": person_id, "status": "open"}).json()["data"]["id"]

    paula, quinn, rita = (person("Paula Buyer", "paula@customer.test"), person("Quinn Q", "quinn@other.test"),
                          person("Rita R", "rita@third.test"))
    renewal = deal("Renewal", paula)
    deal("Quinn upsell", quinn)
    deal("Quinn support", quinn)
    for subject, sender in (("Pricing question", "Paula Buyer <paula@customer.test>"),
                            ("Which one?", "Quinn Q <quinn@other.test>"), ("Hello from Rita", "rita@third.test")):
        dovecot.deliver(box.address, _mail(box.address, subject, sender))

    page.goto(base + "/accounts/new")
    fill_account(page, box, box.password)
    page.get_by_test_id("field-sync_start").select_option("all")
    page.get_by_test_id("connect").click()
    expect(page.get_by_test_id("account-address")).to_have_text(box.address)

    # The reply from a known person is on their single open deal, with its reason (once the sync has run).
    row = page.get_by_test_id("email-row")
    deadline = time.monotonic() + 60
    while True:
        page.goto(f"{base}/deals/{renewal}")
        if row.count() or time.monotonic() > deadline:
            break
        page.wait_for_timeout(500)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Pricing question")
    row.locator("summary").click()
    panel = page.get_by_test_id("conversation-panel")
    expect(panel.get_by_test_id("link-reason")).to_have_text(
        "Linked because paula@customer.test is an email address of Paula Buyer, the person on it.")
    expect(panel.get_by_test_id("message")).to_contain_text("can we talk?")
    screenshot(page, "deal-email-tab", backend)

    # Two open deals: no guess; the user picks in "Needs linking".
    page.goto(base + "/inbox/needs_linking")
    expect(page.get_by_test_id("conversation")).to_have_count(1)
    page.get_by_test_id("conversation").first.click()
    expect(page.get_by_test_id("linking-explanation")).to_contain_text("Several open items match")
    screenshot(page, "needs-linking", backend)
    page.get_by_test_id("pick-candidate").filter(has_text="Quinn support").click()
    expect(page.get_by_test_id("link-title")).to_have_text("Quinn support")
    page.goto(base + "/inbox/needs_linking")
    expect(page.get_by_test_id("conversation")).to_have_count(0)

    # A deal created after the conversation picks it up.
    later = deal("Rita pilot", rita)
    page.goto(f"{base}/deals/{later}")
    expect(page.get_by_test_id("email-row")).to_contain_text("Hello from Rita")

    # Private (the default): Ben sees it nowhere.
    ben = _log_in_as(browser, base, BEN_EMAIL, BEN_PASSWORD)
    ben.goto(base + "/inbox/inbox")
    expect(ben.get_by_test_id("conversation")).to_have_count(0)
    ben.goto(f"{base}/deals/{renewal}")
    expect(ben.get_by_test_id("email-tab")).to_contain_text("No conversations yet.")

    # Shared: on the deal page for Ben, and still never in his inbox.
    page.goto(base + "/inbox/inbox")
    page.get_by_test_id("conversation").filter(has_text="Pricing question").click()
    page.get_by_test_id("visibility").select_option("shared")
    page.get_by_test_id("visibility-submit").click()
    expect(page.get_by_test_id("visibility")).to_have_value("shared")
    screenshot(page, "conversation-links", backend)
    ben.goto(f"{base}/deals/{renewal}")
    expect(ben.get_by_test_id("email-row")).to_have_count(1)
    ben.get_by_test_id("email-row").locator("summary").click()
    expect(ben.get_by_test_id("shared-with-you")).to_be_visible()
    ben.goto(base + "/inbox/inbox")
    expect(ben.get_by_test_id("conversation")).to_have_count(0)
    ben.context.close()
    api.close()
