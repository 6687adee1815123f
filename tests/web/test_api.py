"""The JSON API under /api/v1, over HTTP against the real app: every route's happy
path and its main refusals, and the shape of what it answers.

Errors come in one envelope, ``{"error": {"code", "message", ...}}``: ``fields``
for a refused value, ``imap``/``smtp`` for a failed login to a mail server.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from salesinbox import bootstrap
from salesinbox.services import tokens, workspace
from tests.conftest import create_tenant
from tests.support.http import PageSession, api_client, error_of

NOBODY = "00000000-0000-0000-0000-000000000000"
OPENAPI_ROUTES = {"/api/v1/openapi.json", "/api/v1", "/api/v1/{path:str}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@acme.test"


def account_body(mailbox, **overrides) -> dict:
    body = {
        "address": mailbox.address, "login": mailbox.login, "password": mailbox.password,
        "imap_host": mailbox.imap_host, "imap_port": mailbox.imap_port, "imap_security": "none",
        "smtp_host": mailbox.smtp_host, "smtp_port": mailbox.smtp_port, "smtp_security": "none",
    }
    body.update(overrides)
    return body


def openapi_path(route_path: str) -> str:
    """``/deals/{item_id:uuid}`` as the OpenAPI document spells it: ``/deals/{item_id}``."""
    return "/".join(part.split(":")[0] + "}" if part.startswith("{") else part for part in route_path.split("/"))


# ---- fixtures ------------------------------------------------------------------------


@pytest.fixture
async def api(live_server, deps, tenant) -> AsyncIterator[httpx.AsyncClient]:
    """The API as the tenant's admin."""
    secret = (await tokens.create_token(deps, tenant.admin, "tests")).secret
    async with api_client(live_server.url, secret) as client:
        yield client


@pytest.fixture
async def rep(deps, tenant):
    """A regular user of the tenant's company, as an actor."""
    email = unique_email("rep")
    await workspace.add_user(deps, tenant.admin, email=email, password="Rep-pass-1!", name="Rep")
    return await workspace.authenticate(deps, email, "Rep-pass-1!")


@pytest.fixture
async def rep_api(live_server, deps, rep) -> AsyncIterator[httpx.AsyncClient]:
    secret = (await tokens.create_token(deps, rep, "tests")).secret
    async with api_client(live_server.url, secret) as client:
        yield client


@pytest.fixture(scope="module")
async def shared_api(live_server, deps) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's API of one company for the module: for requests that change nothing."""
    shared = await create_tenant(deps, name="Shared Ltd")
    secret = (await tokens.create_token(deps, shared.admin, "tests")).secret
    async with api_client(live_server.url, secret) as client:
        yield client


@pytest.fixture(scope="module")
async def advanced_api(live_server, deps) -> AsyncIterator[httpx.AsyncClient]:
    """The API as the admin of a company on the Advanced plan, which has no email sync."""
    small = await create_tenant(deps, name="Small Ltd", plan="advanced")
    secret = (await tokens.create_token(deps, small.admin, "tests")).secret
    async with api_client(live_server.url, secret) as client:
        yield client


@pytest.fixture
def api_routes(settings) -> set[tuple[str, str]]:
    """(method, path) of every API route the app serves, Litestar's OpenAPI routes aside."""
    return {
        (method, route.path)
        for route in bootstrap.build_app(settings).routes
        if route.path.startswith("/api/v1") and route.path not in OPENAPI_ROUTES
        for method in route.methods - {"OPTIONS", "HEAD"}
    }


# ---- tokens and sessions ---------------------------------------------------------------


