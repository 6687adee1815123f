"""Provider profiles and provider error texts, against a local server replaying Gmail, Microsoft 365, Yahoo
and iCloud (tests/support/scripted_imap.py): they cannot be reached from here."""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
import time
import uuid

import pytest
from sqlalchemy import select

from salesinbox.adapters.db.tables import Message, OutboundMessage
from salesinbox.adapters.imap.session import ImapSession
from salesinbox.domain import provider_profiles as profiles
from salesinbox.domain.accounts import Security, SyncStart
from salesinbox.services import accounts, labels, outbox, sync
from salesinbox.services.accounts import AccountInput
from salesinbox.services.outbox import OutgoingMessage
from salesinbox.services.ports import ServerLogin
from salesinbox.services.sync_status import account_statuses
from salesinbox.workers import sync_supervisor
from tests.integration.test_sync import mail
from tests.support.scripted_imap import GENERIC, GMAIL, ICLOUD, MICROSOFT, YAHOO, ScriptedImapServer


def scripted(persona, address: str | None = None) -> ScriptedImapServer:
    return ScriptedImapServer(persona, address or f"u{uuid.uuid4().hex[:8]}@company.example", secrets.token_hex(8))


async def connect(deps, tenant, server: ScriptedImapServer, *, smtp=None) -> uuid.UUID:
    view = await accounts.connect_account(deps, tenant.admin, AccountInput(
        address=server.login, login=server.login, password=server.password, provider="other",
        imap_host="127.0.0.1", imap_port=server.port, imap_security=Security.NONE,
        smtp_host=smtp.host if smtp else "127.0.0.1", smtp_port=smtp.port if smtp else 1,
        smtp_security=Security.NONE, sync_start=SyncStart.EVERYTHING), verify=False)
    return view.id


async def status_of(deps, account_id):
    return (await account_statuses(deps, [account_id]))[0]


def session_for(server: ScriptedImapServer) -> ImapSession:
    return ImapSession("127.0.0.1", server.port, "none", server.login, server.password, timeout=10)


@pytest.mark.parametrize(("persona", "expected"), [
    (GMAIL, profiles.GMAIL), (MICROSOFT, profiles.MICROSOFT), (YAHOO, profiles.YAHOO),
    (ICLOUD, profiles.ICLOUD), (GENERIC, profiles.GENERIC),
])
def test_each_provider_is_recognised_from_what_its_server_says_not_from_its_host_name(persona, expected):
    with scripted(persona) as server, session_for(server) as session:
        assert session.profile is expected  # the host is 127.0.0.1 for all of them


# ---- provider error texts -> plain words and a least wait ------------------------------------------

FAULTS = [
    (GMAIL, "UID FETCH", "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)", None,
     "Gmail says this account has used up its allowance", 30 * 60.0),
    (GMAIL, "LOGIN", "NO [ALERT] Please log in via your web browser: "
     "https://support.google.com/mail/accounts/answer/78754 (Failure)", None,
     "Gmail wants you to sign in on its website", 10 * 60.0),
    (GMAIL, "EXAMINE", "NO [UNAVAILABLE] Temporary System Error", None, "Gmail had a temporary problem", 30.0),
    (GMAIL, "LOGIN", "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)", None,
     "The server refused the user name or password.", 10 * 60.0),
    (MICROSOFT, "UID FETCH", "BAD Request is throttled. Suggested Backoff Time: 299961 milliseconds",
     "* BYE Connection closed. 14", "Microsoft 365 is slowing this account down", 299.961),
    (MICROSOFT, "LIST", "NO User is authenticated but not connected.", None,
     "Microsoft 365 accepted the sign-in but does not let IMAP reach this mailbox", 15 * 60.0),
    (MICROSOFT, "LOGIN", "NO AUTHENTICATE failed.", None, "The server refused the user name or password.",
     10 * 60.0),
    (YAHOO, "UID FETCH", "NO [UNAVAILABLE] UID FETCH Server error - Please try again later", None,
     "Yahoo Mail had a temporary problem", 30.0),
    (YAHOO, "UID SEARCH", "NO [LIMIT] UID SEARCH Rate limit hit.", None,
     "Yahoo Mail says this account has used up its allowance", 30 * 60.0),
    (ICLOUD, "LOGIN", "NO [AUTHENTICATIONFAILED] Authentication failed", None,
     "The server refused the user name or password.", 10 * 60.0),
    (ICLOUD, "EXAMINE", "NO [UNAVAILABLE] Service temporarily unavailable", None,
     "iCloud Mail had a temporary problem", 30.0),
]


