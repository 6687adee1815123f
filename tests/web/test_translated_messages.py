"""The services' messages in the reader's language, over HTTP against the real app.

A browser asking for Polish gets Polish field errors, flashes, error pages and
API errors; any other gets exactly the English texts it always got (API clients
and the tests compare them).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from salesinbox.services import tokens
from tests.support.http import PageSession, api_client, error_of, field_errors, logged_in_session

POLISH = {"Accept-Language": "pl-PL,pl;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
NOBODY = uuid.UUID(int=1)


@pytest.fixture
async def browser(live_server, tenant) -> AsyncIterator[PageSession]:
    session = await logged_in_session(live_server.url, tenant.admin_email, tenant.admin_password)
    yield session
    await session.aclose()


@pytest.fixture
async def api(live_server, deps, tenant) -> AsyncIterator[httpx.AsyncClient]:
    secret = (await tokens.create_token(deps, tenant.admin, "tests")).secret
    async with api_client(live_server.url, secret) as client:
        yield client


async def test_a_refused_form_explains_in_the_browsers_language(browser):
    form = {"name": "Bad Email", "emails": "not-an-address"}
    english = await browser.post("/persons", form, headers=ENGLISH)
    polish = await browser.post("/persons", form, headers=POLISH)
    assert english.status_code == polish.status_code == 422
    assert field_errors(english.text)["emails"] == "“not-an-address” is not an email address."
    assert field_errors(polish.text)["emails"] == "„not-an-address” nie jest adresem e-mail."


async def test_a_conflict_on_a_form_is_translated_with_its_values(browser, tenant):
    form = {"email": tenant.admin_email, "password": "Long-enough-1"}
    english = await browser.post("/settings/users", form, headers=ENGLISH)
    polish = await browser.post("/settings/users", form, headers=POLISH)
    assert field_errors(english.text)["email"] == f"A user with the email {tenant.admin_email} already exists."
    assert field_errors(polish.text)["email"] == f"Użytkownik z adresem e-mail {tenant.admin_email} już istnieje."


async def test_a_flashed_refusal_is_in_the_language_of_the_request_that_caused_it(browser, tenant):
    refused = await browser.post(f"/settings/users/{tenant.admin.user_id}/role", {"role": "regular"}, headers=POLISH)
    assert refused.status_code == 303
    page = await browser.get("/settings/users", headers=POLISH)
    assert "Firma musi mieć co najmniej jednego administratora" in page.text
    assert "at least one admin" not in page.text


async def test_an_error_page_is_in_the_browsers_language(browser):
    english = await browser.get(f"/persons/{NOBODY}", headers=ENGLISH)
    polish = await browser.get(f"/persons/{NOBODY}", headers=POLISH)
    assert english.status_code == polish.status_code == 404
    assert '<p data-testid="error-message">No such person.</p>' in english.text
    assert '<p data-testid="error-message">Nie ma takiej osoby.</p>' in polish.text


async def test_an_api_error_is_in_the_clients_language_and_english_by_default(api):
    body = {"name": "Bad Email", "emails": ["not-an-address"]}
    english, polish = error_of(await api.post("/persons", json=body)), error_of(
        await api.post("/persons", json=body, headers=POLISH))
    assert english["fields"] == {"emails": "“not-an-address” is not an email address."}
    assert english["message"] == "emails: “not-an-address” is not an email address."
    assert polish["fields"] == {"emails": "„not-an-address” nie jest adresem e-mail."}
    assert polish["message"] == "emails: „not-an-address” nie jest adresem e-mail."
    assert error_of(await api.get(f"/persons/{NOBODY}"))["message"] == "No such person."
    assert error_of(await api.get(f"/persons/{NOBODY}", headers=POLISH))["message"] == "Nie ma takiej osoby."
