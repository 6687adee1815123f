"""Drafts against a real Dovecot, on SQLite and PostgreSQL: one copy in Drafts, replaced on each save,
removed when sent; never a delete by a UID of another numbering; a team's drafts for its members."""

from __future__ import annotations

import email
import uuid
from email import policy

import pytest
from imapclient import IMAPClient
from sqlalchemy import update

from salesinbox.adapters.db.tables import Draft
from salesinbox.domain.accounts import AccountKind
from salesinbox.domain.errors import NotFound
from salesinbox.services import conversations, drafts, outbox, sync, workspace
from salesinbox.services.drafts import DRAFT_HEADER, DraftInput
from tests.support.mailboxes import connect_mailbox


def drafts_on_server(box) -> list[tuple[int, email.message.Message]]:
    with IMAPClient(box.imap_host, port=box.imap_port, ssl=False, timeout=10) as client:
        client.login(box.login, box.password)
        client.select_folder("Drafts", readonly=True)
        uids = client.search(["ALL"])
        fetched = client.fetch(uids, [b"BODY.PEEK[]", b"FLAGS"]) if uids else {}
        return [(uid, email.message_from_bytes(d[b"BODY[]"], policy=policy.default)) for uid, d in fetched.items()]


def append_elsewhere(box, raw: bytes) -> None:
    """Another mail client saving a draft of its own."""
    with IMAPClient(box.imap_host, port=box.imap_port, ssl=False, timeout=10) as client:
        client.login(box.login, box.password)
        client.append("Drafts", raw, flags=[b"\\Draft"])


async def test_a_saved_draft_is_in_drafts_once_and_each_save_replaces_it(deps, tenant, mailbox_factory):
    me = mailbox_factory()
    account_id = await connect_mailbox(deps, tenant.admin, me)

    first = await drafts.save_draft(deps, tenant.admin, None, DraftInput(
        account_id, to="Customer <buyer@customer.example>, half-typed@", subject="Quote", text="Dear buyer,"))
    on_server = drafts_on_server(me)
    assert first.on_server and len(on_server) == 1
    _, copy = on_server[0]
    assert copy[DRAFT_HEADER] == str(first.id) and copy["Subject"] == "Quote"
    assert [a.addr_spec for a in copy["To"].addresses] == ["buyer@customer.example"]  # unfinished ones left out

    for n in range(3):
        again = await drafts.save_draft(deps, tenant.admin, first.id, DraftInput(
            account_id, to="buyer@customer.example", subject="Quote", html=f"<p>Dear buyer, <b>take {n}</b></p>"))
    on_server = drafts_on_server(me)
    assert again.id == first.id and again.on_server and len(on_server) == 1
    _, copy = on_server[0]
    assert copy.get_content_type() == "multipart/alternative"
    assert "take 2" in copy.get_body(("plain",)).get_content()
    assert "<b>take 2</b>" in copy.get_body(("html",)).get_content()


async def test_a_reply_drafts_copy_names_the_whole_thread(deps, tenant, dovecot, mailbox_factory):
    from tests.integration.test_sync import mail

    me = mailbox_factory()
    first_id, second_id = "<t1@customer.example>", "<t2@acme.test>"
    raw, third_id = mail(me.address, "Re: Terms", "Net 45?", refs=(first_id, second_id))
    dovecot.deliver(me.address, raw)
    account_id = await connect_mailbox(deps, tenant.admin, me)
    [summary] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    [third] = (await conversations.get_conversation(deps, tenant.admin, summary.id)).messages

    await drafts.save_draft(deps, tenant.admin, None, DraftInput(
        account_id, to="buyer@customer.example", subject="Re: Terms", text="Net 45 it is.", in_reply_to=third.id))

    [(_, copy)] = drafts_on_server(me)
    assert copy["In-Reply-To"] == third_id and copy["References"].split() == [first_id, second_id, third_id]


