"""Labels through the JSON API and the pages: PATCH the full set, filter by label, settings, bulk, and the
visibility of a labelled conversation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from salesinbox.services import conversations, tokens, workspace
from tests.integration.test_actions import server_flags
from tests.integration.test_sync import mail
from tests.support.http import PageSession, api_client, has_testid, logged_in_session
from tests.support.mailboxes import connect_mailbox


@pytest.fixture
async def synced(deps, tenant, dovecot, mailbox) -> dict[str, str]:
    for subject in ("Quote for Acme", "Lunch?"):
        dovecot.deliver(mailbox.address, mail(mailbox.address, subject, "body")[0])
    await connect_mailbox(deps, tenant.admin, mailbox)
    return {c.subject: str(c.id) for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")}


@pytest.fixture
async def api(deps, tenant, live_server) -> AsyncIterator:
    secret = (await tokens.create_token(deps, tenant.admin, "labels")).secret
    async with api_client(live_server.url, secret) as client:
        yield client


@pytest.fixture
async def browser(live_server, tenant) -> AsyncIterator[PageSession]:
    session = await logged_in_session(live_server.url, tenant.admin_email, tenant.admin_password)
    yield session
    await session.aclose()


async def test_patching_labels_sets_the_full_set_creating_unknown_names_and_the_filter_finds_them(
        api, synced, mailbox):
    quote = synced["Quote for Acme"]

    answer = await api.patch(f"/conversations/{quote}", json={"labels": ["Hot lead", "Q4"]})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["labels"] == ["Hot lead", "Q4"] and body["changed"] == 1 and body["folders_without_keywords"] == []
    assert {b"Hot_lead", b"Q4"} <= server_flags(mailbox, "INBOX")["Quote for Acme"]
    assert [(x["name"], x["keyword"]) for x in (await api.get("/labels")).json()] == [
        ("Hot lead", "Hot_lead"), ("Q4", "Q4")]
    listed = (await api.get("/conversations", params={"label": "hot lead"})).json()
    assert [(c["subject"], c["labels"]) for c in listed] == [("Quote for Acme", ["Hot lead", "Q4"])]
    assert (await api.get("/conversations", params={"label": "No such label"})).json() == []
    both = (await api.get("/conversations", params={"label": "Q4", "unread": "true"})).json()
    assert [c["subject"] for c in both] == ["Quote for Acme"]
    assert (await api.get(f"/conversations/{quote}")).json()["labels"] == ["Hot lead", "Q4"]

    cleared = await api.patch(f"/conversations/{quote}", json={"labels": []})
    assert cleared.json()["labels"] == [] and b"Q4" not in server_flags(mailbox, "INBOX")["Quote for Acme"]
    assert (await api.patch(f"/conversations/{quote}", json={"labels": [" "]})).status_code == 422
    assert (await api.get("/conversations", params={"folder": "outbox", "label": "Q4"})).status_code == 422
    assert (await api.get("/conversations", params={"folder": "outbox"})).status_code == 200


async def test_labels_are_created_renamed_and_deleted_through_the_api(api, synced):
    made = await api.post("/labels", json={"name": "Renewal"})
    assert made.status_code == 201
    label = made.json()["data"]
    assert (await api.post("/labels", json={"name": "renewal"})).status_code == 409
    await api.patch(f"/conversations/{synced['Lunch?']}", json={"labels": ["Renewal"]})

    renamed = await api.patch(f"/labels/{label['id']}", json={"name": "Contract renewal"})

    assert renamed.json() == {**label, "name": "Contract renewal"}  # the keyword stays
    assert (await api.get(f"/conversations/{synced['Lunch?']}")).json()["labels"] == ["Contract renewal"]
    assert (await api.delete(f"/labels/{label['id']}")).status_code == 204
    assert (await api.get("/labels")).json() == []
    assert (await api.get(f"/conversations/{synced['Lunch?']}")).json()["labels"] == []
    assert (await api.delete(f"/labels/{label['id']}")).status_code == 404


async def test_a_labelled_conversation_stays_out_of_another_users_inbox_and_label_filter(
        deps, tenant, live_server, api, synced):
    await api.patch(f"/conversations/{synced['Quote for Acme']}", json={"labels": ["Hot lead"]})
    ben_email = f"ben-{uuid.uuid4().hex[:8]}@acme.test"  # user addresses are unique across companies
    await workspace.add_user(deps, tenant.admin, email=ben_email, password="Ben-pass-123", name="Ben")
    ben_actor = await workspace.authenticate(deps, ben_email, "Ben-pass-123")
    secret = (await tokens.create_token(deps, ben_actor, "ben")).secret
    async with api_client(live_server.url, secret) as ben_api:
        assert [x["name"] for x in (await ben_api.get("/labels")).json()] == ["Hot lead"]  # company-wide
        assert (await ben_api.get("/conversations", params={"label": "Hot lead"})).json() == []
        answer = await ben_api.patch(f"/conversations/{synced['Quote for Acme']}", json={"labels": []})
        assert answer.status_code == 404


async def test_the_pages_label_a_conversation_filter_by_label_and_manage_labels(browser, synced, mailbox):
    quote = synced["Quote for Acme"]
    created = await browser.post("/settings/labels", {"name": "Hot lead"})
    assert created.status_code == 303
    settings = (await browser.get("/settings/labels")).text
    assert "Hot lead" in settings and "Hot_lead" in settings

    opened = (await browser.get(f"/inbox/inbox/{quote}")).text
    assert has_testid(opened, "label-picker") and 'value="Hot lead"' in opened
    saved = await browser.post(f"/conversations/{quote}/labels",
                               {"labels": ["Hot lead"], "new_label": "Q4", "next": f"/inbox/inbox/{quote}"})
    assert saved.status_code == 303 and saved.headers["location"] == f"/inbox/inbox/{quote}"
    assert {b"Hot_lead", b"Q4"} <= server_flags(mailbox, "INBOX")["Quote for Acme"]

    filtered = (await browser.get("/inbox/inbox", params={"label": "Hot lead"})).text
    assert "Quote for Acme" in filtered and "Lunch?" not in filtered
    assert "label=Hot+lead" in filtered  # kept in the URL: the live refresh and the pages
    assert has_testid(filtered, "label-chip") and has_testid(filtered, "filter-label")

    answer = await browser.post("/inbox/inbox/bulk", {"action": "label", "label": _label_id(settings),
                                                      "ids": list(synced.values())},
                                headers={"Accept": "application/json"})
    assert answer.json() == {"ok": True, "message": "Label added."}
    assert all(b"Hot_lead" in flags for flags in server_flags(mailbox, "INBOX").values())
    assert (await browser.post("/inbox/inbox/bulk", {"action": "label", "label": "nope",
                                                     "ids": list(synced.values())},
                               headers={"Accept": "application/json"})).json()["ok"] is False


def _label_id(settings_page: str) -> str:
    marker = 'action="/settings/labels/'
    start = settings_page.index(marker) + len(marker)
    return settings_page[start:start + 36]
