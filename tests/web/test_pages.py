"""The HTML pages over HTTP against the real app: logging in and out, every page,
the forms (created, refused, CSRF-checked), who may see what, and the headers
and cookies a browser relies on. First-run set-up gets a database of its own.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from salesinbox.domain.accounts import AccountKind, Security
from salesinbox.services import accounts, contacts, items, workspace
from salesinbox.services.accounts import AccountInput
from salesinbox.services.contacts import OrganizationInput, PersonInput
from salesinbox.services.items import ItemInput, ItemKind
from tests.conftest import Tenant, create_tenant, make_settings
from tests.support.databases import ThrowawayDatabase
from tests.support.http import SESSION_COOKIE, PageSession, field_errors, has_testid, logged_in_session
from tests.support.server import LiveServer

WRONG_LOGIN = "That email and password do not match an account."
ITEM_KINDS = ["deal", "lead", "project"]


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@acme.test"


def account_form(mailbox, **overrides) -> dict[str, str]:
    form = {
        "provider": "other", "kind": "private", "address": mailbox.address, "login": mailbox.login,
        "password": mailbox.password, "imap_host": mailbox.imap_host, "imap_port": str(mailbox.imap_port),
        "imap_security": "none", "smtp_host": mailbox.smtp_host, "smtp_port": str(mailbox.smtp_port),
        "smtp_security": "none", "sync_start": "1m", "contact_policy": "sent",
    }
    form.update(overrides)
    return form


def set_cookie_header(response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}="))


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture
async def browser(live_server, tenant) -> AsyncIterator[PageSession]:
    """The tenant's admin, logged in to the pages."""
    session = await logged_in_session(live_server.url, tenant.admin_email, tenant.admin_password)
    yield session
    await session.aclose()


@pytest.fixture
async def rep_browser(live_server, deps, tenant) -> AsyncIterator[PageSession]:
    """A regular user of the tenant's company, logged in."""
    email = unique_email("rep")
    await workspace.add_user(deps, tenant.admin, email=email, password="Rep-pass-1!", name="Rep")
    session = await logged_in_session(live_server.url, email, "Rep-pass-1!")
    yield session
    await session.aclose()


@pytest.fixture
async def anonymous(live_server) -> AsyncIterator[PageSession]:
    async with PageSession(live_server.url) as session:
        yield session


async def create_crm_rows(deps, tenant: Tenant) -> dict[str, uuid.UUID]:
    """One of each CRM row in the tenant's company, by kind."""
    org = await contacts.create_organization(deps, tenant.admin, OrganizationInput(
        name="Globex", domains=["globex.test"], address="1 Cypress Creek"))
    person = await contacts.create_person(deps, tenant.admin, PersonInput(
        name="Hank Scorpio", emails=["hank@globex.test"], organization_id=org.id))
    ids = {"organization": org.id, "person": person.id}
    for kind in ItemKind:
        item = await items.create_item(deps, tenant.admin, kind, ItemInput(
            title=f"Globex {kind.value}", person_id=person.id, organization_id=org.id))
        ids[kind.value] = item.id
    return ids


async def save_team_account(deps, tenant: Tenant) -> uuid.UUID:
    """A team account saved without logging in (its servers do not exist)."""
    view = await accounts.connect_account(deps, tenant.admin, AccountInput(
        address=unique_email("sales"), password="unused-password", kind=AccountKind.TEAM,
        imap_host="imap.invalid", imap_port=993, imap_security=Security.TLS,
        smtp_host="smtp.invalid", smtp_port=465, smtp_security=Security.TLS), verify=False)
    return view.id


@pytest.fixture
async def crm(deps, tenant) -> dict[str, uuid.UUID]:
    return await create_crm_rows(deps, tenant)


@pytest.fixture
async def saved_account(deps, tenant) -> uuid.UUID:
    return await save_team_account(deps, tenant)


@dataclass
class Shared:
    """One company for the module, with a row of each kind and its admin logged in:
    for the many pages that only read."""

    tenant: Tenant
    rows: dict[str, uuid.UUID]
    browser: PageSession


