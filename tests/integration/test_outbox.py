"""The outbox against a real SMTP server delivering into a real Dovecot, on SQLite and PostgreSQL:
delivered once, one copy in Sent, idempotency keys honoured, no header injection, replies thread."""

from __future__ import annotations

import asyncio
import email
import uuid
from email import policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imapclient import IMAPClient

from salesinbox.domain.errors import ValidationFailed
from salesinbox.services import conversations, outbox, sync
from salesinbox.services.outbox import OutgoingMessage, one_line
from tests.support.mailboxes import connect_mailbox


async def connect(deps, tenant, box) -> uuid.UUID:
    return await connect_mailbox(deps, tenant.admin, box)  # synced once: the folders are known


def folder_messages(box, folder: str) -> list[email.message.Message]:
    with IMAPClient(box.imap_host, port=box.imap_port, ssl=False, timeout=10) as client:
        client.login(box.login, box.password)
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        return [email.message_from_bytes(d[b"BODY[]"], policy=policy.compat32)
                for d in client.fetch(uids, [b"BODY.PEEK[]"]).values()] if uids else []


async def send(deps, tenant, outgoing: OutgoingMessage, key: str | None = None):
    queued = await outbox.enqueue(deps, tenant.admin, outgoing, idempotency_key=key)
    await outbox.deliver(deps, tenant.company_id, queued.id)
    return await outbox.get_outbound(deps, tenant.admin, queued.id)


async def test_a_message_is_delivered_once_and_filed_once_in_sent(deps, tenant, mailbox_factory, smtp_server):
    me, customer = mailbox_factory(), mailbox_factory()
    account_id = await connect(deps, tenant, me)
    tag = uuid.uuid4().hex[:8]
    outgoing = OutgoingMessage(account_id, to=[f"Customer <{customer.address}>"], subject=f"Quote {tag}",
                               text="Our quote, attached.",
                               attachments=[outbox.Attachment("quote.pdf", "application/pdf", b"%PDF-1.4 quote")])

    first = await send(deps, tenant, outgoing, key=tag)
    again = await send(deps, tenant, outgoing, key=tag)

    assert first.status == "sent" and again.id == first.id and again.status == "sent"
    delivered = [m for m in folder_messages(customer, "INBOX") if tag in m["Subject"]]
    assert len(delivered) == 1 and delivered[0]["Message-ID"] == first.message_id
    assert [p.get_filename() for p in delivered[0].walk() if p.get_filename()] == ["quote.pdf"]
    assert len([m for m in folder_messages(me, "Sent") if tag in m["Subject"]]) == 1
    await outbox.recover(deps)  # a second filing attempt finds the copy and files nothing
    assert len([m for m in folder_messages(me, "Sent") if tag in m["Subject"]]) == 1


async def test_concurrent_sends_with_one_key_deliver_once(deps, tenant, mailbox_factory, smtp_server):
    me, customer = mailbox_factory(), mailbox_factory()
    account_id = await connect(deps, tenant, me)
    tag = uuid.uuid4().hex[:8]
    outgoing = OutgoingMessage(account_id, to=[customer.address], subject=f"Once {tag}", text="x")

    results = await asyncio.gather(*(send(deps, tenant, outgoing, key=tag) for _ in range(50)))

    assert len({r.id for r in results}) == 1
    assert len(smtp_server.envelopes_to(customer.address)) == 1


async def test_a_line_break_in_the_subject_adds_no_header_and_no_recipient(deps, tenant, mailbox_factory,
                                                                           smtp_server):
    me, customer = mailbox_factory(), mailbox_factory()
    account_id = await connect(deps, tenant, me)
    tag = uuid.uuid4().hex[:8]
    sent = await send(deps, tenant, OutgoingMessage(
        account_id, to=[customer.address], subject=f"Inject {tag}\r\nBcc: evil@attacker.test", text="x"))

    assert sent.status == "sent"
    [envelope] = smtp_server.envelopes_to(customer.address)
    assert envelope.rcpt_tos == (customer.address,)
    received = email.message_from_bytes(envelope.content, policy=policy.compat32)
    assert received.get_all("Bcc") is None and received["Subject"] == f"Inject {tag} Bcc: evil@attacker.test"


@pytest.mark.parametrize("bad", ["jane@example.com\r\nBcc: evil@attacker.test", "not an address", "a@b\u2028c@d",
                                 "Jane <jane@example.com>, evil@attacker.test"])