async def test_every_api_route_refuses_a_request_without_a_token(live_server, api_routes):
    async with api_client(live_server.url, None) as anonymous:
        for method, path in sorted(api_routes):
            url = re.sub(r"\{[^}]+\}", NOBODY, path).removeprefix("/api/v1")  # any id will do
            response = await anonymous.request(method, url, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert error_of(response)["code"] == "unauthorized"


@pytest.mark.parametrize("authorization", [
    "Bearer si_not-a-token-we-issued", "Bearer not-even-our-prefix", "Bearer", "Basic YWRtaW46c2VjcmV0", "si_bare",
])
async def test_a_token_we_did_not_issue_is_refused(live_server, authorization):
    async with api_client(live_server.url, None) as client:
        response = await client.get("/me", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert error_of(response) == {"code": "unauthorized", "message": "Log in first."}


async def test_the_api_ignores_a_logged_in_session_cookie(live_server, tenant, api):
    async with PageSession(live_server.url) as browser:
        assert (await browser.login(tenant.admin_email, tenant.admin_password)).status_code == 303
        assert (await browser.get("/deals")).status_code == 200
        read = await browser.http.get("/api/v1/me")
        write = await browser.http.post("/api/v1/persons", json={"name": "Via cookie"},
                                        headers={"x-csrftoken": browser.csrf_token})
    assert read.status_code == 401 and error_of(read)["code"] == "unauthorized"
    assert write.status_code == 401
    assert (await api.get("/persons", params={"q": "Via cookie"})).json() == []


async def test_a_revoked_token_stops_working_at_once(live_server, api):
    created = await api.post("/tokens", json={"name": "Zapier"})
    assert created.status_code == 201
    second = created.json()
    async with api_client(live_server.url, second["secret"]) as client:
        assert (await client.get("/me")).status_code == 200
        assert (await api.delete(f"/tokens/{second['token']['id']}")).status_code == 204
        refused = await client.get("/me")
    assert refused.status_code == 401
    assert second["token"]["id"] not in [t["id"] for t in (await api.get("/tokens")).json()]


async def test_a_token_is_shown_once_and_listed_without_its_secret(api):
    created = await api.post("/tokens", json={"name": "Reporting"})
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("si_") and body["token"]["name"] == "Reporting"
    assert set(body["token"]) == {"id", "name", "created_at", "last_used_at"}
    listed = await api.get("/tokens")
    assert body["token"]["id"] in [t["id"] for t in listed.json()]
    assert body["secret"] not in listed.text


async def test_a_token_needs_a_name(api):
    response = await api.post("/tokens", json={"name": "  "})
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"name": "This field is required."}


async def test_nobody_revokes_a_colleagues_token_or_one_already_revoked(deps, api, rep):
    colleagues = await tokens.create_token(deps, rep, "mine")
    assert (await api.delete(f"/tokens/{colleagues.token.id}")).status_code == 404
    own = (await api.post("/tokens", json={"name": "twice"})).json()["token"]["id"]
    assert (await api.delete(f"/tokens/{own}")).status_code == 204
    again = await api.delete(f"/tokens/{own}")
    assert again.status_code == 404 and error_of(again)["code"] == "not_found"


# ---- the error envelope ------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/users/{id}", None),
    ("PATCH", "/users/{id}", {"role": "admin"}),
    ("DELETE", "/tokens/{id}", None),
    ("GET", "/persons/{id}", None),
    ("PUT", "/persons/{id}", {"name": "Nobody"}),
    ("DELETE", "/persons/{id}", None),
    ("GET", "/organizations/{id}", None),
    ("PUT", "/organizations/{id}", {"name": "Nowhere"}),
    ("DELETE", "/organizations/{id}", None),
    ("GET", "/deals/{id}", None),
    ("PUT", "/leads/{id}", {"title": "Nothing"}),
    ("DELETE", "/projects/{id}", None),
    ("GET", "/accounts/{id}", None),
    ("POST", "/accounts/{id}/test", None),
    ("PUT", "/accounts/{id}/members", {"member_ids": []}),
    ("DELETE", "/accounts/{id}", None),
])
async def test_an_unknown_id_answers_404_in_the_error_envelope(shared_api, method, path, body):
    response = await shared_api.request(method, path.format(id=uuid.uuid4()), json=body)
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "not_found" and error["message"].startswith("No such")


async def test_an_id_that_is_not_a_uuid_is_not_found(shared_api):
    response = await shared_api.get("/persons/42")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"