@pytest.fixture(scope="module")
async def shared(live_server, deps) -> AsyncIterator[Shared]:
    tenant = await create_tenant(deps, name="Shared Ltd")
    rows = {**await create_crm_rows(deps, tenant), "account": await save_team_account(deps, tenant)}
    async with await logged_in_session(live_server.url, tenant.admin_email, tenant.admin_password) as browser:
        yield Shared(tenant, rows, browser)


# ---- logging in and out ------------------------------------------------------------------------


async def test_the_login_page_carries_a_csrf_token_in_its_meta_tag_and_its_cookie(anonymous, tenant):
    response = await anonymous.get("/login")
    assert response.status_code == 200
    assert has_testid(response.text, "login-form")
    assert anonymous.csrf_token and anonymous.csrf_token == anonymous.http.cookies["csrftoken"]
    assert f'name="_csrf_token" value="{anonymous.csrf_token}"' in response.text


async def test_a_wrong_password_answers_401_in_plain_words_and_logs_nobody_in(anonymous, tenant):
    response = await anonymous.login(tenant.admin_email, "not-the-password")
    assert response.status_code == 401
    assert has_testid(response.text, "login-error") and WRONG_LOGIN in response.text
    assert f'value="{tenant.admin_email}"' in response.text
    assert "not-the-password" not in response.text
    assert (await anonymous.get("/deals")).status_code == 302


async def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(anonymous):
    response = await anonymous.login(unique_email("nobody"), "whatever-password")
    assert response.status_code == 401 and WRONG_LOGIN in response.text


async def test_logging_in_starts_a_new_httponly_session_so_a_planted_id_is_useless(live_server, anonymous, tenant):
    planted = secrets.token_hex(32)  # an id an attacker chose and slipped into the victim's browser
    anonymous.use_session_id(planted)
    response = await anonymous.login(tenant.admin_email, tenant.admin_password)
    assert response.status_code == 303 and response.headers["location"] == "/deals"
    cookie = set_cookie_header(response, SESSION_COOKIE).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert anonymous.session_id not in (None, planted)
    assert (await anonymous.get("/deals")).status_code == 200
    async with PageSession(live_server.url) as attacker:
        attacker.use_session_id(planted)
        assert (await attacker.get("/deals")).status_code == 302


