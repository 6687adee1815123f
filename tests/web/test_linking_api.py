"""Linking and visibility through the API contract, with a real mailbox and two users of one company."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import make_msgid

from salesinbox.services import tokens, workspace
from tests.support.http import api_client
from tests.support.mailboxes import connect_mailbox


def _from_customer(to: str, subject: str, sender: str = "Paula Buyer <paula@customer-co.test>") -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = make_msgid(domain="customer-co.test")
    message.set_content("Can you send the quote?")
    return bytes(message)


async def test_mail_links_to_the_single_open_deal_and_visibility_decides_who_sees_it(
    live_server, deps, tenant, dovecot, mailbox
):
    ben_email = f"ben-{uuid.uuid4().hex[:8]}@acme.test"  # user addresses are unique across companies
    ben = await workspace.add_user(deps, tenant.admin, email=ben_email, password="Ben-pass-1!")
    dovecot.deliver(mailbox.address, _from_customer(mailbox.address, "Pricing question"))
    dovecot.deliver(mailbox.address, _from_customer(mailbox.address, "Other matter", sender="o@elsewhere.test"))
    await connect_mailbox(deps, tenant.admin, mailbox)
    anna_token = (await tokens.create_token(deps, tenant.admin, "anna")).secret
    ben_actor = await workspace.authenticate(deps, ben_email, "Ben-pass-1!")
    ben_token = (await tokens.create_token(deps, ben_actor, "ben")).secret
    async with api_client(live_server.url, anna_token) as anna, api_client(live_server.url, ben_token) as ben_api:
        # The deal comes after the mail: retroactive linking picks the conversation up.
        person = (await anna.post("/persons", json={"name": "Paula Buyer", "emails": ["paula@customer-co.test"]}))
        assert person.status_code == 201
        person_id = person.json()["data"]["id"]
        deal = await anna.post("/deals", json={"title": "Big deal", "person_id": person_id, "status": "open"})
        deal_id = deal.json()["data"]["id"]
        on_deal = (await anna.get(f"/deals/{deal_id}/conversations")).json()
        assert [c["subject"] for c in on_deal] == ["Pricing question"]
        cid = on_deal[0]["id"]
        opened = (await anna.get(f"/conversations/{cid}")).json()
        [link] = opened["links"]
        assert link["item_id"] == deal_id and link["origin"] == "auto"
        assert "paula@customer-co.test" in link["reason"] and "Paula Buyer" in link["reason"]
        assert opened["linking"]["outcome"] == "linked"
        assert opened["visibility"] == "private" and opened["in_inbox"] is True
        assert [c["id"] for c in (await anna.get(f"/persons/{person_id}/conversations")).json()] == [cid]

        # Private by default: Ben sees it nowhere.
        assert (await ben_api.get("/conversations", params={"folder": "inbox"})).json() == []
        assert (await ben_api.get(f"/deals/{deal_id}/conversations")).json() == []
        assert (await ben_api.get(f"/conversations/{cid}")).status_code == 404

        # Shared: on the deal (and the person) for Ben, never in his inbox; he cannot change it.
        shared = await anna.patch(f"/conversations/{cid}", json={"visibility": "shared"})
        assert shared.status_code == 200 and shared.json()["visibility"] == "shared"
        assert [c["id"] for c in (await ben_api.get(f"/deals/{deal_id}/conversations")).json()] == [cid]
        assert [c["id"] for c in (await ben_api.get(f"/persons/{person_id}/conversations")).json()] == [cid]
        assert (await ben_api.get("/conversations", params={"folder": "inbox"})).json() == []
        [other] = [c["id"] for c in (await anna.get("/conversations")).json() if c["subject"] == "Other matter"]
        assert (await ben_api.get(f"/conversations/{other}")).status_code == 404  # sharing one shares no other
        as_ben = (await ben_api.get(f"/conversations/{cid}")).json()
        assert as_ben["in_inbox"] is False and as_ben["visibility"] is None
        assert as_ben["messages"][0]["unread"] is False  # Anna's unread mail is not unread for Ben
        refused = await ben_api.patch(f"/conversations/{cid}", json={"visibility": "private"})
        assert refused.status_code == 422

        # Private again: gone for Ben, by id too.
        await anna.patch(f"/conversations/{cid}", json={"visibility": "private"})
        assert (await ben_api.get(f"/deals/{deal_id}/conversations")).json() == []
        assert (await ben_api.get(f"/conversations/{cid}")).status_code == 404
        assert (await anna.patch(f"/conversations/{cid}", json={"visibility": "secret"})).status_code == 422

        # Unlink, and the rules do not link it back; link by hand again.
        assert (await anna.delete(f"/conversations/{cid}/links/{link['id']}")).status_code == 204
        assert (await anna.get(f"/deals/{deal_id}/conversations")).json() == []
        await anna.put(f"/persons/{person_id}", json={"name": "Paula Buyer", "emails": ["paula@customer-co.test"]})
        assert (await anna.get(f"/deals/{deal_id}/conversations")).json() == []
        relinked = await anna.post(f"/conversations/{cid}/links", json={"item_type": "deal", "item_id": deal_id})
        assert relinked.status_code == 201 and relinked.json()["data"]["origin"] == "manual"
        assert "by hand" in relinked.json()["data"]["reason"]
        assert [c["id"] for c in (await anna.get(f"/deals/{deal_id}/conversations")).json()] == [cid]
        bad = await anna.post(f"/conversations/{cid}/links", json={"item_type": "person", "item_id": person_id})
        assert bad.status_code == 422
    assert ben.id