async def test_a_body_of_the_wrong_shape_is_refused_before_any_use_case_runs(api):
    missing = await api.post("/persons", json={"emails": ["x@acme.test"]})
    wrong_type = await api.post("/persons", json={"name": 42})
    not_json = await api.post("/persons", content=b"{not json", headers={"content-type": "application/json"})
    for response in (missing, wrong_type, not_json):
        assert response.status_code == 400, response.text
        assert error_of(response)["code"] == "invalid"
    assert "name" in str(error_of(missing)["details"]) and "name" in str(error_of(wrong_type)["details"])
    assert (await api.get("/persons")).json() == []


# ---- workspace: me, company, users -------------------------------------------------------


async def test_me_tells_who_is_asking_and_in_which_company(api, tenant):
    response = await api.get("/me")
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"id": str(tenant.admin.user_id), "email": tenant.admin_email,
                            "name": tenant.admin_email.split("@")[0], "role": "admin", "is_active": True}
    assert body["company"] == {"id": str(tenant.company_id), "name": "Acme Ltd", "plan": "growth",
                               "has_email_sync": True}


async def test_the_company_shows_its_plan_and_whether_it_has_email_sync(api, advanced_api):
    assert (await api.get("/company")).json()["has_email_sync"] is True
    small = (await advanced_api.get("/company")).json()
    assert (small["name"], small["plan"], small["has_email_sync"]) == ("Small Ltd", "advanced", False)