async def test_logging_out_ends_the_session_for_good(live_server, browser):
    session_id = browser.session_id
    response = await browser.post("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert (await browser.get("/deals")).headers["location"] == "/login?next=/deals"
    async with PageSession(live_server.url) as replay:
        replay.use_session_id(session_id)
        assert (await replay.get("/deals")).status_code == 302


async def test_logging_out_needs_the_csrf_token_too(browser):
    assert (await browser.post("/logout", csrf=False)).status_code == 403
    assert (await browser.get("/deals")).status_code == 200


async def test_a_logged_in_visitor_skips_the_login_page(browser):
    response = await browser.get("/login")
    assert response.status_code == 303 and response.headers["location"] == "/deals"
    home = await browser.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/deals"


async def test_the_start_page_sends_an_anonymous_visitor_to_log_in(anonymous):
    response = await anonymous.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"


async def test_the_health_check_answers_without_logging_in(anonymous):
    response = await anonymous.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


# ---- where an anonymous visitor and `next` may lead -------------------------------------------------


@pytest.mark.parametrize("path", [
    "/deals", "/leads/new", "/projects", "/persons", f"/persons/{uuid.UUID(int=1)}",
    f"/organizations/{uuid.UUID(int=1)}/edit", "/accounts", "/accounts/new", "/settings/users", "/settings/tokens",
])
async def test_an_anonymous_visitor_is_sent_to_log_in_and_then_back(anonymous, shared, path):
    response = await anonymous.get(path)
    assert response.status_code == 302
    assert response.headers["location"] == f"/login?next={path}"
    form = await anonymous.get(response.headers["location"])
    assert f'name="next" value="{path}"' in form.text
    logged_in = await anonymous.login(shared.tenant.admin_email, shared.tenant.admin_password, next_path=path)
    assert logged_in.headers["location"] == path


async def test_an_anonymous_form_post_changes_nothing(anonymous, deps, tenant):
    response = await anonymous.post("/persons", {"name": "Sneaky"})
    assert response.status_code == 302 and response.headers["location"] == "/login?next=/persons"
    assert await contacts.list_persons(deps, tenant.admin) == []


@pytest.mark.parametrize("target", [
    "//evil.example", "https://evil.example", "http://evil.example/deals", "/\\evil.example", "\\\\evil.example",
    "/\t/evil.example", "javascript:alert(1)", "evil.example",
])
async def test_next_never_leads_off_site(anonymous, shared, target):
    form = await anonymous.get("/login", params={"next": target})
    assert 'name="next" value="/deals"' in form.text
    response = await anonymous.login(shared.tenant.admin_email, shared.tenant.admin_password, next_path=target)
    assert response.status_code == 303 and response.headers["location"] == "/deals"
    again = await anonymous.get("/login", params={"next": target})
    assert again.status_code == 303 and again.headers["location"] == "/deals"


async def test_a_path_on_this_site_is_a_fine_next(anonymous, tenant):
    response = await anonymous.login(tenant.admin_email, tenant.admin_password, next_path="/persons?q=hank")
    assert response.headers["location"] == "/persons?q=hank"


# ---- every page renders ----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "testid"), [
    ("/deals", "new-deal"), ("/leads", "new-lead"), ("/projects", "new-project"),
    ("/persons", "new-person"), ("/organizations", "new-organization"),
    ("/deals/new", "deal-form"), ("/leads/new", "lead-form"), ("/projects/new", "project-form"),
    ("/persons/new", "person-form"), ("/organizations/new", "organization-form"),
    ("/accounts", "connect-account"), ("/accounts/new", "account-form"),
    ("/accounts/new?kind=team&provider=gmail", "members"),
    ("/settings/users", "users-table"), ("/settings/tokens", "create-token"),
])
async def test_every_list_and_new_form_renders(shared, path, testid):
    response = await shared.browser.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert has_testid(response.text, testid) and has_testid(response.text, "logout")


@pytest.mark.parametrize(("kind", "shown"), [
    ("person", "Hank Scorpio"), ("organization", "Globex"),
    ("deal", "Globex deal"), ("lead", "Globex lead"), ("project", "Globex project"),
])
async def test_every_detail_and_edit_page_renders(shared, kind, shown):
    detail = await shared.browser.get(f"/{kind}s/{shared.rows[kind]}")
    assert detail.status_code == 200 and shown in detail.text
    edit = await shared.browser.get(f"/{kind}s/{shared.rows[kind]}/edit")
    assert edit.status_code == 200 and f'value="{shown}"' in edit.text


async def test_lists_show_the_companys_rows(shared):
    browser = shared.browser
    assert "Hank Scorpio" in (await browser.get("/persons")).text
    assert "Globex" in (await browser.get("/organizations")).text
    for kind in ITEM_KINDS:
        assert f"Globex {kind}" in (await browser.get(f"/{kind}s")).text
    assert "Hank Scorpio" in (await browser.get("/persons", params={"q": "hank@globex"})).text
    assert "Hank Scorpio" not in (await browser.get("/persons", params={"q": "nobody"})).text


async def test_a_new_item_form_can_start_from_a_person_and_organization(shared):
    rows = shared.rows
    response = await shared.browser.get("/deals/new", params={"person_id": str(rows["person"]),
                                                              "organization_id": str(rows["organization"])})
    assert f'<option value="{rows["person"]}" selected>' in response.text
    assert f'<option value="{rows["organization"]}" selected>' in response.text


async def test_an_account_detail_page_renders(shared):
    response = await shared.browser.get(f"/accounts/{shared.rows['account']}")
    assert response.status_code == 200
    assert has_testid(response.text, "account-address") and has_testid(response.text, "members-form")


