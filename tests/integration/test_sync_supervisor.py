"""Keeping accounts in sync: IDLE brings new mail in without anyone asking."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest

from salesinbox import bootstrap
from salesinbox.domain.accounts import Security, SyncStart
from salesinbox.services import accounts, conversations, idle, sync
from salesinbox.services.accounts import AccountInput, oauth_aware_imap_login
from salesinbox.workers.sync_supervisor import BACKOFF_MAX, backoff, supervise
from tests.integration.test_sync import connect, imap, mail, status_of


def test_backoff_is_jittered_grows_and_is_capped():
    rng = random.Random(1)
    first = [backoff(0, rng) for _ in range(200)]
    late = [backoff(20, rng) for _ in range(200)]
    assert max(first) <= 5.0 and len(set(first)) > 100  # spread out, not a herd
    assert max(late) <= BACKOFF_MAX and max(late) > 5.0


async def test_new_mail_arrives_through_idle_while_the_supervisor_runs(deps, tenant, dovecot, mailbox):
    dovecot.deliver(mailbox.address, mail(mailbox.address, "Before", "already there")[0])
    account_id = await connect(deps, tenant, mailbox)
    stop = asyncio.Event()
    task = asyncio.create_task(supervise(deps, stop, [account_id]))
    try:
        await _until(lambda s: s.synced == 1 and s.state == "idle", deps, account_id)
        await asyncio.to_thread(dovecot.deliver, mailbox.address, mail(mailbox.address, "After", "pushed")[0])
        await _until(lambda s: s.synced == 2, deps, account_id)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


async def _until(condition, deps, account_id, within: float = 45.0) -> None:
    deadline = time.monotonic() + within
    while not condition(await status_of(deps, account_id)):
        assert time.monotonic() < deadline, f"timed out: {await status_of(deps, account_id)}"
        await asyncio.sleep(0.1)


async def test_a_flag_changed_between_the_pass_and_idle_brings_a_pass_at_once(deps, tenant, dovecot, mailbox):
    """IDLE announces only what happens while it runs: a phone marking a message read just after
    the pass would otherwise wait for the next poll of every folder (minutes)."""
    dovecot.deliver(mailbox.address, mail(mailbox.address, "Read on the phone", "hello")[0])
    account_id = await connect(deps, tenant, mailbox)
    await sync.sync_account_once(deps, account_id)
    stop = asyncio.Event()
    assert await sync.wait_for_inbox_change(deps, account_id, 1.0, stop) is False  # nothing changed: IDLE ran out

    with imap(mailbox) as phone:
        phone.select_folder("INBOX")
        phone.add_flags(phone.search(["ALL"]), [b"\\Seen"])
    started = time.monotonic()
    assert await sync.wait_for_inbox_change(deps, account_id, 30.0, stop) is True
    assert time.monotonic() - started < 10  # not by running out: at once

    await sync.sync_account_once(deps, account_id)  # the pass takes the flag, and IDLE is quiet again
    assert await sync.wait_for_inbox_change(deps, account_id, 1.0, stop) is False


@pytest.fixture(params=["qresync", "plain"])
def idle_server(request, dovecot, smtp_server):
    from tests.rig.plugin import new_mailbox

    imap_server = dovecot if request.param == "qresync" else request.getfixturevalue("dovecot_plain")
    return request.param, imap_server, new_mailbox(imap_server, smtp_server)


async def test_new_mail_is_taken_on_the_idle_connection_without_a_pass(deps, tenant, idle_server, monkeypatch):
    kind, imap_server, box = idle_server
    imap_server.deliver(box.address, mail(box.address, "Before", "already there")[0])
    account_id = await connect(deps, tenant, box)
    passes: list[tuple | None] = []
    real_pass = sync.sync_account_once

    async def counted(deps, account_id, progress=None, *, roles=None):
        passes.append(roles)
        return await real_pass(deps, account_id, progress, roles=roles)

    monkeypatch.setattr(sync, "sync_account_once", counted)
    stop = asyncio.Event()
    task = asyncio.create_task(supervise(deps, stop, [account_id]))
    try:
        await _until(lambda s: s.synced == 1 and s.state == "idle", deps, account_id)
        await _until_idling(account_id)
        first = len(passes)
        for n in range(3):  # one at a time: each wakes IDLE, and is stored from its connection
            await asyncio.to_thread(imap_server.deliver, box.address, mail(box.address, f"Pushed {n}", "new")[0])
            await _until(lambda s, n=n: s.messages == 2 + n, deps, account_id)
        status = await status_of(deps, account_id)
        assert (status.server_total, status.synced, status.messages) == (4, 4, 4)
        assert len(passes) == first  # no pass, no login: the IDLE connection took them
        listed = await conversations.list_conversations(deps, tenant.admin, folder="inbox")
        assert sorted(c.subject for c in listed) == ["Before", "Pushed 0", "Pushed 1", "Pushed 2"]

        with imap(box) as phone:  # a flag change still brings a pass of INBOX, which takes it
            phone.select_folder("INBOX")
            phone.add_flags(phone.search(["SUBJECT", "Pushed 1"]), [b"\\Seen"])
        deadline = time.monotonic() + 45
        while next(c for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")
                   if c.subject == "Pushed 1").unread:
            assert time.monotonic() < deadline, "the flag set elsewhere never arrived"
            await asyncio.sleep(0.1)
        assert ("inbox",) in passes[first:]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


async def test_new_mail_with_other_changes_is_stored_and_a_pass_is_asked_for(deps, tenant, idle_server):
    kind, imap_server, box = idle_server
    for n in range(3):
        imap_server.deliver(box.address, mail(box.address, f"Old {n}", "there")[0])
    account_id = await connect(deps, tenant, box)
    await sync.sync_account_once(deps, account_id)
    account = await sync._load_account(deps, account_id)
    session = await idle.connect(deps, await oauth_aware_imap_login(deps, account))
    try:
        known = await idle.in_idle_thread(lambda: session.examine("INBOX"))
        imap_server.deliver(box.address, mail(box.address, "Only new", "fresh")[0])
        after = await sync.take_new_inbox_mail(deps, account_id, session, known)
        assert after is not None and after.uidnext == known.uidnext + 1  # nothing else changed: IDLE goes on

        with imap(box) as phone:  # an expunge and a new message together
            phone.select_folder("INBOX")
            phone.delete_messages(phone.search(["SUBJECT", "Old 0"]))
            phone.expunge()
        imap_server.deliver(box.address, mail(box.address, "With an expunge", "fresh")[0])
        assert await sync.take_new_inbox_mail(deps, account_id, session, after) is None  # a pass must look
        status = await status_of(deps, account_id)
        assert status.messages == 5  # the new one is stored all the same

        if kind == "qresync":  # a flag change beside new mail: SEARCH MODSEQ finds it
            await sync.sync_account_once(deps, account_id)
            known = await idle.in_idle_thread(lambda: session.examine("INBOX"))
            with imap(box) as phone:
                phone.select_folder("INBOX")
                phone.add_flags(phone.search(["SUBJECT", "Old 1"]), [b"\\Seen"])
            imap_server.deliver(box.address, mail(box.address, "With a flag", "fresh")[0])
            assert await sync.take_new_inbox_mail(deps, account_id, session, known) is None
    finally:
        await idle.in_idle_thread(session.close)

    await sync.sync_account_once(deps, account_id)  # the pass settles the rest
    status = await status_of(deps, account_id)
    expected = 5 if kind == "qresync" else 4
    assert (status.server_total, status.synced) == (expected, expected)
    listed = {c.subject: c for c in await conversations.list_conversations(deps, tenant.admin, folder="inbox")}
    assert "Old 0" not in listed and "With an expunge" in listed
    if kind == "qresync":
        assert not listed["Old 1"].unread


async def _until_idling(account_id, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while account_id not in idle.idling():
        assert time.monotonic() < deadline, "the account never reached IDLE"
        await asyncio.sleep(0.05)


async def test_idle_over_tls_takes_new_mail(settings, tenant, dovecot_tls):
    """Real providers speak IMAPS: IDLE, and new mail taken on its connection, work over TLS too
    (a TLS socket reports an empty read buffer by raising, where a plain one answers nothing)."""
    runtime = bootstrap.build_runtime(settings.model_copy(update={"tls_ca_file": dovecot_tls.ca_path}))
    deps = runtime.deps
    stop = asyncio.Event()
    task = None
    try:
        address = f"tls-{uuid.uuid4().hex[:12]}@example.test"
        dovecot_tls.add_user(address, "tls-pass-1")
        dovecot_tls.deliver(address, mail(address, "Before", "already there")[0])
        view = await accounts.connect_account(deps, tenant.admin, AccountInput(
            address=address, password="tls-pass-1", imap_host=dovecot_tls.host, imap_port=dovecot_tls.imaps_port,
            imap_security=Security.TLS, smtp_host=dovecot_tls.host, smtp_port=dovecot_tls.submissions_port,
            smtp_security=Security.TLS, sync_start=SyncStart.EVERYTHING), verify=False)
        task = asyncio.create_task(supervise(deps, stop, [view.id]))
        await _until(lambda s: s.synced == 1 and s.state == "idle", deps, view.id)
        await _until_idling(view.id)
        await asyncio.to_thread(dovecot_tls.deliver, address, mail(address, "Over TLS", "pushed")[0])
        await _until(lambda s: s.messages == 2, deps, view.id)
        assert view.id in idle.idling()  # still in IDLE: the connection was not lost
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, timeout=60)
        await runtime.close()
