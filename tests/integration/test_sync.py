"""The sync engine against a real Dovecot, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select

from bench.gen_mailbox import chown_tree, generate
from salesinbox.adapters.db.tables import Message
from salesinbox.domain.accounts import Security, SyncStart
from salesinbox.services import accounts, conversations, sync
from salesinbox.services.accounts import AccountInput
from salesinbox.services.sync_status import account_statuses

CUSTOMER = "buyer@customer.example"


def mail(to: str, subject: str, body: str, *, msgid: str | None = None, refs: tuple[str, ...] = (),
         sender: str = CUSTOMER, day: int = 1) -> tuple[bytes, str]:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(dt.datetime(2026, 10, day, 9, tzinfo=dt.UTC))
    message["Message-ID"] = msgid or make_msgid(domain="customer.example")
    if refs:
        message["In-Reply-To"] = refs[-1]
        message["References"] = " ".join(refs)
    message.set_content(body)
    return bytes(message), message["Message-ID"]


def imap(mailbox) -> IMAPClient:
    client = IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=False, timeout=10)
    client.login(mailbox.login, mailbox.password)
    return client


async def connect(deps, tenant, mailbox) -> uuid.UUID:
    view = await accounts.connect_account(deps, tenant.admin, AccountInput(
        address=mailbox.address, login=mailbox.login, password=mailbox.password,
        imap_host=mailbox.imap_host, imap_port=mailbox.imap_port, imap_security=Security.NONE,
        smtp_host=mailbox.smtp_host, smtp_port=mailbox.smtp_port, smtp_security=Security.NONE,
        sync_start=SyncStart.EVERYTHING), verify=False)
    return view.id


async def status_of(deps, account_id):
    return (await account_statuses(deps, [account_id]))[0]


async def test_an_initial_sync_mirrors_every_message_and_threads_out_of_order_mail(deps, tenant, dovecot, mailbox):
    # the reply arrives before its parent; a sibling answers a parent we never see;
    # a client stripped the headers of another reply
    root, root_id = mail(mailbox.address, "Proposal", "Our offer is attached", msgid="<root@customer.example>")
    reply, _ = mail(mailbox.address, "Re: Proposal", "Looks good", refs=(root_id,), day=2)
    orphan1, _ = mail(mailbox.address, "Re: Kickoff", "see you", refs=("<missing@x>",), day=3)
    orphan2, _ = mail(mailbox.address, "Re: Kickoff", "me too", refs=("<missing@x>",), day=4)
    stripped, _ = mail(mailbox.address, "RE: Proposal", "one more thing", day=5)
    other, _ = mail(mailbox.address, "Invoice 42", "please pay", day=6)
    for raw in (reply, orphan1, root, orphan2, stripped, other):
        dovecot.deliver(mailbox.address, raw)
    with imap(mailbox) as client:
        client.append("Sent", mail(CUSTOMER, "Re: Invoice 42", "paid", refs=("<nowhere@x>",),
                                   sender=mailbox.address, day=7)[0], flags=[b"\\Seen"])

    account_id = await connect(deps, tenant, mailbox)
    report = await sync.sync_account_once(deps, account_id)

    status = await status_of(deps, account_id)
    assert report.fetched == 7
    assert (status.state, status.server_total, status.synced, status.messages) == ("idle", 7, 7, 7)
    assert status.conversations == 4  # Proposal (3), Kickoff (2), Invoice, the Sent reply without a parent
    inbox = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    proposal = next(c for c in inbox if c.subject == "Proposal")
    assert proposal.message_count == 3 and proposal.unread
    sent = await conversations.list_conversations(deps, tenant.admin, folder="sent")
    assert [c.unread for c in sent] == [False]


async def test_a_second_pass_fetches_nothing_and_incremental_changes_arrive(deps, tenant, dovecot, mailbox):
    first, _ = mail(mailbox.address, "Hello", "first body")
    dovecot.deliver(mailbox.address, first)
    account_id = await connect(deps, tenant, mailbox)
    await sync.sync_account_once(deps, account_id)
    assert (await sync.sync_account_once(deps, account_id)).fetched == 0

    dovecot.deliver(mailbox.address, mail(mailbox.address, "Second", "zebra crossing")[0])
    with imap(mailbox) as client:
        client.select_folder("INBOX")
        first_uid = min(client.search(["ALL"]))
        client.add_flags([first_uid], [b"\\Seen"])
    await sync.sync_account_once(deps, account_id)
    inbox = {c.subject: c for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")}
    assert set(inbox) == {"Hello", "Second"} and not inbox["Hello"].unread

    with imap(mailbox) as client:
        client.select_folder("INBOX")
        client.move([first_uid], "Archive")
    await sync.sync_account_once(deps, account_id)
    assert [c.subject for c in await conversations.list_conversations(deps, tenant.admin, folder="archive")] == [
        "Hello"]
    assert [c.subject for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")] == [
        "Second"]
    status = await status_of(deps, account_id)
    assert (status.server_total, status.synced, status.messages) == (2, 2, 2)


async def test_a_word_only_in_a_body_is_found_once_the_pass_returns(deps, tenant, dovecot, mailbox):
    dovecot.deliver(mailbox.address, mail(mailbox.address, "Quarterly", "the xylophonist quote")[0])
    account_id = await connect(deps, tenant, mailbox)
    await sync.sync_account_once(deps, account_id)
    found = await conversations.list_conversations(deps, tenant.admin, folder="inbox", query="xylophonist")
    assert [c.subject for c in found] == ["Quarterly"]
    assert await conversations.list_conversations(deps, tenant.admin, folder="inbox", query="absentword") == []
    full = await conversations.get_conversation(deps, tenant.admin, found[0].id)
    assert "xylophonist" in full.messages[0].text


def _renumber(mailbox, folder: str) -> None:
    """Make Dovecot give ``folder`` a new UIDVALIDITY, keeping its messages."""
    with imap(mailbox) as client:
        temp = f"tmp-{uuid.uuid4().hex[:6]}"
        client.create_folder(temp)
        client.select_folder(folder)
        uids = client.search(["ALL"])
        if uids:
            client.copy(uids, temp)
        client.close_folder()
        client.delete_folder(folder)
        client.rename_folder(temp, folder)


async def test_a_uidvalidity_change_resyncs_without_duplicates_and_the_loop_guard_trips(deps, tenant, dovecot,
                                                                                        mailbox):
    for i in range(3):
        with imap(mailbox) as client:
            client.append("Archive", mail(mailbox.address, f"Kept {i}", "archived body")[0])
    account_id = await connect(deps, tenant, mailbox)
    await sync.sync_account_once(deps, account_id)
    before = await conversations.list_conversations(deps, tenant.admin, folder="archive")

    for _ in range(3):
        _renumber(mailbox, "Archive")
        await sync.sync_account_once(deps, account_id)
    after = await conversations.list_conversations(deps, tenant.admin, folder="archive")
    assert sorted(c.id for c in after) == sorted(c.id for c in before)  # same conversations: identity kept
    status = await status_of(deps, account_id)
    assert (status.messages, status.synced, status.state) == (3, 3, "idle")

    _renumber(mailbox, "Archive")
    with pytest.raises(sync.SyncFailed):
        await sync.sync_account_once(deps, account_id)
    status = await status_of(deps, account_id)
    assert status.state == "stopped" and "UIDVALIDITY" in status.last_error


async def test_malformed_mail_is_stored_and_shown_without_stopping_the_sync(deps, tenant, dovecot, mailbox):
    broken = (b"From: =?utf-8?B?broken?= <bad@@example>\r\nSubject: =?x-unknown?Q?Caf=E9?=\r\n"
              b"Date: not a date\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
              b"Content-Type: text/plain; charset=us-ascii\r\n\r\nCaf\xe9 cr\xe8me\r\n--zz\r\n"
              b"Content-Type: application/pdf; name*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK===\r\n")
    dovecot.deliver(mailbox.address, broken)
    dovecot.deliver(mailbox.address, mail(mailbox.address, "Fine", "normal")[0])
    account_id = await connect(deps, tenant, mailbox)
    await sync.sync_account_once(deps, account_id)
    status = await status_of(deps, account_id)
    assert (status.synced, status.messages, status.state) == (2, 2, "idle")
    listed = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    assert len(listed) == 2


async def test_a_wrong_password_fails_the_pass_with_plain_words(deps, tenant, mailbox):
    view = await accounts.connect_account(deps, tenant.admin, AccountInput(
        address=mailbox.address, login=mailbox.login, password="wrong", imap_host=mailbox.imap_host,
        imap_port=mailbox.imap_port, imap_security=Security.NONE, smtp_host=mailbox.smtp_host,
        smtp_port=mailbox.smtp_port, smtp_security=Security.NONE), verify=False)
    with pytest.raises(sync.SyncFailed):
        await sync.sync_account_once(deps, view.id)
    status = await status_of(deps, view.id)
    assert status.state == "failed" and "password" in status.last_error


async def test_another_users_mail_is_not_listed(deps, tenant, dovecot, mailbox):
    from salesinbox.services import workspace

    dovecot.deliver(mailbox.address, mail(mailbox.address, "Private", "mine")[0])
    account_id = await connect(deps, tenant, mailbox)
    await sync.sync_account_once(deps, account_id)
    rep = await workspace.add_user(deps, tenant.admin, email=f"x-{uuid.uuid4().hex[:6]}@acme.test",
                                   password="Rep-pass-1!")
    rep_actor = await workspace.authenticate(deps, rep.email, "Rep-pass-1!")
    assert await conversations.list_conversations(deps, rep_actor, folder="inbox") == []
    mine = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    from salesinbox.domain.errors import NotFound

    with pytest.raises(NotFound):
        await conversations.get_conversation(deps, rep_actor, mine[0].id)


async def test_a_mass_deletion_is_held_for_confirmation_and_applied_once_confirmed(deps, tenant, dovecot, mailbox):
    home = dovecot.directory / "mail" / mailbox.address
    generate(home / "Maildir", 120, seed=3, me=mailbox.address)
    chown_tree(home)
    account_id = await connect(deps, tenant, mailbox)
    await sync.sync_account_once(deps, account_id)
    with imap(mailbox) as client:
        client.select_folder("INBOX")
        doomed = sorted(client.search(["ALL"]))[:70]
        client.delete_messages(doomed)
        client.expunge()

    await sync.sync_account_once(deps, account_id)
    status = await status_of(deps, account_id)
    inbox = next(f for f in status.folders if f.role == "inbox")
    assert (status.synced, inbox.state) == (120, "needs_confirmation")  # nothing deleted here
    assert "70 messages vanished" in inbox.last_error

    assert await sync.confirm_held_deletions(deps, account_id) == 1
    await sync.sync_account_once(deps, account_id)
    status = await status_of(deps, account_id)
    assert (status.synced, status.server_total, status.messages) == (50, 50, 50)
    async with deps.reading() as db:  # the messages themselves (and later their links) are kept
        kept = await db.scalar(select(func.count()).select_from(Message).where(Message.company_id == tenant.company_id))
    assert kept == 120


# ---- incremental changes with and without QRESYNC ------------------------------------------


class _Recorder:
    """Wraps the real IMAP session and notes which reads a pass made."""

    def __init__(self, session, calls: list[str]) -> None:
        self._session, self._calls = session, calls

    def __getattr__(self, name):
        attribute = getattr(self._session, name)
        if name in ("uids", "uids_from", "changes_and_vanished", "changed_since", "flags"):
            self._calls.append(name)
        return attribute

    def connect(self):
        self._session.connect()
        return self


@pytest.fixture(params=["qresync", "plain"])
def server(request, dovecot, smtp_server):
    from tests.rig.plugin import new_mailbox

    imap_server = dovecot if request.param == "qresync" else request.getfixturevalue("dovecot_plain")
    return request.param, imap_server, new_mailbox(imap_server, smtp_server)


async def test_new_mail_flags_expunges_and_moves_arrive_with_and_without_qresync(deps, tenant, server):
    kind, imap_server, box = server
    with imap(box) as client:
        offered = set(client.capabilities())
    assert ({b"QRESYNC", b"CONDSTORE"} <= offered) == (kind == "qresync")
    calls: list[str] = []
    recording = dataclasses.replace(deps, open_mailbox=lambda login: _Recorder(deps.open_mailbox(login), calls))
    for n in range(5):
        imap_server.deliver(box.address, mail(box.address, f"Topic {n}", f"body {n}", day=n + 1)[0])
    account_id = await connect(recording, tenant, box)
    await sync.sync_account_once(recording, account_id)
    calls.clear()

    assert (await sync.sync_account_once(recording, account_id)).fetched == 0
    if kind == "qresync":
        assert calls == []  # nothing changed: HIGHESTMODSEQ says so, no UID list is read

    with imap(box) as client:
        client.select_folder("INBOX")
        uids = sorted(client.search(["ALL"]))
        client.add_flags(uids[:2], [b"\\Seen", b"$Important"])
        client.delete_messages([uids[2]])
        client.expunge()
        client.move([uids[3]], "Archive")
    imap_server.deliver(box.address, mail(box.address, "Topic new", "fresh body", day=9)[0])
    calls.clear()
    report = await sync.sync_account_once(recording, account_id)

    assert report.fetched == 2  # the new message, and the moved one in its new folder
    if kind == "qresync":
        assert "changes_and_vanished" in calls and "uids_from" in calls
    else:
        assert "changes_and_vanished" not in calls and "uids" in calls
    inbox = {c.subject: c for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")}
    assert set(inbox) == {"Topic 0", "Topic 1", "Topic 4", "Topic new"}
    assert [inbox[s].unread for s in ("Topic 0", "Topic 1", "Topic 4", "Topic new")] == [False, False, True, True]
    archive = await conversations.list_conversations(deps, tenant.admin, folder="archive")
    assert [c.subject for c in archive] == ["Topic 3"]
    status = await status_of(deps, account_id)
    assert (status.server_total, status.synced, status.messages) == (5, 5, 5)  # Topic 2 is gone from every folder

    with imap(box) as client:  # a flag taken back arrives too
        client.select_folder("INBOX")
        client.remove_flags([uids[0]], [b"\\Seen"])
    await sync.sync_account_once(recording, account_id)
    inbox = {c.subject: c for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")}
    assert inbox["Topic 0"].unread and not inbox["Topic 1"].unread


async def test_quoted_history_and_signature_are_folded_in_the_conversation(deps, tenant, dovecot, mailbox):
    body = (
        "Thursday works for us.\n\n-- \nJane Buyer\nHead of Purchasing\n\n"
        "On Mon, 5 Oct 2026 at 09:00, Rep <rep@acme.test> wrote:\n> Would Thursday suit you?\n> Best, Rep\n"
    )
    dovecot.deliver(mailbox.address, mail(mailbox.address, "Re: Meeting", body)[0])
    account_id = await connect(deps, tenant, mailbox)
    await sync.sync_account_once(deps, account_id)

    [summary] = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
    [message] = (await conversations.get_conversation(deps, tenant.admin, summary.id)).messages
    assert message.reply_text == "Thursday works for us."
    assert "Would Thursday suit you?" in message.quoted_text and "Would Thursday" not in message.reply_text
    assert "Head of Purchasing" in message.signature_text
    assert message.text.startswith("Thursday works for us.")  # the whole text stays available