async def test_an_address_with_a_line_break_or_two_addresses_is_refused(deps, tenant, mailbox_factory, bad):
    account_id = await connect(deps, tenant, mailbox_factory())
    with pytest.raises(ValidationFailed):
        await outbox.enqueue(deps, tenant.admin, OutgoingMessage(account_id, to=[bad], subject="x"))


@given(st.text(max_size=200))
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_header_value_is_always_one_line(text: str) -> None:
    value = one_line(text)
    assert not any(c in value for c in "\r\n\x00\x85\u2028\u2029")
    assert value == value.strip()


async def test_a_reply_threads_with_the_original_on_both_sides(deps, tenant, dovecot, mailbox_factory, smtp_server):
    from tests.integration.test_sync import mail

    me, customer = mailbox_factory(), mailbox_factory()
    raw, original_id = mail(me.address, "Pricing question", "What does it cost?", sender=customer.address)
    dovecot.deliver(me.address, raw)
    account_id = await connect(deps, tenant, me)
    [summary] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    [original] = (await conversations.get_conversation(deps, tenant.admin, summary.id)).messages

    sent = await send(deps, tenant, OutgoingMessage(account_id, to=[customer.address], subject="Re: Pricing question",
                                                    text="It costs little.", in_reply_to=original.id))

    assert sent.status == "sent" and sent.conversation_id == summary.id
    [answer] = [m for m in folder_messages(customer, "INBOX") if m["Subject"] == "Re: Pricing question"]
    assert answer["In-Reply-To"] == original_id and original_id in answer["References"]
    await sync.sync_account_once(deps, account_id)  # our Sent copy comes back and joins the conversation
    opened = await conversations.get_conversation(deps, tenant.admin, summary.id)
    assert [m.subject for m in opened.messages] == ["Pricing question", "Re: Pricing question"]


def file_in(box, folder: str, raw: bytes) -> None:
    with IMAPClient(box.imap_host, port=box.imap_port, ssl=False, timeout=10) as client:
        client.login(box.login, box.password)
        client.append(folder, raw, flags=[b"\\Seen"])


async def test_a_reply_to_the_third_message_names_the_whole_thread_and_threads_on_both_sides(
        deps, tenant, dovecot, mailbox_factory, smtp_server):
    """RFC 5322 3.6.4: References = the parent's References, then the parent. The customer's side holds the
    first two messages only (the third was sent from a phone that keeps no Sent copy): only the chain can
    join the reply to that thread there."""
    from tests.conftest import create_tenant
    from tests.integration.test_sync import mail

    me, customer = mailbox_factory(), mailbox_factory()
    tag = uuid.uuid4().hex[:8]
    first, first_id = mail(me.address, f"Terms {tag}", "Can we talk terms?", sender=customer.address, day=1)
    second, second_id = mail(customer.address, f"Re: Terms {tag}", "Net 30.", sender=me.address, refs=(first_id,),
                             day=2)
    third, third_id = mail(me.address, f"Re: Terms {tag}", "Net 45?", sender=customer.address,
                           refs=(first_id, second_id), day=3)
    dovecot.deliver(me.address, first)
    file_in(me, "Sent", second)
    dovecot.deliver(me.address, third)
    file_in(customer, "Sent", first)
    dovecot.deliver(customer.address, second)
    account_id = await connect(deps, tenant, me)
    [summary] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    thread = await conversations.get_conversation(deps, tenant.admin, summary.id)
    assert [m.message_id for m in thread.messages] == [i.strip("<>") for i in (first_id, second_id, third_id)]

    sent = await send(deps, tenant, OutgoingMessage(account_id, to=[customer.address], subject=f"Re: Terms {tag}",
                                                    text="Net 45 it is.", in_reply_to=thread.messages[2].id))

    assert sent.status == "sent" and sent.conversation_id == summary.id
    [answer] = [m for m in folder_messages(customer, "INBOX") if m["Message-ID"] == sent.message_id]
    assert answer["In-Reply-To"] == third_id
    assert answer["References"].split() == [first_id, second_id, third_id]
    # Our side: the Sent copy comes back with the next pass and joins the three.
    await sync.sync_account_once(deps, account_id)
    ours = await conversations.get_conversation(deps, tenant.admin, summary.id)
    assert [m.message_id for m in ours.messages][-1] == sent.message_id.strip("<>") and len(ours.messages) == 4
    # The customer's side: their mailbox, synced by their own company, has the reply in the first's thread.
    theirs = await create_tenant(deps, name="Customer Ltd")
    await connect_mailbox(deps, theirs.admin, customer)
    their_inbox = await conversations.list_conversations(deps, theirs.admin, folder="inbox")
    assert len(their_inbox) == 1, "the reply started a conversation of its own on the customer's side"
    their_thread = await conversations.get_conversation(deps, theirs.admin, their_inbox[0].id)
    assert [m.message_id for m in their_thread.messages] == [
        i.strip("<>") for i in (first_id, second_id, sent.message_id)]