async def test_an_admin_adds_a_user_who_is_then_read_and_listed(api):
    email = unique_email("new")
    created = await api.post("/users", json={"email": email.upper(), "password": "Long-enough-1", "name": "Nina"})
    assert created.status_code == 201
    user = created.json()
    assert user == {"id": user["id"], "email": email, "name": "Nina", "role": "regular", "is_active": True}
    assert (await api.get(f"/users/{user['id']}")).json() == user
    assert user in (await api.get("/users")).json()
    assert "Long-enough-1" not in created.text


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "not an address", "password": "Long-enough-1"}, "email"),
    ({"email": "short@acme.test", "password": "short"}, "password"),
])
async def test_a_new_user_is_refused_with_a_field_error(api, body, field):
    response = await api.post("/users", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid" and list(error["fields"]) == [field]


async def test_an_email_already_in_use_is_a_conflict(api, tenant):
    response = await api.post("/users", json={"email": tenant.admin_email, "password": "Long-enough-1"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"


async def test_an_admin_changes_a_users_role(api, rep):
    promoted = await api.patch(f"/users/{rep.user_id}", json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    demoted = await api.patch(f"/users/{rep.user_id}", json={"role": "regular"})
    assert demoted.json()["role"] == "regular"


async def test_a_role_must_be_admin_or_regular(api, rep):
    response = await api.patch(f"/users/{rep.user_id}", json={"role": "owner"})
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"role": "Choose admin or regular."}


async def test_the_last_admin_cannot_be_made_regular(api, tenant):
    response = await api.patch(f"/users/{tenant.admin.user_id}", json={"role": "regular"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert (await api.get("/me")).json()["user"]["role"] == "admin"


async def test_a_regular_user_reads_the_team_but_may_not_add_users_or_change_roles(rep_api, tenant, rep):
    assert (await rep_api.get("/users")).status_code == 200
    added = await rep_api.post("/users", json={"email": unique_email(), "password": "Long-enough-1"})
    promoted = await rep_api.patch(f"/users/{rep.user_id}", json={"role": "admin"})
    for response in (added, promoted):
        assert response.status_code == 403
        assert error_of(response) == {"code": "forbidden", "message": "Only an admin can do this."}
    assert len((await rep_api.get("/users")).json()) == 2
    assert (await rep_api.get("/me")).json()["user"]["role"] == "regular"


# ---- persons ---------------------------------------------------------------------------------


async def test_a_person_is_created_read_listed_updated_and_deleted(api, tenant):
    created = await api.post("/persons", json={
        "name": "Ada Lovelace", "emails": ["Ada@Example.test", "ada@example.test"], "phone": "+44 20 7946 0000"})
    assert created.status_code == 201
    person = created.json()["data"]
    assert person == {
        "id": person["id"], "name": "Ada Lovelace", "emails": ["ada@example.test"], "phone": "+44 20 7946 0000",
        "organization_id": None, "organization_name": None, "owner_id": str(tenant.admin.user_id),
        "created_at": person["created_at"],
    }
    assert (await api.get(f"/persons/{person['id']}")).json() == person
    assert [p["id"] for p in (await api.get("/persons")).json()] == [person["id"]]

    updated = await api.put(f"/persons/{person['id']}", json={"name": "Ada King", "emails": ["countess@example.test"]})
    assert updated.status_code == 200
    assert (updated.json()["name"], updated.json()["emails"], updated.json()["phone"]) == (
        "Ada King", ["countess@example.test"], "")

    assert (await api.delete(f"/persons/{person['id']}")).status_code == 204
    assert (await api.get(f"/persons/{person['id']}")).status_code == 404


async def test_persons_are_found_by_name_or_email_and_filtered_by_organization(api):
    org = (await api.post("/organizations", json={"name": "Globex"})).json()["data"]
    hank = (await api.post("/persons", json={"name": "Hank Scorpio", "emails": ["hank@globex.test"],
                                             "organization_id": org["id"]})).json()["data"]
    marge = (await api.post("/persons", json={"name": "Marge", "emails": ["marge@springfield.test"]})).json()["data"]
    assert hank["organization_name"] == "Globex"

    async def found(**params) -> list[str]:
        return [p["id"] for p in (await api.get("/persons", params=params)).json()]

    assert await found(q="scorp") == [hank["id"]]
    assert await found(q="springfield") == [marge["id"]]
    assert await found(organization_id=org["id"]) == [hank["id"]]
    assert await found(q="nobody-by-that-name") == []


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "   "}, "name"),
    ({"name": "Bad Email", "emails": ["not-an-address"]}, "emails"),
    ({"name": "Orphan", "organization_id": NOBODY}, "organization_id"),
    ({"name": "Unowned", "owner_id": NOBODY}, "owner_id"),
])
async def test_a_person_is_refused_with_a_field_error(api, body, field):
    response = await api.post("/persons", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid" and list(error["fields"]) == [field]
    assert (await api.get("/persons")).json() == []


async def test_an_email_address_belongs_to_one_person_only(api):
    first = (await api.post("/persons", json={"name": "First", "emails": ["shared@example.test"]})).json()["data"]
    response = await api.post("/persons", json={"name": "Second", "emails": ["SHARED@example.test"]})
    assert response.status_code == 409
    assert error_of(response) == {"code": "conflict", "message": "shared@example.test already belongs to First."}
    second = (await api.post("/persons", json={"name": "Second"})).json()["data"]
    clash = await api.put(f"/persons/{second['id']}", json={"name": "Second", "emails": ["shared@example.test"]})
    assert clash.status_code == 409
    assert (await api.get(f"/persons/{first['id']}")).json()["emails"] == ["shared@example.test"]


# ---- organizations ----------------------------------------------------------------------------


async def test_an_organization_is_created_read_listed_updated_and_deleted(api, tenant):
    created = await api.post("/organizations", json={
        "name": "Initech", "domains": ["https://www.Initech.test/about", "@initech.test", "initech.example"],
        "address": "4120 Freidrich Lane"})
    assert created.status_code == 201
    org = created.json()["data"]
    assert org == {"id": org["id"], "name": "Initech", "domains": ["initech.example", "initech.test"],
                   "address": "4120 Freidrich Lane", "owner_id": str(tenant.admin.user_id),
                   "created_at": org["created_at"]}
    assert (await api.get(f"/organizations/{org['id']}")).json() == org
    assert [o["id"] for o in (await api.get("/organizations", params={"q": "initech.example"})).json()] == [org["id"]]

    updated = await api.put(f"/organizations/{org['id']}", json={"name": "Initrode", "domains": ["initrode.test"]})
    assert updated.status_code == 200
    assert (updated.json()["name"], updated.json()["domains"], updated.json()["address"]) == (
        "Initrode", ["initrode.test"], "")

    assert (await api.delete(f"/organizations/{org['id']}")).status_code == 204
    assert (await api.get(f"/organizations/{org['id']}")).status_code == 404


async def test_deleting_an_organization_keeps_its_persons_and_items(api):
    org = (await api.post("/organizations", json={"name": "Vandelay"})).json()["data"]
    person = (await api.post("/persons", json={"name": "Art", "organization_id": org["id"]})).json()["data"]
    deal = (await api.post("/deals", json={"title": "Latex", "organization_id": org["id"]})).json()["data"]
    assert (await api.delete(f"/organizations/{org['id']}")).status_code == 204
    assert (await api.get(f"/persons/{person['id']}")).json()["organization_id"] is None
    assert (await api.get(f"/deals/{deal['id']}")).json()["organization_id"] is None


@pytest.mark.parametrize(("body", "field"), [
    ({"name": ""}, "name"),
    ({"name": "Bad Domain", "domains": ["not a domain"]}, "domains"),
    ({"name": "Unowned", "owner_id": NOBODY}, "owner_id"),
])
async def test_an_organization_is_refused_with_a_field_error(api, body, field):
    response = await api.post("/organizations", json=body)
    assert response.status_code == 422
    assert list(error_of(response)["fields"]) == [field]


async def test_a_domain_belongs_to_one_organization_only(api):
    await api.post("/organizations", json={"name": "Hooli", "domains": ["hooli.test"]})
    response = await api.post("/organizations", json={"name": "Hooli XYZ", "domains": ["www.hooli.test"]})
    assert response.status_code == 409
    assert error_of(response) == {"code": "conflict", "message": "hooli.test already belongs to Hooli."}


# ---- deals, leads, projects -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["deal", "lead", "project"])
async def test_each_item_kind_is_created_read_listed_updated_and_deleted(api, tenant, kind):
    base = f"/{kind}s"
    person = (await api.post("/persons", json={"name": "Pat"})).json()["data"]
    created = await api.post(base, json={"title": f"First {kind}", "person_id": person["id"]})
    assert created.status_code == 201
    item = created.json()["data"]
    assert (item["kind"], item["title"], item["status"]) == (kind, f"First {kind}", "open")
    assert (item["person_id"], item["person_name"]) == (person["id"], "Pat")
    assert (item["owner_id"], item["owner_name"]) == (str(tenant.admin.user_id), tenant.admin_email.split("@")[0])
    assert (await api.get(f"{base}/{item['id']}")).json() == item
    assert [i["id"] for i in (await api.get(base)).json()] == [item["id"]]

    closed = {"deal": "won", "lead": "archived", "project": "completed"}[kind]
    updated = await api.put(f"{base}/{item['id']}", json={"title": f"Renamed {kind}", "status": closed})
    assert updated.status_code == 200
    assert (updated.json()["title"], updated.json()["status"], updated.json()["person_id"]) == (
        f"Renamed {kind}", closed, None)

    assert (await api.delete(f"{base}/{item['id']}")).status_code == 204
    assert (await api.get(f"{base}/{item['id']}")).status_code == 404


@pytest.mark.parametrize("value", ["12,500.50", 12500.5, "12500.5"])
async def test_a_deal_takes_its_value_as_a_string_or_a_number(api, value):
    response = await api.post("/deals", json={"title": "Platform", "value": value, "currency": "usd",
                                              "stage": "Demo scheduled", "expected_close_date": "2030-01-31"})
    assert response.status_code == 201, response.text
    deal = response.json()["data"]
    assert (deal["value"], deal["currency"], deal["stage"], deal["pipeline"]) == ("12500.50", "USD", "Demo scheduled",
                                                                                  deal["pipeline"])
    assert deal["expected_close_date"] == "2030-01-31"


async def test_a_project_has_a_description_and_dates(api):
    response = await api.post("/projects", json={"title": "Roll-out", "description": "Phase 1",
                                                 "start_date": "2030-01-01", "end_date": "2030-03-31"})
    assert response.status_code == 201
    project = response.json()["data"]
    assert (project["description"], project["start_date"], project["end_date"]) == (
        "Phase 1", "2030-01-01", "2030-03-31")
    assert project["value"] is None and project["stage"] is None


async def test_items_are_filtered_by_status_person_organization_and_title(api):
    org = (await api.post("/organizations", json={"name": "Umbrella"})).json()["data"]
    person = (await api.post("/persons", json={"name": "Alice"})).json()["data"]
    linked = (await api.post("/deals", json={"title": "Linked", "person_id": person["id"],
                                             "organization_id": org["id"]})).json()["data"]
    won = (await api.post("/deals", json={"title": "Closed", "status": "won"})).json()["data"]

    async def found(**params) -> list[str]:
        response = await api.get("/deals", params=params)
        assert response.status_code == 200
        return [d["id"] for d in response.json()]

    assert await found(status="won") == [won["id"]]
    assert await found(person_id=person["id"]) == [linked["id"]]
    assert await found(organization_id=org["id"]) == [linked["id"]]
    assert await found(q="link") == [linked["id"]]
    assert set(await found()) == {linked["id"], won["id"]}


async def test_a_list_filtered_by_a_status_the_kind_does_not_have_is_refused(api):
    response = await api.get("/leads", params={"status": "won"})
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"status": "Choose one of: open, archived."}


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("deal", {"title": ""}, "title"),
    ("deal", {"title": "X", "status": "archived"}, "status"),
    ("deal", {"title": "X", "value": "a lot"}, "value"),
    ("deal", {"title": "X", "value": -5}, "value"),
    ("deal", {"title": "X", "currency": "euro"}, "currency"),
    ("deal", {"title": "X", "stage": "Signed in blood"}, "stage"),
    ("lead", {"title": "X", "status": "won"}, "status"),
    ("project", {"title": "X", "start_date": "2030-02-01", "end_date": "2030-01-01"}, "end_date"),
    ("project", {"title": "X", "person_id": NOBODY}, "person_id"),
    ("lead", {"title": "X", "organization_id": NOBODY}, "organization_id"),
    ("deal", {"title": "X", "owner_id": NOBODY}, "owner_id"),
])
async def test_an_item_is_refused_with_a_field_error(api, kind, body, field):
    response = await api.post(f"/{kind}s", json=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid" and list(error["fields"]) == [field]
    assert (await api.get(f"/{kind}s")).json() == []


async def test_an_update_that_is_refused_changes_nothing(api):
    deal = (await api.post("/deals", json={"title": "Keep me", "value": "10"})).json()["data"]
    response = await api.put(f"/deals/{deal['id']}", json={"title": "Changed", "value": "ten"})
    assert response.status_code == 422
    assert (await api.get(f"/deals/{deal['id']}")).json() == deal


# ---- email accounts ------------------------------------------------------------------------------


async def test_the_provider_presets_are_listed(api):
    response = await api.get("/providers")
    assert response.status_code == 200
    presets = {p["key"]: p for p in response.json()}
    assert (presets["gmail"]["imap_host"], presets["gmail"]["imap_port"], presets["gmail"]["imap_security"]) == (
        "imap.gmail.com", 993, "tls")
    assert list(presets)[-1] == "other"


async def test_connecting_an_account_logs_in_first_and_never_answers_with_the_password(api, tenant, mailbox):
    response = await api.post("/accounts", json=account_body(mailbox, display_name="Sales"))
    assert response.status_code == 201, response.text
    account = response.json()
    assert (account["address"], account["kind"], account["owner_id"]) == (
        mailbox.address, "private", str(tenant.admin.user_id))
    assert (account["imap_host"], account["imap_port"], account["smtp_port"]) == (
        mailbox.imap_host, mailbox.imap_port, mailbox.smtp_port)
    assert account["last_test_at"] is not None and account["last_test_error"] is None
    assert (account["default_visibility"], account["member_ids"]) == ("private", [])
    assert "password" not in account and "secret" not in account
    assert mailbox.password not in response.text
    assert (await api.get(f"/accounts/{account['id']}")).json() == account
    listed = await api.get("/accounts")
    assert listed.json() == [account] and mailbox.password not in listed.text


async def test_an_account_can_be_saved_without_logging_in_first(api, mailbox):
    response = await api.post("/accounts", params={"verify": "false"}, json=account_body(mailbox, password="stale"))
    assert response.status_code == 201
    assert response.json()["last_test_at"] is None


async def test_a_wrong_password_is_explained_in_plain_words_and_nothing_is_saved(api, mailbox):
    response = await api.post("/accounts", json=account_body(mailbox, password="wrong-password"))
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "connection_failed"
    assert "password" in error["imap"].lower() and "password" in error["smtp"].lower()
    assert error["message"] == f"{error['imap']} {error['smtp']}"
    assert "wrong-password" not in response.text
    assert (await api.get("/accounts")).json() == []


async def test_testing_settings_logs_in_and_saves_nothing(api, mailbox):
    good = await api.post("/accounts/test", json=account_body(mailbox))
    assert good.status_code == 200
    assert good.json() == {"imap_error": None, "smtp_error": None}
    bad = await api.post("/accounts/test", json=account_body(mailbox, password="wrong-password"))
    assert bad.status_code == 200
    assert "password" in bad.json()["imap_error"].lower() and "password" in bad.json()["smtp_error"].lower()
    assert (await api.get("/accounts")).json() == []


@pytest.mark.parametrize(("overrides", "field"), [
    ({"password": ""}, "password"),
    ({"imap_host": ""}, "imap_host"),
    ({"smtp_port": 70000}, "smtp_port"),
    ({"provider": "carrier-pigeon"}, "provider"),
    ({"address": "not an address"}, "address"),
    ({"default_visibility": "team_only"}, "default_visibility"),
])
async def test_incomplete_account_settings_are_refused_with_a_field_error(api, mailbox, overrides, field):
    for path in ("/accounts", "/accounts/test"):
        response = await api.post(path, json=account_body(mailbox, **overrides))
        assert response.status_code == 422, (path, response.text)
        assert list(error_of(response)["fields"]) == [field]
    assert (await api.get("/accounts")).json() == []


async def test_a_saved_account_is_tested_again_on_request(api, mailbox):
    account = (await api.post("/accounts", json=account_body(mailbox))).json()
    response = await api.post(f"/accounts/{account['id']}/test")
    assert response.status_code == 200
    assert response.json() == {"imap_error": None, "smtp_error": None}


async def test_a_saved_account_whose_password_changed_fails_its_test_in_plain_words(api, mailbox):
    account = (await api.post("/accounts", params={"verify": "false"},
                              json=account_body(mailbox, password="stale-password"))).json()
    report = (await api.post(f"/accounts/{account['id']}/test")).json()
    assert "password" in report["imap_error"].lower()
    again = (await api.get(f"/accounts/{account['id']}")).json()
    assert again["last_test_error"] and "stale-password" not in again["last_test_error"]


async def test_an_address_is_connected_once_per_company(api, mailbox):
    assert (await api.post("/accounts", json=account_body(mailbox))).status_code == 201
    response = await api.post("/accounts", json=account_body(mailbox))
    assert response.status_code == 409
    assert error_of(response) == {"code": "conflict",
                                  "message": f"{mailbox.address} is already connected in this company."}


async def test_the_owner_of_a_team_account_chooses_its_members(api, rep_api, tenant, rep, mailbox):
    created = await api.post("/accounts", json=account_body(mailbox, kind="team"))
    account = created.json()
    assert (account["kind"], account["default_visibility"], account["member_ids"]) == (
        "team", "team_only", [str(tenant.admin.user_id)])
    assert (await rep_api.get(f"/accounts/{account['id']}")).status_code == 404

    response = await api.put(f"/accounts/{account['id']}/members", json={"member_ids": [str(rep.user_id)]})
    assert response.status_code == 200
    assert set(response.json()["member_ids"]) == {str(tenant.admin.user_id), str(rep.user_id)}
    assert (await rep_api.get(f"/accounts/{account['id']}")).status_code == 200
    assert [a["id"] for a in (await rep_api.get("/accounts")).json()] == [account["id"]]

    refused = await rep_api.put(f"/accounts/{account['id']}/members", json={"member_ids": []})
    assert refused.status_code == 403 and error_of(refused)["code"] == "forbidden"

    await api.put(f"/accounts/{account['id']}/members", json={"member_ids": []})
    assert (await rep_api.get(f"/accounts/{account['id']}")).status_code == 404


async def test_members_are_refused_for_a_private_account_or_a_stranger(api, mailbox):
    private = (await api.post("/accounts", json=account_body(mailbox))).json()
    response = await api.put(f"/accounts/{private['id']}/members", json={"member_ids": []})
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"member_ids": "Only a team account has members."}

    team = (await api.post("/accounts", params={"verify": "false"},
                           json=account_body(mailbox, address=unique_email("team"), kind="team"))).json()
    stranger = await api.put(f"/accounts/{team['id']}/members", json={"member_ids": [NOBODY]})
    assert stranger.status_code == 422
    assert error_of(stranger)["fields"] == {"member_ids": "A chosen member is not a user of this company."}