async def test_an_unknown_id_is_a_404_page(shared):
    for path in (f"/persons/{uuid.uuid4()}", f"/deals/{uuid.uuid4()}/edit", f"/accounts/{uuid.uuid4()}"):
        response = await shared.browser.get(path)
        assert response.status_code == 404, path
        assert has_testid(response.text, "error-message")


# ---- forms that create, update and delete ---------------------------------------------------------------


async def test_a_person_is_created_updated_and_deleted_through_the_forms(browser, deps, tenant, crm):
    created = await browser.post("/persons", {"name": "Ada Lovelace", "emails": "ada@example.test, ADA@example.test",
                                              "phone": "+44 20", "organization_id": str(crm["organization"]),
                                              "owner_id": str(tenant.admin.user_id)})
    assert created.status_code == 303
    path = created.headers["location"]
    person = await contacts.get_person(deps, tenant.admin, uuid.UUID(path.rsplit("/", 1)[1]))
    assert (person.emails, person.organization_name) == (["ada@example.test"], "Globex")
    shown = await browser.get(path)
    assert "Ada Lovelace" in shown.text and has_testid(shown.text, "flash")

    updated = await browser.post(path, {"name": "Ada King", "emails": "countess@example.test"})
    assert updated.status_code == 303 and updated.headers["location"] == path
    assert (await contacts.get_person(deps, tenant.admin, person.id)).name == "Ada King"

    deleted = await browser.post(f"{path}/delete")
    assert deleted.status_code == 303 and deleted.headers["location"] == "/persons"
    assert (await browser.get(path)).status_code == 404


async def test_an_organization_is_created_updated_and_deleted_through_the_forms(browser, deps, tenant):
    created = await browser.post("/organizations", {"name": "Initech", "domains": "initech.test\nwww.initech.example",
                                                    "address": "4120 Freidrich Lane"})
    assert created.status_code == 303
    path = created.headers["location"]
    org = await contacts.get_organization(deps, tenant.admin, uuid.UUID(path.rsplit("/", 1)[1]))
    assert org.domains == ["initech.example", "initech.test"]

    updated = await browser.post(path, {"name": "Initrode", "domains": "initrode.test"})
    assert updated.status_code == 303
    assert (await contacts.get_organization(deps, tenant.admin, org.id)).domains == ["initrode.test"]

    deleted = await browser.post(f"{path}/delete")
    assert deleted.status_code == 303 and deleted.headers["location"] == "/organizations"
    assert await contacts.list_organizations(deps, tenant.admin) == []


@pytest.mark.parametrize("kind", ITEM_KINDS)
async def test_each_item_kind_is_created_updated_and_deleted_through_the_forms(browser, deps, tenant, crm, kind):
    created = await browser.post(f"/{kind}s", {"title": f"New {kind}", "person_id": str(crm["person"]),
                                               "status": "open", "value": "1,500.50", "currency": "usd",
                                               "stage": "Proposal made", "start_date": "2030-01-01"})
    assert created.status_code == 303
    path = created.headers["location"]
    item = await items.get_item(deps, tenant.admin, ItemKind(kind), uuid.UUID(path.rsplit("/", 1)[1]))
    assert (item.title, item.person_name) == (f"New {kind}", "Hank Scorpio")

    closed = {"deal": "lost", "lead": "archived", "project": "canceled"}[kind]
    updated = await browser.post(path, {"title": f"Renamed {kind}", "status": closed})
    assert updated.status_code == 303 and updated.headers["location"] == path
    assert (await items.get_item(deps, tenant.admin, ItemKind(kind), item.id)).status == closed
    assert f"Renamed {kind}" in (await browser.get(path)).text

    deleted = await browser.post(f"{path}/delete")
    assert deleted.status_code == 303 and deleted.headers["location"] == f"/{kind}s"
    assert item.id not in [i.id for i in await items.list_items(deps, tenant.admin, ItemKind(kind))]
    assert (await browser.get(path)).status_code == 404