@pytest.mark.parametrize(("persona", "command", "reply", "bye", "words", "wait"), FAULTS,
                         ids=[f"{f[0].name}-{f[1]}-{f[2][:24]}" for f in FAULTS])
async def test_a_provider_error_becomes_plain_words_with_its_wait(deps, tenant, persona, command, reply, bye,
                                                                  words, wait):
    with scripted(persona) as server:
        server.add("INBOX", mail(server.login, "Quote", "our offer")[0], gm_msgid=1, gm_thrid=1)
        account_id = await connect(deps, tenant, server)
        server.fail(command, reply, bye=bye)
        with pytest.raises(sync.SyncFailed) as failed:
            await sync.sync_account_once(deps, account_id)
        status = await status_of(deps, account_id)
    assert failed.value.retry_after == pytest.approx(wait)
    assert status.state == "failed" and status.last_error.startswith(words)
    said = reply.partition(" ")[2]
    assert status.last_error.endswith(f"(The server said: “{said}”)")  # the server's own text is kept
    assert server.password not in status.last_error


async def test_too_many_connections_held_by_other_devices_is_not_called_a_wrong_password(deps, tenant):
    with scripted(GMAIL) as server:
        account_id = await connect(deps, tenant, server)
        server.occupy(15)  # the person's phone, tablet and desktop client hold every place Gmail allows
        with pytest.raises(sync.SyncFailed) as failed:
            await sync.sync_account_once(deps, account_id)
        status = await status_of(deps, account_id)
    assert server.refused == 1 and failed.value.retry_after == 60.0
    assert status.last_error.startswith("Gmail refused a connection because too many apps or devices")
    assert "Too many simultaneous connections" in status.last_error and "password" not in status.last_error


async def test_the_supervisor_retries_no_sooner_than_microsoft_suggests(deps, tenant, monkeypatch):
    # the usual backoff alone would retry within milliseconds: only the suggested time can hold it back
    monkeypatch.setattr(sync_supervisor, "BACKOFF_FIRST", 0.001)
    with scripted(MICROSOFT) as server:
        server.add("INBOX", mail(server.login, "Quote", "our offer")[0])
        account_id = await connect(deps, tenant, server)
        server.fail("UID FETCH", "BAD Request is throttled. Suggested Backoff Time: 1500 milliseconds",
                    bye="* BYE Connection closed. 14")
        stop = asyncio.Event()
        task = asyncio.create_task(sync_supervisor.supervise(deps, stop, [account_id]))
        try:
            deadline = time.monotonic() + 30
            while (await status_of(deps, account_id)).synced != 1:
                assert time.monotonic() < deadline, await status_of(deps, account_id)
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)
    throttled = server.times_of("refused UID FETCH")
    logins = server.times_of("LOGIN")
    assert len(throttled) == 1 and len(logins) >= 2
    assert logins[1] - throttled[0] >= 1.5


def test_the_backoff_never_undercuts_the_wait_a_provider_asked_for():
    rng = random.Random(7)
    delays = [sync_supervisor.retry_delay(attempt, 90.0, rng) for attempt in range(12) for _ in range(50)]
    assert min(delays) >= 90.0 and max(delays) <= sync_supervisor.BACKOFF_MAX  # spread by at most 10 %
    assert len(set(delays)) > 100
    assert sync_supervisor.retry_delay(0, None, rng) <= sync_supervisor.BACKOFF_FIRST