async def test_the_text_is_kept_when_the_mail_server_is_down_and_filed_later(deps, tenant, mailbox_factory):
    me = mailbox_factory()
    account_id = await connect_mailbox(deps, tenant.admin, me)
    async with deps.writing() as db:  # the server stops answering: its port now leads nowhere
        await db.execute(update(drafts.EmailAccount).where(drafts.EmailAccount.id == account_id).values(imap_port=9))

    saved = await drafts.save_draft(deps, tenant.admin, None, DraftInput(account_id, subject="Not lost", text="x"))

    assert not saved.on_server and saved.last_error
    assert (await drafts.get_draft(deps, tenant.admin, saved.id)).subject == "Not lost"
    async with deps.writing() as db:
        await db.execute(update(drafts.EmailAccount).where(drafts.EmailAccount.id == account_id)
                         .values(imap_port=me.imap_port))
    await drafts.settle(deps)
    assert (await drafts.get_draft(deps, tenant.admin, saved.id)).on_server
    assert len(drafts_on_server(me)) == 1


async def test_sending_a_draft_removes_it_from_drafts(deps, tenant, mailbox_factory, smtp_server):
    me, customer = mailbox_factory(), mailbox_factory()
    account_id = await connect_mailbox(deps, tenant.admin, me)
    draft = await drafts.save_draft(deps, tenant.admin, None, DraftInput(
        account_id, to=customer.address, subject="Offer", html="<p>Our <em>offer</em></p>"))
    assert len(drafts_on_server(me)) == 1

    queued = await outbox.enqueue(deps, tenant.admin, outbox.OutgoingMessage(
        account_id, to=[customer.address], subject="Offer", html=draft.html))
    assert await drafts.discard_draft(deps, tenant.admin, draft.id)
    await outbox.deliver(deps, tenant.company_id, queued.id)

    assert drafts_on_server(me) == []
    assert await drafts.list_drafts(deps, tenant.admin) == []
    with pytest.raises(NotFound):
        await drafts.get_draft(deps, tenant.admin, draft.id)


async def test_a_stale_uidvalidity_never_deletes_by_the_old_uid(deps, tenant, mailbox_factory):
    me = mailbox_factory()
    account_id = await connect_mailbox(deps, tenant.admin, me)
    draft = await drafts.save_draft(deps, tenant.admin, None, DraftInput(account_id, subject="Mine", text="v1"))
    append_elsewhere(me, b"From: me@example.test\r\nSubject: Someone else's draft\r\n\r\nkeep me\r\n")
    other_uid = max(uid for uid, m in drafts_on_server(me) if m["Subject"] == "Someone else's draft")
    async with deps.writing() as db:  # as if the folder had been renumbered and the stored UID now named theirs
        row = await db.get(Draft, (tenant.company_id, draft.id))
        row.server_uid, row.server_uidvalidity = other_uid, row.server_uidvalidity + 1

    await drafts.save_draft(deps, tenant.admin, draft.id, DraftInput(account_id, subject="Mine", text="v2"))

    subjects = sorted(str(m["Subject"]) for _, m in drafts_on_server(me))
    assert subjects == ["Mine", "Someone else's draft"]  # the other draft survives; our old copy went by header
    assert "v2" in next(m for _, m in drafts_on_server(me) if m["Subject"] == "Mine").get_body().get_content()


async def test_a_draft_another_client_left_opens_for_editing_and_its_save_replaces_it(deps, tenant, mailbox_factory):
    me = mailbox_factory()
    account_id = await connect_mailbox(deps, tenant.admin, me, synced=False)
    append_elsewhere(me, b"From: me@example.test\r\nTo: Buyer <buyer@customer.example>\r\nSubject: From my phone\r\n"
                         b"Message-ID: <phone-1@example.test>\r\n\r\nStarted on the phone\r\n")
    await sync.sync_account_once(deps, account_id)
    listed = await conversations.list_conversations(deps, tenant.admin, folder="drafts")
    opened = await conversations.get_conversation(deps, tenant.admin, listed[0].id)

    draft_id = await drafts.edit_synced_draft(deps, tenant.admin, opened.messages[0].id)
    draft = await drafts.get_draft(deps, tenant.admin, draft_id)
    assert (draft.to, draft.subject, draft.text.strip()) == ("Buyer <buyer@customer.example>", "From my phone",
                                                             "Started on the phone")
    await drafts.save_draft(deps, tenant.admin, draft_id, DraftInput(
        account_id, to=draft.to, subject=draft.subject, text="Finished here"))

    on_server = drafts_on_server(me)
    assert len(on_server) == 1 and on_server[0][1][DRAFT_HEADER] == str(draft_id)
    assert await conversations.list_conversations(deps, tenant.admin, folder="drafts") == []  # until the next pass
    await sync.sync_account_once(deps, account_id)
    listed = await conversations.list_conversations(deps, tenant.admin, folder="drafts")
    ours = (await conversations.get_conversation(deps, tenant.admin, listed[0].id)).messages[0]
    assert await drafts.edit_synced_draft(deps, tenant.admin, ours.id) == draft_id  # ours: the same draft again