@pytest.mark.parametrize(("path", "form", "field"), [
    ("/persons", {"name": ""}, "name"),
    ("/persons", {"name": "Bad", "emails": "not-an-address"}, "emails"),
    ("/persons", {"name": "Bad", "organization_id": "not-a-uuid"}, "organization_id"),
    ("/organizations", {"name": "Bad", "domains": "not a domain"}, "domains"),
    ("/deals", {"title": "Bad", "value": "a lot"}, "value"),
    ("/deals", {"title": "Bad", "expected_close_date": "31/01/2030"}, "expected_close_date"),
    ("/leads", {"title": ""}, "title"),
    ("/projects", {"title": "Bad", "start_date": "2030-02-01", "end_date": "2030-01-01"}, "end_date"),
    ("/settings/users", {"email": "new@acme.test", "password": "short"}, "password"),
    ("/settings/users", {"email": "not an address", "password": "Long-enough-1"}, "email"),
])
async def test_a_refused_form_is_shown_again_with_its_field_error(browser, path, form, field):
    response = await browser.post(path, form)
    assert response.status_code == 422
    errors = field_errors(response.text)
    assert list(errors) == [field] and errors[field]


async def test_a_refused_form_keeps_what_was_typed_but_never_the_password(browser):
    person = await browser.post("/persons", {"name": "Kept Name", "emails": "kept@example.test\nnot-an-address"})
    assert 'value="Kept Name"' in person.text and "kept@example.test" in person.text
    user = await browser.post("/settings/users", {"name": "Kept", "email": "kept@acme.test", "password": "short"})
    assert 'value="kept@acme.test"' in user.text and 'value="short"' not in user.text


async def test_a_refused_update_changes_nothing(browser, deps, tenant, crm):
    response = await browser.post(f"/deals/{crm['deal']}", {"title": "Changed", "value": "ten"})
    assert response.status_code == 422 and list(field_errors(response.text)) == ["value"]
    assert (await items.get_item(deps, tenant.admin, ItemKind.DEAL, crm["deal"])).title == "Globex deal"


async def test_an_email_taken_by_another_person_is_explained_on_the_form(browser, crm):
    response = await browser.post("/persons", {"name": "Copycat", "emails": "hank@globex.test"})
    assert response.status_code == 422
    assert has_testid(response.text, "form-error") and "hank@globex.test already belongs to Hank Scorpio." in (
        response.text)


async def test_a_form_post_without_the_csrf_token_is_refused(browser, deps, tenant):
    response = await browser.post("/persons", {"name": "Forged"}, csrf=False)
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert await contacts.list_persons(deps, tenant.admin) == []


async def test_a_csrf_token_from_another_browser_is_refused(live_server, browser, deps, tenant):
    async with PageSession(live_server.url) as other:
        await other.get("/login")
        foreign_token = other.csrf_token
    assert foreign_token != browser.csrf_token
    response = await browser.http.post("/persons", data={"name": "Forged", "_csrf_token": foreign_token})
    assert response.status_code == 403
    assert await contacts.list_persons(deps, tenant.admin) == []


async def test_the_csrf_token_may_come_in_a_header_as_htmx_sends_it(browser, deps, tenant):
    response = await browser.http.post("/persons", data={"name": "Via header"},
                                       headers={"x-csrftoken": browser.csrf_token})
    assert response.status_code == 303
    assert [p.name for p in await contacts.list_persons(deps, tenant.admin)] == ["Via header"]


# ---- settings: users and tokens -------------------------------------------------------------------------


async def test_an_admin_adds_a_user_and_changes_their_role(browser, deps, tenant):
    email = unique_email("nina")
    added = await browser.post("/settings/users", {"name": "Nina", "email": email, "password": "Long-enough-1",
                                                   "role": "regular"})
    assert added.status_code == 303 and added.headers["location"] == "/settings/users"
    page = await browser.get("/settings/users")
    assert email in page.text and "Nina can now log in." in page.text
    nina = next(u for u in await workspace.list_users(deps, tenant.admin) if u.email == email)

    promoted = await browser.post(f"/settings/users/{nina.id}/role", {"role": "admin"})
    assert promoted.status_code == 303
    assert (await workspace.get_user(deps, tenant.admin, nina.id)).role == "admin"


