"""Sign in with Google, in a real browser, against the local identity provider (tests.rig.idp) and a
Dovecot that checks every XOAUTH2 token with it; the embedded sync runs as `make run` runs it.

Connect with "Sign in with Google" (consent page, back with code and state), see the mail synced;
the user revokes the app's access at the provider: the account shows "Re-authorisation needed" on
the accounts page and in the inbox, and sync stops; "Re-authorise" signs in again and clears it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pydantic import SecretStr

from tests.browser.conftest import app_on_empty_database, screenshot
from tests.browser.test_inbox import set_up
from tests.rig.plugin import wait_until
from tests.support.server import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def oauth_server(backend: str, workdir: Path, idp) -> Iterator[LiveServer]:
    google = {
        "oauth_google_client_id": idp.client_id,
        "oauth_google_client_secret": SecretStr(idp.client_secret),
        "oauth_google_authorize_url": idp.authorize_url,
        "oauth_google_token_url": idp.token_url,
    }
    with app_on_empty_database(backend, workdir, "oauth", run_sync=True, settings=google) as server:
        yield server


def _mail(to: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Jane Buyer <jane@customer.example>", to, subject
    message.set_content("Hello.")
    return bytes(message)


def _reload_until_visible(page: Page, testid: str, timeout: float = 45.0) -> None:
    def shown() -> bool:
        page.reload()
        return page.get_by_test_id(testid).count() > 0

    wait_until(shown, timeout=timeout, interval=1.0, what=f"{testid} on {page.url}")


def test_sign_in_with_google_then_a_revoked_grant_asks_for_re_authorisation_which_clears_it(
    page: Page, oauth_server, backend, idp, dovecot_oauth
):
    idp.access_lifetime, idp.rotate, idp.token_delay = 3600, True, 0.0
    address = f"o{uuid.uuid4().hex[:8]}@example.test"
    dovecot_oauth.deliver(address, _mail(address, "Proposal for Globex"))
    base = oauth_server.url
    set_up(page, base)

    page.get_by_test_id("nav-accounts").click()
    page.get_by_test_id("connect-account").click()
    expect(page.get_by_test_id("sign-in-gmail")).to_have_count(0)  # "Other" has no sign-in
    page.get_by_test_id("field-provider").select_option("gmail")
    expect(page.get_by_test_id("sign-in-gmail")).to_be_visible()
    expect(page.get_by_test_id("sign-in-microsoft")).to_have_count(0)  # no Microsoft client configured
    page.get_by_test_id("field-address").fill(address)
    page.get_by_test_id("field-imap_host").fill(dovecot_oauth.host)
    page.get_by_test_id("field-imap_port").fill(str(dovecot_oauth.imap_port))
    page.get_by_test_id("field-imap_security").select_option("none")
    page.get_by_test_id("field-smtp_host").fill(dovecot_oauth.host)
    page.get_by_test_id("field-smtp_port").fill(str(dovecot_oauth.submission_port))
    page.get_by_test_id("field-smtp_security").select_option("none")
    page.get_by_test_id("field-sync_start").select_option("all")
    screenshot(page, "oauth-connect", backend)
    page.get_by_test_id("sign-in-gmail").click()

    expect(page).to_have_url(re.compile(re.escape(idp.authorize_url)))  # the provider's own page
    expect(page.get_by_test_id("idp-email")).to_have_value(address)  # login_hint
    page.get_by_test_id("idp-allow").click()

    expect(page.get_by_test_id("account-address")).to_have_text(address)
    expect(page.get_by_test_id("auth-method")).to_contain_text("OAuth")
    expect(page.get_by_test_id("sync-counts")).to_have_text("1 of 1 messages", timeout=45_000)
    expect(page.get_by_test_id("sync-state")).to_contain_text("Up to date", timeout=30_000)
    account_url = page.url

    idp.revoke(address)  # the user removes the app's access in their Google account
    dovecot_oauth.deliver(address, _mail(address, "Contract signed"))  # wakes IDLE: the next login is refused
    page.goto(base + "/accounts")
    _reload_until_visible(page, "reauth-badge")
    screenshot(page, "oauth-reauth-needed-list", backend)
    page.goto(base + "/inbox/inbox")
    expect(page.get_by_test_id("sync-alert-stopped")).to_contain_text("Re-authorisation needed")
    screenshot(page, "oauth-reauth-needed-inbox", backend)
    refreshes = idp.calls["refresh_token"]

    page.goto(account_url)
    expect(page.get_by_test_id("reauth-needed")).to_be_visible()
    expect(page.get_by_test_id("sync-state")).to_contain_text("Stopped")
    assert idp.calls["refresh_token"] == refreshes  # paused: nothing more is tried meanwhile
    page.get_by_test_id("reauthorise").click()
    expect(page.get_by_test_id("idp-email")).to_have_value(address)
    page.get_by_test_id("idp-allow").click()

    expect(page).to_have_url(account_url)
    expect(page.get_by_test_id("reauth-needed")).to_have_count(0)
    # The supervisor picks the account up again (it looks every 10 s) and the new mail arrives.
    expect(page.get_by_test_id("sync-counts")).to_have_text("2 of 2 messages", timeout=45_000)
    page.goto(base + "/accounts")
    expect(page.get_by_test_id("reauth-badge")).to_have_count(0)
    screenshot(page, "oauth-reauthorised", backend)
