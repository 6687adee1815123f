"""POST /api/v1/messages and GET /api/v1/messages/{id} through the real app, real SMTP and Dovecot."""

from __future__ import annotations

import asyncio

from salesinbox.services import tokens
from tests.integration.test_outbox import connect, folder_messages
from tests.support.http import api_client


async def _outcome(client, message_id: str) -> dict:
    for _ in range(100):
        data = (await client.get(f"/messages/{message_id}")).json()["data"]
        if data["status"] in ("sent", "failed", "outcome_unknown"):
            return data
        await asyncio.sleep(0.1)
    return data


async def test_a_message_posted_with_a_key_is_sent_once(live_server, deps, tenant, mailbox_factory):
    me, customer = mailbox_factory(), mailbox_factory()
    account_id = await connect(deps, tenant, me)
    secret = (await tokens.create_token(deps, tenant.admin, "tests")).secret
    body = {"account_id": str(account_id), "to": [customer.address], "subject": "API quote", "text": "Hello"}
    async with api_client(live_server.url, secret) as client:
        first = await client.post("/messages", json=body, headers={"Idempotency-Key": "k-1"})
        second = await client.post("/messages", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 201 and second.status_code == 201
        created = first.json()["data"]
        assert set(created) >= {"id", "message_id", "conversation_id", "status"}
        assert second.json()["data"]["id"] == created["id"]
        done = await _outcome(client, created["id"])
        assert done["status"] == "sent"
        later = await client.post("/messages", json={**body, "send_at": "2099-01-01T00:00:00Z"})
        assert later.json()["data"]["status"] == "scheduled"
        waiting = (await client.get("/conversations", params={"folder": "outbox"})).json()
        assert [m["id"] for m in waiting] == [later.json()["data"]["id"]]
        refused = await client.post("/messages", json={**body, "to": ["a@b.example\r\nBcc: evil@attacker.test"]})
        assert refused.status_code == 422
    assert len([m for m in folder_messages(customer, "INBOX") if m["Subject"] == "API quote"]) == 1
    assert len([m for m in folder_messages(me, "Sent") if m["Subject"] == "API quote"]) == 1


async def test_conversations_are_marked_archived_and_deleted_through_the_api(live_server, deps, tenant, dovecot,
                                                                            mailbox):
    from salesinbox.services import conversations, sync
    from tests.integration.test_actions import server_flags
    from tests.integration.test_sync import mail

    dovecot.deliver(mailbox.address, mail(mailbox.address, "API actions", "body")[0])
    account_id = await connect(deps, tenant, mailbox)
    [summary] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    secret = (await tokens.create_token(deps, tenant.admin, "tests")).secret
    async with api_client(live_server.url, secret) as client:
        assert len((await client.get("/conversations", params={"unread": "true"})).json()) == 1
        read = await client.patch(f"/conversations/{summary.id}", json={"read": True})
        assert read.status_code == 200 and read.json()["changed"] == 1
        assert (await client.get("/conversations", params={"unread": "true"})).json() == []
        assert (await client.get("/conversations", params={"label": "VIP"})).json() == []
        assert b"\\Seen" in server_flags(mailbox, "INBOX")["API actions"]
        labels = await client.patch(f"/conversations/{summary.id}", json={"labels": ["VIP"]})
        assert labels.status_code == 200 and labels.json()["labels"] == ["VIP"]
        assert b"VIP" in server_flags(mailbox, "INBOX")["API actions"]
        assert len((await client.get("/conversations", params={"label": "VIP"})).json()) == 1
        archived = await client.patch(f"/conversations/{summary.id}", json={"archived": True})
        assert archived.status_code == 200 and "API actions" in server_flags(mailbox, "Archive")
        await sync.sync_account_once(deps, account_id)
        assert (await client.delete(f"/conversations/{summary.id}")).status_code == 204
        assert "API actions" in server_flags(mailbox, "Trash")