@pytest.mark.parametrize("persona", [GMAIL, MICROSOFT])
def test_xoauth2_is_answered_as_gmail_and_microsoft_answer_it(persona):
    from imapclient import IMAPClient
    from imapclient.exceptions import LoginError

    from salesinbox.adapters.imap.session import server_words
    from salesinbox.domain.provider_errors import TroubleKind, kind_of

    with scripted(persona) as server:
        with IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10) as client:
            client.oauth2_login(server.login, server.password)
            assert b"X-GM-EXT-1" in client.capabilities() or persona is MICROSOFT
        with IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10) as client:
            with pytest.raises(LoginError) as refused:
                client.oauth2_login(server.login, "a-revoked-token")
    assert kind_of(server_words(refused.value)) is TroubleKind.AUTH
    assert server.commands.count("AUTHENTICATE XOAUTH2") == 2


# ---- profile facts -----------------------------------------------------------------------------


async def test_yahoo_is_never_sent_changedsince_although_it_reports_highestmodseq(deps, tenant):
    with scripted(YAHOO) as server:
        uid = server.add("INBOX", mail(server.login, "Quote", "our offer")[0])
        account_id = await connect(deps, tenant, server)
        await sync.sync_account_once(deps, account_id)
        server.folders["INBOX"].messages[uid].flags = ["\\Seen"]  # read on the phone
        server.folders["INBOX"].messages[uid].modseq = 2
        await sync.sync_account_once(deps, account_id)
        status = await status_of(deps, account_id)
    assert status.state == "idle" and status.synced == 1
    assert not [c for c in server.commands if "CHANGEDSINCE" in c.upper() or "MODSEQ" in c.upper()]
    second_pass = server.commands[[i for i, c in enumerate(server.commands) if c.startswith("LOGIN")][1]:]
    assert "UID FETCH 1 (FLAGS)" in second_pass  # the flags read in full instead
    inbox = await _inbox(deps, tenant)
    assert [c.unread for c in inbox] == [False]


async def _inbox(deps, tenant):
    from salesinbox.services import conversations

    return await conversations.list_conversations(deps, tenant.admin, folder="inbox")


