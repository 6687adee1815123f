"""A new team's first steps, in a real browser: set up, log in, build the CRM
items email will link to, and connect a mailbox on the test Dovecot."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser

ADMIN_EMAIL, ADMIN_PASSWORD = "ada@acme.test", "Adm1n-pass!"


def log_in(page: Page, base: str) -> None:
    page.goto(base + "/login")
    page.get_by_test_id("field-email").fill(ADMIN_EMAIL)
    page.get_by_test_id("field-password").fill(ADMIN_PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page).to_have_url(re.compile(r"/deals$"))


def test_a_new_team_sets_up_logs_in_and_creates_an_organization_a_person_and_a_deal(page: Page, fresh_server, backend):
    base = fresh_server.url
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/setup$"))
    screenshot(page, "setup", backend)
    page.get_by_test_id("field-company").fill("Acme Ltd")
    page.get_by_test_id("field-name").fill("Ada Admin")
    page.get_by_test_id("field-email").fill(ADMIN_EMAIL)
    page.get_by_test_id("field-password").fill(ADMIN_PASSWORD)
    page.get_by_test_id("setup-submit").click()
    expect(page).to_have_url(re.compile(r"/deals$"))
    expect(page.get_by_test_id("me-name")).to_have_text("Ada Admin")

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_test_id("field-email").fill(ADMIN_EMAIL)
    page.get_by_test_id("field-password").fill("wrong password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_be_visible()
    log_in(page, base)

    page.get_by_test_id("nav-organizations").click()
    page.get_by_test_id("new-organization").click()
    page.get_by_test_id("field-name").fill("Globex")
    page.get_by_test_id("field-domains").fill("globex.com\nGlobex.io")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("organization-domains")).to_contain_text("globex.io")

    page.get_by_test_id("nav-persons").click()
    page.get_by_test_id("new-person").click()
    page.get_by_test_id("field-name").fill("Hank Scorpio")
    page.get_by_test_id("field-emails").fill("Hank@globex.com")
    page.get_by_test_id("field-organization_id").select_option(label="Globex")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("person-emails")).to_contain_text("hank@globex.com")

    page.get_by_test_id("nav-deals").click()
    page.get_by_test_id("new-deal").click()
    page.get_by_test_id("field-title").fill("Globex platform")
    page.get_by_test_id("field-value").fill("not money")
    page.get_by_test_id("save").click()
    expect(page.locator(".field-error")).to_contain_text("Enter a number")
    page.get_by_test_id("field-value").fill("12500")
    page.get_by_test_id("field-person_id").select_option(label="Hank Scorpio")
    page.get_by_test_id("field-organization_id").select_option(label="Globex")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("item-title")).to_have_text("Globex platform")
    expect(page.get_by_test_id("item-value")).to_have_text("12,500.00 EUR")
    screenshot(page, "deal", backend)
    page.get_by_test_id("nav-deals").click()
    expect(page.get_by_test_id("deal-table")).to_contain_text("Hank Scorpio")
    screenshot(page, "deals", backend)


def fill_account(page: Page, mailbox, password: str) -> None:
    page.get_by_test_id("field-address").fill(mailbox.address)
    page.get_by_test_id("field-password").fill(password)
    page.get_by_test_id("field-imap_host").fill(mailbox.imap_host)
    page.get_by_test_id("field-imap_port").fill(str(mailbox.imap_port))
    page.get_by_test_id("field-imap_security").select_option("none")
    page.get_by_test_id("field-smtp_host").fill(mailbox.smtp_host)
    page.get_by_test_id("field-smtp_port").fill(str(mailbox.smtp_port))
    page.get_by_test_id("field-smtp_security").select_option("none")


def test_connecting_an_account_tests_it_first_and_a_wrong_password_saves_nothing(page: Page, fresh_server,
                                                                                  backend, mailbox):
    base = fresh_server.url
    log_in(page, base)
    page.get_by_test_id("nav-accounts").click()
    page.get_by_test_id("connect-account").click()

    fill_account(page, mailbox, "wrong-password")
    page.get_by_test_id("test-connection").click()
    expect(page.get_by_test_id("test-failed")).to_contain_text("password")
    page.get_by_test_id("connect").click()
    expect(page.get_by_test_id("connect-failed")).to_contain_text("Nothing was saved")
    expect(page.get_by_test_id("connect-failed")).to_contain_text("password")
    screenshot(page, "account-wrong-password", backend)
    page.goto(base + "/accounts")
    expect(page.get_by_test_id("accounts-table")).to_have_count(0)

    page.get_by_test_id("connect-account").click()
    fill_account(page, mailbox, mailbox.password)
    page.get_by_test_id("test-connection").click()
    expect(page.get_by_test_id("test-ok")).to_be_visible()
    screenshot(page, "account-test-ok", backend)
    page.get_by_test_id("connect").click()
    expect(page.get_by_test_id("account-address")).to_have_text(mailbox.address)
    expect(page.get_by_test_id("last-test")).to_contain_text("Logged in")
    page.get_by_test_id("test-connection").click()
    expect(page.get_by_test_id("test-ok")).to_be_visible()
    screenshot(page, "account", backend)
    page.get_by_test_id("nav-accounts").click()
    expect(page.get_by_test_id("accounts-table")).to_contain_text(mailbox.address)