async def test_a_private_account_is_its_owners_alone_even_against_an_admin(live_server, deps, api, rep_api, mailbox):
    account = (await rep_api.post("/accounts", json=account_body(mailbox))).json()
    assert (await api.get("/accounts")).json() == []
    for method, path in [("GET", ""), ("POST", "/test"), ("DELETE", "")]:
        response = await api.request(method, f"/accounts/{account['id']}{path}")
        assert response.status_code == 404, (method, path)
    assert (await rep_api.get(f"/accounts/{account['id']}")).status_code == 200


async def test_only_the_owner_disconnects_an_account(api, rep_api, rep, mailbox):
    account = (await api.post("/accounts", json=account_body(mailbox, kind="team", member_ids=[str(rep.user_id)])))
    account = account.json()
    refused = await rep_api.delete(f"/accounts/{account['id']}")
    assert refused.status_code == 403 and error_of(refused)["code"] == "forbidden"
    assert (await api.delete(f"/accounts/{account['id']}")).status_code == 204
    assert (await api.get(f"/accounts/{account['id']}")).status_code == 404
    assert (await api.get("/accounts")).json() == []


@pytest.mark.parametrize(("method", "path", "needs_body"), [
    ("GET", "/accounts", False),
    ("POST", "/accounts", True),
    ("POST", "/accounts/test", True),
    ("GET", "/accounts/{id}", False),
    ("POST", "/accounts/{id}/test", False),
    ("PUT", "/accounts/{id}/members", False),
    ("DELETE", "/accounts/{id}", False),
])
async def test_every_account_route_needs_the_growth_plan(advanced_api, mailbox, method, path, needs_body):
    body = account_body(mailbox) if needs_body else {"member_ids": []}
    response = await advanced_api.request(method, path.format(id=uuid.uuid4()), json=body)
    assert response.status_code == 402, response.text
    error = error_of(response)
    assert error == {"code": "plan_required", "message": "Email sync needs the Growth plan or higher."}


async def test_the_provider_presets_are_public_knowledge_on_every_plan(advanced_api):
    assert (await advanced_api.get("/providers")).status_code == 200


# ---- the OpenAPI document -------------------------------------------------------------------------


async def test_the_openapi_document_is_valid_json_listing_every_api_path(live_server, api_routes):
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/")
    document = response.json()
    assert document["openapi"].startswith("3.") and document["info"]["title"] == "salesinbox API"
    assert document["components"]["securitySchemes"]["token"] == {
        "type": "http", "scheme": "bearer", "description": "Personal API token"}
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations
                  if method in {"get", "post", "put", "patch", "delete"}}
    served = {(method, openapi_path(path)) for method, path in api_routes}
    assert documented == served
    assert not any(path.startswith(("/deals", "/persons", "/login", "/accounts")) for _, path in documented)