async def test_a_team_accounts_drafts_are_its_members_and_no_one_elses(deps, tenant, mailbox_factory):
    team_box = mailbox_factory()
    actors = {}
    for name in ("member", "outsider"):
        address = f"{name}-{uuid.uuid4().hex[:6]}@acme.test"
        await workspace.add_user(deps, tenant.admin, email=address, password="Draft-pass-1!")
        actors[name] = await workspace.authenticate(deps, address, "Draft-pass-1!")
    account_id = await connect_mailbox(deps, tenant.admin, team_box, kind=AccountKind.TEAM,
                                       member_ids=[actors["member"].user_id])
    draft = await drafts.save_draft(deps, tenant.admin, None, DraftInput(account_id, subject="For the team"))

    assert [d.id for d in await drafts.list_drafts(deps, actors["member"])] == [draft.id]
    edited = await drafts.save_draft(deps, actors["member"], draft.id, DraftInput(
        account_id, subject="For the team", text="Ben's words"))
    assert edited.text == "Ben's words" and len(drafts_on_server(team_box)) == 1

    assert await drafts.list_drafts(deps, actors["outsider"]) == []
    with pytest.raises(NotFound):
        await drafts.get_draft(deps, actors["outsider"], draft.id)
    with pytest.raises(NotFound):
        await drafts.discard_draft(deps, actors["outsider"], draft.id)


async def test_a_message_scheduled_for_later_is_edited_as_a_draft_and_no_longer_sent(deps, tenant, mailbox_factory):
    import datetime as dt

    from salesinbox.domain.errors import ValidationFailed

    me, customer = mailbox_factory(), mailbox_factory()
    account_id = await connect_mailbox(deps, tenant.admin, me)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    scheduled = await outbox.enqueue(deps, tenant.admin, outbox.OutgoingMessage(
        account_id, to=[customer.address], cc=["cc@customer.example"], bcc=["hidden@customer.example"],
        subject="Tomorrow's offer", html="<p>The <strong>offer</strong></p>", send_at=later))
    assert scheduled.status == "scheduled"

    draft = await drafts.draft_from_scheduled(deps, tenant.admin, scheduled.id)
    assert (draft.to, draft.cc, draft.bcc, draft.subject) == (
        customer.address, "cc@customer.example", "hidden@customer.example", "Tomorrow's offer")
    assert "<strong>offer</strong>" in (draft.html or "")
    assert await outbox.list_outbox(deps, tenant.admin) == []  # no longer scheduled: it will not go
    with pytest.raises(NotFound):  # edited once: there is nothing scheduled left to edit
        await drafts.draft_from_scheduled(deps, tenant.admin, scheduled.id)

    with_file = await outbox.enqueue(deps, tenant.admin, outbox.OutgoingMessage(
        account_id, to=[customer.address], subject="With a file", text="see attached", send_at=later,
        attachments=[outbox.Attachment("terms.pdf", "application/pdf", b"%PDF-1.4")]))
    with pytest.raises(ValidationFailed):  # drafts keep no attachments: editing would lose the file
        await drafts.draft_from_scheduled(deps, tenant.admin, with_file.id)
    assert [m.id for m in await outbox.list_outbox(deps, tenant.admin)] == [with_file.id]