async def test_the_last_admin_is_kept_and_told_why(browser, deps, tenant):
    response = await browser.post(f"/settings/users/{tenant.admin.user_id}/role", {"role": "regular"})
    assert response.status_code == 303
    assert "at least one admin" in (await browser.get("/settings/users")).text
    assert (await workspace.get_user(deps, tenant.admin, tenant.admin.user_id)).role == "admin"


async def test_an_email_already_in_use_is_explained_on_the_users_form(browser, tenant):
    response = await browser.post("/settings/users", {"email": tenant.admin_email, "password": "Long-enough-1"})
    assert response.status_code == 422
    assert field_errors(response.text)["email"] == f"A user with the email {tenant.admin_email} already exists."


async def test_a_regular_user_may_not_open_or_post_to_the_users_settings(rep_browser, deps, tenant):
    page = await rep_browser.get("/settings/users")
    assert page.status_code == 403 and "Only an admin can do this." in page.text
    post = await rep_browser.post("/settings/users", {"email": unique_email(), "password": "Long-enough-1"})
    role = await rep_browser.post(f"/settings/users/{tenant.admin.user_id}/role", {"role": "regular"})
    assert (post.status_code, role.status_code) == (403, 403)
    assert len(await workspace.list_users(deps, tenant.admin)) == 2
    assert 'data-testid="nav-users"' not in (await rep_browser.get("/deals")).text


async def test_a_token_is_shown_once_then_revoked(live_server, browser):
    created = await browser.post("/settings/tokens", {"name": "Zapier"})
    assert created.status_code == 201
    secret = created.text.split('data-testid="new-token">', 1)[1].split("<", 1)[0]
    assert secret.startswith("si_")
    listing = await browser.get("/settings/tokens")
    assert "Zapier" in listing.text and secret not in listing.text
    token_id = listing.text.split('action="/settings/tokens/', 1)[1].split("/revoke", 1)[0]

    revoked = await browser.post(f"/settings/tokens/{token_id}/revoke")
    assert revoked.status_code == 303 and revoked.headers["location"] == "/settings/tokens"
    assert "Zapier" not in (await browser.get("/settings/tokens")).text


# ---- email accounts ---------------------------------------------------------------------------------------


async def test_an_account_is_tested_connected_tested_again_and_disconnected_through_the_pages(browser, mailbox):
    tested = await browser.post("/accounts/test", account_form(mailbox))
    assert tested.status_code == 200 and has_testid(tested.text, "test-ok")
    assert mailbox.password not in tested.text

    connected = await browser.post("/accounts", account_form(mailbox))
    assert connected.status_code == 303
    path = connected.headers["location"]
    detail = await browser.get(path)
    assert mailbox.address in detail.text and f"{mailbox.address} is connected." in detail.text

    retested = await browser.post(f"{path}/test")
    assert retested.status_code == 200 and has_testid(retested.text, "test-ok")

    disconnected = await browser.post(f"{path}/delete")
    assert disconnected.status_code == 303 and disconnected.headers["location"] == "/accounts"
    assert (await browser.get(path)).status_code == 404