async def test_an_unreachable_server_is_retried_later_with_backoff(deps, tenant, mailbox_factory):
    me = mailbox_factory()
    await connect(deps, tenant, me)
    # nothing listens on port 1: the connection is refused before anything is sent
    other = await connect_mailbox(deps, tenant.admin, me, synced=False, address=f"x-{me.address}", smtp_port=1)
    queued = await outbox.enqueue(deps, tenant.admin, OutgoingMessage(other, to=["a@example.test"], subject="x"))
    assert await outbox.deliver(deps, tenant.company_id, queued.id) == "queued"  # retried later, with backoff
    view = await outbox.get_outbound(deps, tenant.admin, queued.id)
    assert view.status == "queued" and "Could not talk to the SMTP server" in view.last_error
    assert await outbox.deliver(deps, tenant.company_id, queued.id) == "queued"  # not due yet: not tried again


# ---- a scripted SMTP server for the outcomes a real one rarely produces on demand -----------


class ScriptedSmtp:
    """Speaks just enough SMTP; ``rcpt`` is its answer to RCPT, ``after_data`` what it does at the final dot."""

    def __init__(self, *, rcpt: str = "250 OK", after_data: str = "250 OK queued") -> None:
        self.rcpt, self.after_data = rcpt, after_data
        self.messages = 0
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> ScriptedSmtp:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 scripted ESMTP\r\n")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-scripted\r\n250 AUTH PLAIN LOGIN\r\n")
                elif verb == b"AUTH":
                    writer.write(b"235 OK\r\n")
                elif verb == b"MAIL":
                    writer.write(b"250 OK\r\n")
                elif verb == b"RCPT":
                    writer.write(self.rcpt.encode() + b"\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    self.messages += 1
                    if self.after_data == "hang up":
                        return  # the text arrived; the answer never goes out
                    writer.write(self.after_data.encode() + b"\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"250 OK\r\n")
                await writer.drain()
        finally:
            writer.close()


async def _account_on(deps, tenant, box, smtp_port: int) -> uuid.UUID:
    return await connect_mailbox(deps, tenant.admin, box, synced=False,
                                 address=f"s{uuid.uuid4().hex[:6]}-{box.address}", smtp_host="127.0.0.1",
                                 smtp_port=smtp_port)


async def test_a_connection_lost_after_the_final_dot_is_outcome_unknown_and_never_retried(deps, tenant,
                                                                                           mailbox_factory):
    async with ScriptedSmtp(after_data="hang up") as server:
        account_id = await _account_on(deps, tenant, mailbox_factory(), server.port)
        queued = await outbox.enqueue(deps, tenant.admin, OutgoingMessage(account_id, to=["a@b.test"], subject="x"))
        assert await outbox.deliver(deps, tenant.company_id, queued.id) == "outcome_unknown"
        await outbox.deliver_due(deps)
        await outbox.recover(deps)
        view = await outbox.get_outbound(deps, tenant.admin, queued.id)
    assert view.status == "outcome_unknown" and "may have been delivered" in view.last_error
    assert server.messages == 1  # handed over once, never again


@pytest.mark.parametrize(("answer", "status"), [("550 5.1.1 No such user here", "failed"),
                                                ("451 4.3.0 Try again later", "queued")])
async def test_a_refusal_is_final_for_5xx_and_retried_for_4xx(deps, tenant, mailbox_factory, answer, status):
    async with ScriptedSmtp(rcpt=answer) as server:
        account_id = await _account_on(deps, tenant, mailbox_factory(), server.port)
        queued = await outbox.enqueue(deps, tenant.admin, OutgoingMessage(account_id, to=["a@b.test"], subject="x"))
        assert await outbox.deliver(deps, tenant.company_id, queued.id) == status
        view = await outbox.get_outbound(deps, tenant.admin, queued.id)
    assert view.status == status and answer in view.last_error and server.messages == 0


async def test_an_attachment_over_the_accounts_limit_is_refused_before_anything_is_stored(deps, tenant,
                                                                                          mailbox_factory):
    import datetime as dt

    from salesinbox.adapters.db.tables import OutboundMessage

    account_id = await connect_mailbox(deps, tenant.admin, mailbox_factory(), synced=False, attachment_limit_mb=1)
    big = outbox.Attachment("video.mp4", "video/mp4", b"\0" * (1024 * 1024 + 1))
    with pytest.raises(ValidationFailed) as refused:
        await outbox.enqueue(deps, tenant.admin, OutgoingMessage(account_id, to=["a@b.test"], attachments=[big]))
    assert "1 MB" in refused.value.errors["attachments"]
    # The limit is on the files, as providers document it, not on the message base64 makes 4/3 as big.
    fits = outbox.Attachment("clip.mp4", "video/mp4", b"\1" * (1024 * 1024 - 4096))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)  # held: nothing is due to go from this test
    queued = await outbox.enqueue(deps, tenant.admin, OutgoingMessage(account_id, to=["a@b.test"], attachments=[fits],
                                                                      send_at=later))
    async with deps.reading() as db:
        row = await db.get(OutboundMessage, (tenant.company_id, queued.id))
    assert queued.status == "scheduled" and row.size > 1024 * 1024
    assert await outbox.cancel(deps, tenant.admin, queued.id)


async def test_undo_stops_a_held_message_and_a_reply_draft_quotes_and_addresses_the_sender(deps, tenant, dovecot,
                                                                                            mailbox_factory):
    import datetime as dt

    from tests.integration.test_sync import mail

    me, customer = mailbox_factory(), mailbox_factory()
    dovecot.deliver(me.address, mail(me.address, "Re: Demo", "Can we meet?", sender=customer.address)[0])
    account_id = await connect(deps, tenant, me)
    held = await outbox.enqueue(deps, tenant.admin, OutgoingMessage(
        account_id, to=[customer.address], subject="Held", send_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)))
    assert held.status == "scheduled"
    assert await outbox.deliver(deps, tenant.company_id, held.id) == "scheduled"  # not due
    assert await outbox.cancel(deps, tenant.admin, held.id) is True
    assert await outbox.deliver_due(deps) == 0

    [summary] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    [original] = (await conversations.get_conversation(deps, tenant.admin, summary.id)).messages
    draft = await outbox.draft_for(deps, tenant.admin, original.id, "reply")
    assert (draft.to, draft.subject, draft.in_reply_to, draft.account_id) == (
        customer.address, "Re: Demo", original.id, account_id)
    assert "> Can we meet?" in draft.text
    forward = await outbox.draft_for(deps, tenant.admin, original.id, "forward")
    assert forward.subject == "Fwd: Demo" and forward.to == "" and "Can we meet?" in forward.text


async def test_a_send_a_dead_process_left_is_queued_again_before_data_and_unknown_after(deps, tenant,
                                                                                       mailbox_factory):
    import datetime as dt

    from sqlalchemy import update

    from salesinbox.adapters.db.tables import OutboundMessage

    account_id = await connect(deps, tenant, mailbox_factory())
    before = await outbox.enqueue(deps, tenant.admin, OutgoingMessage(account_id, to=["a@b.test"], subject="before"))
    after = await outbox.enqueue(deps, tenant.admin, OutgoingMessage(account_id, to=["a@b.test"], subject="after"))
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    async with deps.writing() as db:  # what a process killed mid-send leaves behind
        for row_id, handed_over in ((before.id, False), (after.id, True)):
            await db.execute(update(OutboundMessage).where(OutboundMessage.id == row_id).values(
                status="sending", handed_over=handed_over, updated_at=long_ago))

    await outbox.recover(deps)

    assert (await outbox.get_outbound(deps, tenant.admin, before.id)).status == "queued"
    unknown = await outbox.get_outbound(deps, tenant.admin, after.id)
    assert unknown.status == "outcome_unknown" and "may have been delivered" in unknown.last_error