def test_the_app_never_opens_more_connections_to_one_account_than_its_profile_allows(deps):
    # Gmail refuses the 16th connection; twenty tasks wanting one at once must queue instead
    with scripted(GMAIL) as server:
        release, failures, done = threading.Event(), [], []
        login = ServerLogin("127.0.0.1", server.port, "none", server.login, server.password)

        def use_a_connection() -> None:
            try:
                session = deps.open_mailbox(login).connect()
            except Exception as exc:  # noqa: BLE001 - collected for the assertion below
                failures.append(exc)
                return
            try:
                release.wait(timeout=20)
                done.append(session.profile.key)
            finally:
                session.close()

        threads = [threading.Thread(target=use_a_connection) for _ in range(20)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while server.open_now < profiles.GMAIL.max_connections:  # every place the app allows is taken
            assert time.monotonic() < deadline and not failures, failures
            time.sleep(0.02)
        release.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == [] and done == ["gmail"] * 20
    assert server.refused == 0 and server.most_at_once == profiles.GMAIL.max_connections < 15


@pytest.mark.parametrize(("persona", "outcome", "appends"), [
    (GMAIL, "by_provider", 0), (MICROSOFT, "by_provider", 0), (GENERIC, "appended", 1),
])
async def test_no_sent_copy_is_appended_where_the_provider_files_it(deps, tenant, mailbox_factory, persona,
                                                                    outcome, appends):
    me, customer = mailbox_factory(), mailbox_factory()  # SMTP goes through the rig; IMAP is the provider
    with scripted(persona, me.login) as server:
        server.password = me.password
        smtp = ServerLogin(me.smtp_host, me.smtp_port, "none", me.login, me.password)
        account_id = await connect(deps, tenant, server, smtp=smtp)
        await sync.sync_account_once(deps, account_id)
        queued = await outbox.enqueue(deps, tenant.admin, OutgoingMessage(
            account_id, to=[customer.address], subject="Quote", text="Our quote."))
        assert await outbox.deliver(deps, tenant.company_id, queued.id) == "sent"
        async with deps.reading() as db:
            row = await db.get(OutboundMessage, (tenant.company_id, queued.id))
    assert row.sent_copy == outcome  # the account was connected as "other": the server's profile decided
    assert len(server.appends) == appends


# ---- Gmail: All Mail, X-GM-MSGID, X-GM-LABELS ------------------------------------------------------


async def test_gmail_all_mail_brings_archived_mail_and_each_message_is_downloaded_once_with_its_labels(deps, tenant):
    inbox_mail, _ = mail("me", "Proposal", "our offer", msgid="<a@customer.example>")
    archived, _ = mail("me", "Old invoice", "paid long ago", msgid="<b@customer.example>", day=2)
    sent, _ = mail("buyer@customer.example", "Re: Proposal", "thanks", msgid="<c@company.example>", day=3)
    with scripted(GMAIL) as server:
        for folder, raw, msgid, labels_ in (
            ("INBOX", inbox_mail, 1001, ["\\Inbox", "\\Important", "Customer Acme", "Квартал 4"]),
            ("[Gmail]/Sent Mail", sent, 1003, ["\\Sent"]),
            ("[Gmail]/All Mail", inbox_mail, 1001, ["\\Inbox", "\\Important", "Customer Acme", "Квартал 4"]),
            ("[Gmail]/All Mail", archived, 1002, ["Customer Acme"]),
            ("[Gmail]/All Mail", sent, 1003, ["\\Sent"]),
        ):
            server.add(folder, raw, gm_msgid=msgid, gm_thrid=msgid + 4000, gm_labels=labels_)
        account_id = await connect(deps, tenant, server)
        first = await sync.sync_account_once(deps, account_id)
        again = await sync.sync_account_once(deps, account_id)
        status = await status_of(deps, account_id)
        bodies = server.bodies_sent

    assert {f.name for f in first.folders} >= {"INBOX", "[Gmail]/Sent Mail", "[Gmail]/All Mail"}
    assert (status.messages, status.synced) == (3, 5)  # stored once each; INBOX + Sent + 3 in All Mail
    assert bodies == 3 and first.fetched == 3 and again.fetched == 0  # All Mail's copies were not downloaded again
    async with deps.reading() as db:
        conversation_of = {header.strip("<>"): c for header, c in (await db.execute(
            select(Message.message_id_header, Message.conversation_id).where(Message.company_id == tenant.company_id)
        )).all()}
        names = await labels.labels_of(db, tenant.company_id, conversation_of.values())
    assert sorted(names[conversation_of["a@customer.example"]]) == ["Customer Acme", "Квартал 4"]
    assert names[conversation_of["b@customer.example"]] == ["Customer Acme"]  # archived: only in All Mail
    every = {n for found in names.values() for n in found}
    assert every == {"Customer Acme", "Квартал 4"}  # Gmail's own (\\Inbox, \\Sent, \\Important) are no labels


async def test_a_message_moved_back_to_the_inbox_in_gmail_later_is_placed_by_its_id_not_downloaded(deps, tenant):
    """X-GM-MSGIDs are kept with the locations: a later pass knows the message, not only the pass that stored it."""
    raw, _ = mail("me", "Old invoice", "paid long ago", msgid="<later@customer.example>")
    with scripted(GMAIL) as server:
        server.add("[Gmail]/All Mail", raw, gm_msgid=4001, gm_thrid=4001, gm_labels=["Customer Acme"])  # archived
        account_id = await connect(deps, tenant, server)
        await sync.sync_account_once(deps, account_id)
        assert await _inbox(deps, tenant) == [] and server.bodies_sent == 1

        # In Gmail's web app, the user moves it back to the Inbox: a new UID in INBOX, the same X-GM-MSGID.
        [kept] = server.folders["[Gmail]/All Mail"].messages.values()
        kept.gm_labels = ["\\Inbox", "Customer Acme"]
        server.add("INBOX", raw, gm_msgid=4001, gm_thrid=4001, gm_labels=["\\Inbox", "Customer Acme"])
        report = await sync.sync_account_once(deps, account_id)
        listed = await _inbox(deps, tenant)
        status = await status_of(deps, account_id)
    assert server.bodies_sent == 1 and report.fetched == 0  # placed, not downloaded again
    assert [c.subject for c in listed] == ["Old invoice"]
    assert (status.messages, status.synced) == (1, 2)


async def test_a_label_set_here_shows_in_gmail_and_one_taken_off_here_leaves_it(deps, tenant):
    raw, _ = mail("me", "Proposal", "our offer")
    with scripted(GMAIL) as server:
        server.add("INBOX", raw, gm_msgid=2001, gm_thrid=2001, gm_labels=["\\Inbox"])
        server.add("[Gmail]/All Mail", raw, gm_msgid=2001, gm_thrid=2001, gm_labels=["\\Inbox"])
        account_id = await connect(deps, tenant, server)
        await sync.sync_account_once(deps, account_id)
        conversation = (await _inbox(deps, tenant))[0]

        await labels.set_labels(deps, tenant.admin, conversation.id, ["Won deal", "Étape 2"])
        in_gmail = server.folders["[Gmail]/All Mail"].messages[1].gm_labels
        assert sorted(in_gmail) == ["Won deal", "\\Inbox", "Étape 2"]  # a label is on the message in every folder
        await labels.set_labels(deps, tenant.admin, conversation.id, ["Étape 2"])
        assert sorted(in_gmail) == ["\\Inbox", "Étape 2"]
        await sync.sync_account_once(deps, account_id)  # what was written comes back unchanged
    async with deps.reading() as db:
        names = await labels.labels_of(db, tenant.company_id, [conversation.id])
    assert names[conversation.id] == ["Étape 2"]


async def test_gmail_archives_out_of_the_inbox_into_all_mail_and_back(deps, tenant):
    from salesinbox.services import actions, conversations

    raw, _ = mail("me", "Proposal", "our offer", msgid="<arch@customer.example>")
    with scripted(GMAIL) as server:
        server.add("INBOX", raw, gm_msgid=3001, gm_thrid=3001, gm_labels=["\\Inbox", "Customer Acme"])
        server.add("[Gmail]/All Mail", raw, gm_msgid=3001, gm_thrid=3001, gm_labels=["\\Inbox", "Customer Acme"])
        account_id = await connect(deps, tenant, server)
        await sync.sync_account_once(deps, account_id)
        [conversation] = await _inbox(deps, tenant)
        assert await conversations.list_conversations(deps, tenant.admin, folder="archive") == []

        archived = await actions.archive(deps, tenant.admin, conversation.id)  # Gmail has no Archive folder
        [kept] = server.folders["[Gmail]/All Mail"].messages.values()
        assert archived.changed == 1 and server.folders["INBOX"].messages == {}
        assert kept.gm_labels == ["Customer Acme"]  # the Inbox label is off; the message stays in All Mail
        assert await _inbox(deps, tenant) == []
        [listed] = await conversations.list_conversations(deps, tenant.admin, folder="archive")
        assert listed.id == conversation.id
        await sync.sync_account_once(deps, account_id)  # what was written comes back unchanged
        assert [c.id for c in await conversations.list_conversations(deps, tenant.admin, folder="archive")] == [
            conversation.id]

        back = await actions.unarchive(deps, tenant.admin, conversation.id)
        assert back.changed == 1 and len(server.folders["[Gmail]/All Mail"].messages) == 1  # copied, not moved
        [again] = server.folders["INBOX"].messages.values()
        assert sorted(again.gm_labels) == ["Customer Acme", "\\Inbox"]
        assert [c.id for c in await _inbox(deps, tenant)] == [conversation.id]
        assert await conversations.list_conversations(deps, tenant.admin, folder="archive") == []
        await sync.sync_account_once(deps, account_id)
        assert [c.id for c in await _inbox(deps, tenant)] == [conversation.id]
        status = await status_of(deps, account_id)
    assert (status.messages, status.synced) == (1, 2)


async def test_labels_set_or_taken_off_in_gmail_later_are_followed(deps, tenant, dovecot, mailbox):
    from tests.support.mailboxes import connect_mailbox

    raw, _ = mail("me", "Renewal", "the contract", msgid="<follow@customer.example>")
    reply, _ = mail("me", "Re: Renewal", "signed", msgid="<follow2@customer.example>", day=2,
                    refs=("<follow@customer.example>",))
    with scripted(GMAIL) as server:
        for folder, body, msgid in (("INBOX", raw, 4001), ("[Gmail]/All Mail", raw, 4001),
                                    ("[Gmail]/All Mail", reply, 4002)):
            server.add(folder, body, gm_msgid=msgid, gm_thrid=4001, gm_labels=["Customer Acme"])
        account_id = await connect(deps, tenant, server)
        await sync.sync_account_once(deps, account_id)
        [conversation] = await _inbox(deps, tenant)

        async def names():
            async with deps.reading() as db:
                return sorted((await labels.labels_of(db, tenant.company_id, [conversation.id])).get(
                    conversation.id, []))

        assert await names() == ["Customer Acme"]

        def in_gmail(msgid: int, *, add=(), remove=()):  # what a person does in Gmail's web page
            for box in server.folders.values():
                for stored in box.messages.values():
                    if stored.gm_msgid == msgid:
                        stored.gm_labels = [n for n in stored.gm_labels if n not in remove] + list(add)
                        stored.modseq += 1

        in_gmail(4002, add=["Signed"])
        await sync.sync_account_once(deps, account_id)
        assert await names() == ["Customer Acme", "Signed"]

        in_gmail(4001, remove=["Customer Acme"])  # the reply still carries it: it stays
        await sync.sync_account_once(deps, account_id)
        assert await names() == ["Customer Acme", "Signed"]

        # Renamed here: renamed in Gmail too, so a later change there does not bring the old name back.
        [signed] = [label for label in await labels.list_labels(deps, tenant.admin) if label.name == "Signed"]
        await labels.rename_label(deps, tenant.admin, signed.id, "Contract signed")
        assert server.renames == [("Signed", "Contract signed")]
        in_gmail(4001, add=["Priority"])
        await sync.sync_account_once(deps, account_id)
        assert await names() == ["Contract signed", "Customer Acme", "Priority"]
        assert "Signed" not in {label.name for label in await labels.list_labels(deps, tenant.admin)}

        in_gmail(4002, remove=["Customer Acme", "Contract signed"])  # off every message: off the conversation
        in_gmail(4001, remove=["Priority"])
        await sync.sync_account_once(deps, account_id)
        assert await names() == []

        # A label another account's mail client set (an IMAP keyword there) is not Gmail's to take off.
        dovecot.deliver(mailbox.address, reply)
        await connect_mailbox(deps, tenant.admin, mailbox)
        await labels.set_labels(deps, tenant.admin, conversation.id, ["Legal"])
        assert await names() == ["Legal"]
        in_gmail(4001, remove=["Legal"])
        in_gmail(4002, remove=["Legal"])
        await sync.sync_account_once(deps, account_id)
        assert await names() == ["Legal"]