async def test_htmx_gets_only_the_connection_result_fragment(browser, mailbox):
    response = await browser.post("/accounts/test", account_form(mailbox, password="wrong-password"),
                                  headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="test-result"')
    assert has_testid(response.text, "test-failed") and "password" in response.text.lower()
    assert "wrong-password" not in response.text


async def test_a_wrong_password_is_explained_on_the_form_and_nothing_is_saved(browser, deps, tenant, mailbox):
    response = await browser.post("/accounts", account_form(mailbox, password="wrong-password"))
    assert response.status_code == 422
    assert has_testid(response.text, "connect-failed") and "Nothing was saved." in response.text
    assert "wrong-password" not in response.text
    assert await accounts.list_accounts(deps, tenant.admin) == []


async def test_a_refused_account_form_shows_the_field_error(browser, mailbox):
    response = await browser.post("/accounts", account_form(mailbox, address="not an address"))
    assert response.status_code == 422
    assert list(field_errors(response.text)) == ["address"]


async def test_the_owner_saves_a_team_accounts_members(browser, deps, tenant, saved_account):
    rep = await workspace.add_user(deps, tenant.admin, email=unique_email("member"), password="Rep-pass-1!")
    response = await browser.post(f"/accounts/{saved_account}/members", {"member_ids": str(rep.id)})
    assert response.status_code == 303 and response.headers["location"] == f"/accounts/{saved_account}"
    assert "Members saved." in (await browser.get(response.headers["location"])).text
    account = await accounts.access_account(deps, tenant.admin, saved_account)
    assert set(account.member_ids) == {tenant.admin.user_id, rep.id}


async def test_a_company_below_growth_sees_the_plan_gate_on_every_accounts_page(live_server, deps):
    small = await create_tenant(deps, name="Small Ltd", plan="advanced")
    async with await logged_in_session(live_server.url, small.admin_email, small.admin_password) as session:
        for path in ("/accounts", "/accounts/new", f"/accounts/{uuid.uuid4()}"):
            response = await session.get(path)
            assert response.status_code == 402, path
            assert has_testid(response.text, "plan-gate") and "Growth" in response.text
        posted = await session.post("/accounts/test", {"address": "x@acme.test"})
        assert posted.status_code == 402 and "Growth" in posted.text


# ---- headers and cookies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/deals", f"/persons/{uuid.UUID(int=1)}", "/api/v1/me", "/healthz"])
async def test_every_answer_carries_the_security_headers(shared, path):
    response = await shared.browser.get(path)
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"


# ---- first run ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_install(backend: str, workdir: Path) -> Iterator[Callable[[], LiveServer]]:
    """Starts the app on an empty database of its own; stops them all after the module."""
    started: list[tuple[LiveServer, ThrowawayDatabase]] = []

    def start() -> LiveServer:
        database = ThrowawayDatabase(backend, workdir).create()
        data_dir = workdir / f"fresh-{uuid.uuid4().hex[:8]}"
        data_dir.mkdir()
        server = LiveServer(make_settings(database.url, data_dir)).start()
        started.append((server, database))
        return server

    yield start
    for server, database in started:
        server.stop()
        database.drop()


async def test_a_fresh_install_sends_everyone_to_setup_and_a_refused_form_creates_nothing(fresh_install):
    server = fresh_install()
    async with PageSession(server.url) as visitor:
        for path in ("/", "/login"):
            response = await visitor.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/setup"
        form = await visitor.get("/setup")
        assert form.status_code == 200 and has_testid(form.text, "setup-form")
        refused = await visitor.post("/setup", {"company": "", "email": "not an address", "password": "short"})
        assert refused.status_code == 422
        assert list(field_errors(refused.text)) == ["company"]
        assert (await visitor.get("/")).headers["location"] == "/setup"


async def test_setup_creates_the_company_and_admin_logs_in_and_then_answers_404(fresh_install):
    server = fresh_install()
    async with PageSession(server.url) as founder:
        await founder.get("/setup")
        before = founder.session_id
        response = await founder.post("/setup", {"company": "Initech", "name": "Bill Lumbergh",
                                                 "email": "bill@initech.test", "password": "Yeah-if-you-could",
                                                 "plan": "growth"})
        assert response.status_code == 303 and response.headers["location"] == "/deals"
        assert founder.session_id != before
        deals = await founder.get("/deals")
        assert deals.status_code == 200 and "Bill Lumbergh" in deals.text and "Initech" in deals.text
        assert "Welcome to salesinbox" in deals.text
        assert (await founder.get("/setup")).status_code == 404
        again = await founder.post("/setup", {"company": "Evil Corp", "email": "evil@corp.test",
                                              "password": "Take-over-1", "plan": "ultimate"})
        assert again.status_code == 404
    async with PageSession(server.url) as stranger:
        assert (await stranger.get("/")).headers["location"] == "/login"
        assert (await stranger.login("evil@corp.test", "Take-over-1")).status_code == 401
        assert (await stranger.login("bill@initech.test", "Yeah-if-you-could")).status_code == 303
