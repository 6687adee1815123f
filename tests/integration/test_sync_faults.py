"""Connections cut at random bytes during FETCH and IDLE, against a real Dovecot, through a TCP proxy.

A FETCH trial syncs one generated mailbox into a fresh company (one database
and one mailbox for the whole test): a pass cut at a random byte, then a pass
with no fault, which must complete. The outcome must equal an uninterrupted
run's: the same locations, messages, conversations and bookkeeping, nothing
twice, no connection left open. An IDLE trial cuts ``wait_for_inbox_change``
at a random byte, or while it waits: it must raise SyncFailed at once, never
hang, and the next pass brings in what arrived meanwhile.

The trial counts are this module's shares of ``SALESINBOX_FAULT_TRIALS``
(tests/support/fault_trials.py: 40 FETCH and 20 IDLE trials of the 200 in
CI; ``SALESINBOX_FAULT_TRIALS=1000`` for a long run, whose totals land in
bench/results/). The seed is fixed; ``SALESINBOX_FAULT_SEED`` changes it.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from imapclient import IMAPClient
from sqlalchemy import distinct, func, select

from bench.gen_mailbox import chown_tree, generate
from salesinbox.adapters.db.tables import (
    Attachment,
    Conversation,
    EmailAccount,
    MailFolder,
    Message,
    MessageLocation,
    MessageThreadKey,
)
from salesinbox.services import sync
from salesinbox.services.sync_status import account_statuses
from salesinbox.workers import sync_supervisor
from tests.support import mailboxes
from tests.support.fault_trials import SEED, Totals, connect_through, new_company, remote_writes, report, trials
from tests.support.faulty_proxy import FaultyProxy

COUNT = 150
FETCH_TRIALS = trials("fetch")
IDLE_TRIALS = trials("idle")
HANG = 30.0  # only a hang takes this long: the IMAP socket timeout is 60 s, and a cut is seen at once
PROMPT = 5.0  # a cut connection raises within this
# Dovecot's answers carry its timings ("(0.001 + 0.000 secs)"), so the same session varies by a
# few bytes: a cut drawn near the end could fall after the last byte (into IDLE's silence).
SLACK = 32

pytestmark = pytest.mark.timeout(max(300, (FETCH_TRIALS + IDLE_TRIALS) * 4))


@pytest.fixture
def proxy(dovecot) -> Iterator[FaultyProxy]:
    with FaultyProxy(dovecot.imap_port, lifetime=max(600.0, (FETCH_TRIALS + IDLE_TRIALS) * 4.0)) as running:
        yield running


def letter(to: str, subject: str) -> bytes:
    return mailboxes.letter(to, subject, f"{subject}.", dated=True)


async def status_of(deps, account_id: uuid.UUID):
    return (await account_statuses(deps, [account_id]))[0]


@dataclass(frozen=True)
class Mirror:
    """An account's synced state, in terms that do not depend on generated ids."""

    status: tuple  # (state, server_total, synced, messages, conversations, last_error)
    folders: tuple  # (name, state, server_total, synced, held_deletions, last_error)
    locations: tuple  # (folder, uid, dedupe key, flags)
    messages: tuple  # dedupe keys, one per row: a message stored twice shows twice (once under its hash)
    conversations: tuple  # each conversation as its messages' dedupe keys
    summaries: tuple  # (first dedupe key, subject, message_count, has_attachments, started, last message)
    rows: tuple  # (thread keys, attachments)
    duplicates: tuple  # (locations of one (folder, UID), messages of one Message-ID, of one content)
    miscounted: tuple  # conversations whose message_count is not their number of messages, or empty ones


async def mirror(deps, account_id: uuid.UUID) -> Mirror:
    s = await status_of(deps, account_id)
    async with deps.reading() as db:
        company = await db.scalar(select(EmailAccount.company_id).where(EmailAccount.id == account_id))
        folders = (await db.execute(
            select(MailFolder.id, MailFolder.name, MailFolder.state, MailFolder.server_total, MailFolder.synced,
                   MailFolder.held_deletions, MailFolder.last_error)
            .where(MailFolder.company_id == company).order_by(MailFolder.name))).all()
        locations = (await db.execute(
            select(MessageLocation.folder_id, MessageLocation.uid, Message.dedupe_key, MessageLocation.flags)
            .join(Message, (Message.company_id == MessageLocation.company_id)
                  & (Message.id == MessageLocation.message_id))
            .where(MessageLocation.company_id == company))).all()
        messages = (await db.execute(
            select(Message.dedupe_key, Message.conversation_id).where(Message.company_id == company))).all()
        summaries = (await db.execute(
            select(Conversation.id, Conversation.subject, Conversation.message_count, Conversation.has_attachments,
                   Conversation.started_at, Conversation.last_message_at)
            .where(Conversation.company_id == company))).all()
        thread_keys = await db.scalar(
            select(func.count()).select_from(MessageThreadKey).where(MessageThreadKey.company_id == company))
        attachments = await db.scalar(
            select(func.count()).select_from(Attachment).where(Attachment.company_id == company))
        one_uid_twice = await db.scalar(select(func.count()).select_from(
            select(MessageLocation.folder_id, MessageLocation.uid).where(MessageLocation.company_id == company)
            .group_by(MessageLocation.folder_id, MessageLocation.uid).having(func.count() > 1).subquery()))
        message_ids = await db.scalar(
            select(func.count(distinct(Message.message_id_header))).where(Message.company_id == company))
        contents = await db.scalar(
            select(func.count(distinct(Message.content_hash))).where(Message.company_id == company))
    names = {f.id: f.name for f in folders}
    members: dict[uuid.UUID, list[str]] = {}
    for key, conversation_id in messages:
        members.setdefault(conversation_id, []).append(key)
    return Mirror(
        status=(s.state, s.server_total, s.synced, s.messages, s.conversations, s.last_error),
        folders=tuple((f.name, f.state, f.server_total, f.synced, f.held_deletions, f.last_error) for f in folders),
        locations=tuple(sorted((names[f], uid, key, flags) for f, uid, key, flags in locations)),
        messages=tuple(sorted(key for key, _ in messages)),
        conversations=tuple(sorted(tuple(sorted(keys)) for keys in members.values())),
        summaries=tuple(sorted(
            (min(members.get(c.id, ["<no messages>"])), c.subject, c.message_count, c.has_attachments,
             c.started_at, c.last_message_at) for c in summaries)),
        rows=(thread_keys, attachments),
        duplicates=(one_uid_twice, len(messages) - message_ids, len(messages) - contents),
        miscounted=tuple(sorted(
            (c.subject, c.message_count, len(members.get(c.id, ())))
            for c in summaries if c.message_count != len(members.get(c.id, ())) or not members.get(c.id))),
    )


def batch_ends(count: int) -> set[int]:
    """How many messages a first pass can have stored when it fails: whole batches (newest first)."""
    ends, stored, index = {0}, 0, 0
    while stored < count:
        stored = min(count, stored + sync.BATCH_SIZES[min(index, len(sync.BATCH_SIZES) - 1)])
        ends.add(stored)
        index += 1
    return ends


async def connections_closed(proxy: FaultyProxy) -> None:
    """Every connection a pass or a wait opened is closed again (the server closes after LOGOUT)."""
    deadline = time.monotonic() + PROMPT
    while proxy.stats().open:
        assert time.monotonic() < deadline, f"connections left open: {proxy.stats()}"
        await asyncio.sleep(0.01)


def stray_task_errors(caplog) -> list[str]:
    """Tasks a pass left behind, whose failure nobody awaited (asyncio logs them when collected)."""
    gc.collect()
    return [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelname == "ERROR"]


def fetch_damage(outcome: Mirror, reference: Mirror) -> tuple[int, int]:
    """(lost, duplicated) locations and messages of ``outcome`` against the uninterrupted run's."""
    lost = len(set(reference.locations) - set(outcome.locations)) + len(set(reference.messages) - set(outcome.messages))
    duplicated = (len(outcome.locations) - len(set(reference.locations) & set(outcome.locations))
                  + len(outcome.messages) - len(set(outcome.messages) & set(reference.messages)))
    return lost, duplicated


async def test_syncs_cut_at_random_bytes_end_in_the_same_state_as_an_uninterrupted_one(
        deps, backend, dovecot, mailbox, proxy, caplog):
    home = dovecot.directory / "mail" / mailbox.address
    generate(home / "Maildir", COUNT, seed=11, me=mailbox.address)
    chown_tree(home)

    reference_id = await connect_through(deps, await new_company(deps), mailbox, proxy)
    proxy.reset_counters()
    await asyncio.wait_for(sync.sync_account_once(deps, reference_id), HANG)
    uninterrupted = proxy.stats()
    reference = await mirror(deps, reference_id)
    # One connection for the pass, which fetches the first batch; a worker process opens one for each other batch.
    assert (uninterrupted.connections, uninterrupted.cuts) == (len(batch_ends(COUNT)) - 1, 0)
    assert reference.status[:4] == ("idle", COUNT, COUNT, COUNT)
    assert reference.status[4] == len(reference.conversations) and 1 < len(reference.conversations) < COUNT
    assert len(reference.locations) == len(reference.messages) == COUNT
    assert (reference.duplicates, reference.miscounted) == ((0, 0, 0), ())

    rng = random.Random(SEED)
    outcomes = {"failed": 0, "completed": 0}
    totals = Totals("fetch")
    proxy.reset_counters()
    for trial in range(FETCH_TRIALS):
        account_id = await connect_through(deps, await new_company(deps), mailbox, proxy)
        # Most cuts land in FETCH responses (nearly all the bytes); some in the first few KB
        # (greeting, LOGIN, ENABLE, LIST, EXAMINE, SEARCH); some in what the client sends.
        roll = rng.random()
        if roll < 0.7:
            where = {"server_bytes": rng.randrange(uninterrupted.server_bytes - SLACK)}
        elif roll < 0.8:
            where = {"server_bytes": rng.randrange(min(4096, uninterrupted.server_bytes))}
        else:
            where = {"client_bytes": rng.randrange(uninterrupted.client_bytes)}
        rst = rng.random() < 0.75
        context = f"trial {trial}: a cut after {where} ({'RST' if rst else 'FIN'})"
        cuts = proxy.stats().cuts
        proxy.arm(**where, rst=rst)
        try:
            await asyncio.wait_for(sync.sync_account_once(deps, account_id), HANG)
            outcomes["completed"] += 1  # the cut hit LOGOUT's answer
        except sync.SyncFailed:
            outcomes["failed"] += 1
            # What the failed pass left is consistent: whole batches, each message once, counts right.
            partial = await mirror(deps, account_id)
            assert partial.status[0] == "failed", context
            assert len(partial.locations) == len(partial.messages) in batch_ends(COUNT), context
            assert (partial.duplicates, partial.miscounted) == ((0, 0, 0), ()), context
        finally:
            proxy.disarm()
        assert proxy.stats().cuts == cuts + 1, f"{context}: the cut never happened"
        await asyncio.wait_for(sync.sync_account_once(deps, account_id), HANG)  # the first clean pass completes
        outcome = await mirror(deps, account_id)
        lost, duplicated = fetch_damage(outcome, reference)
        totals.trials, totals.cuts = trial + 1, trial + 1
        totals.lost, totals.duplicated = totals.lost + lost, totals.duplicated + duplicated
        assert outcome == reference, context
        await connections_closed(proxy)

    totals.failed = outcomes["failed"]
    totals.stale_writes = len(remote_writes(proxy.transcripts()))  # a sync pass writes nothing at all
    report(totals, backend)
    assert totals.stale_writes == 0
    assert outcomes["failed"] >= FETCH_TRIALS * 0.9, outcomes
    assert not stray_task_errors(caplog)


async def test_a_connection_lost_while_logging_in_is_a_network_failure_not_a_wrong_password(
        deps, tenant, mailbox, proxy):
    # Where the answers to LOGIN and ENABLE lie in the server's bytes.
    proxy.reset_counters()
    with IMAPClient(proxy.host, port=proxy.port, ssl=False, timeout=10) as client:
        greeting = proxy.stats().server_bytes
        client.login(mailbox.login, mailbox.password)
        logged_in = proxy.stats().server_bytes
        client.enable("CONDSTORE")
        enabled = proxy.stats().server_bytes
    account_id = await connect_through(deps, tenant.admin, mailbox, proxy)

    for cut, rst in [((greeting + logged_in) // 2, False), ((greeting + logged_in) // 2, True),
                     ((logged_in + enabled) // 2, False), ((logged_in + enabled) // 2, True)]:
        context = f"a cut after {cut} bytes ({'RST' if rst else 'FIN'})"
        proxy.arm(server_bytes=cut, rst=rst)
        try:
            with pytest.raises(sync.SyncFailed) as failure:
                await asyncio.wait_for(sync.sync_account_once(deps, account_id), HANG)
        finally:
            proxy.disarm()
        status = await status_of(deps, account_id)
        assert status.state == "failed", context
        assert "password" not in str(failure.value) and "password" not in status.last_error, context

    await sync.sync_account_once(deps, account_id)
    assert (await status_of(deps, account_id)).state == "idle"


async def idle_until(proxy: FaultyProxy, task: asyncio.Task, marker: bytes) -> None:
    deadline = time.monotonic() + 10
    while not proxy.server_said(marker):
        assert not task.done(), f"wait_for_inbox_change ended before the server said {marker!r}: {task}"
        assert time.monotonic() < deadline, f"the server never said {marker!r}"
        await asyncio.sleep(0.01)


async def test_a_connection_cut_while_idling_raises_at_once_and_the_next_pass_fetches_what_arrived(
        deps, tenant, dovecot, mailbox, proxy):
    dovecot.deliver(mailbox.address, letter(mailbox.address, "Before"))
    account_id = await connect_through(deps, tenant.admin, mailbox, proxy)
    await sync.sync_account_once(deps, account_id)

    stop = asyncio.Event()
    waiting = asyncio.create_task(sync.wait_for_inbox_change(deps, account_id, 120, stop))
    try:
        await idle_until(proxy, waiting, b"+ idling")
        assert proxy.cut_all() == 1
        cut_at = time.monotonic()
        with pytest.raises(sync.SyncFailed):
            await asyncio.wait_for(asyncio.shield(waiting), HANG)
        assert time.monotonic() - cut_at < PROMPT
    finally:
        stop.set()
        proxy.cut_all()  # a wait still running ends now, not after its IDLE slice
        await asyncio.gather(waiting, return_exceptions=True)

    dovecot.deliver(mailbox.address, letter(mailbox.address, "Meanwhile"))
    await sync.sync_account_once(deps, account_id)
    status = await status_of(deps, account_id)
    assert (status.state, status.server_total, status.synced, status.messages) == ("idle", 2, 2, 2)


async def test_idle_sessions_cut_at_random_bytes_raise_at_once(deps, backend, tenant, dovecot, mailbox, proxy):
    dovecot.deliver(mailbox.address, letter(mailbox.address, "Before"))
    account_id = await connect_through(deps, tenant.admin, mailbox, proxy)
    await sync.sync_account_once(deps, account_id)
    stop = asyncio.Event()

    # One whole IDLE session, measured up to its "+ idling" and ended by a delivery.
    proxy.reset_counters()
    waiting = asyncio.create_task(sync.wait_for_inbox_change(deps, account_id, 120, stop))
    await idle_until(proxy, waiting, b"+ idling")
    upto_idle = proxy.stats()
    dovecot.deliver(mailbox.address, letter(mailbox.address, "Wake up"))
    assert await asyncio.wait_for(waiting, HANG) is True
    await sync.sync_account_once(deps, account_id)  # else the next waits return at once (UIDNEXT moved)

    rng = random.Random(SEED)
    totals = Totals("idle")
    proxy.reset_counters()
    for trial in range(IDLE_TRIALS):
        roll, rst = rng.random(), rng.random() < 0.5
        if roll < 0.25:
            where = {"while": "idling"}
        elif roll < 0.45:
            where = {"client_bytes": rng.randrange(upto_idle.client_bytes)}
        else:
            where = {"server_bytes": rng.randrange(upto_idle.server_bytes - SLACK)}
        context = f"trial {trial}: a cut after {where} ({'RST' if rst else 'FIN'})"
        if "while" not in where:
            proxy.arm(**where, rst=rst)
        waiting = asyncio.create_task(sync.wait_for_inbox_change(deps, account_id, 120, stop))
        try:
            if "while" in where:
                await idle_until(proxy, waiting, b"+ idling")
                assert proxy.cut_all(rst=rst) == 1
            cut_at = time.monotonic()
            with pytest.raises(sync.SyncFailed):
                await asyncio.wait_for(asyncio.shield(waiting), HANG)
            assert time.monotonic() - cut_at < PROMPT, context
            totals.trials += 1
            totals.cuts += 1
            totals.failed += 1
        finally:
            proxy.disarm()
            proxy.cut_all()  # a wait the cut missed ends now, not after its IDLE slice
            await asyncio.gather(waiting, return_exceptions=True)
        await connections_closed(proxy)

    totals.stale_writes = len(remote_writes(proxy.transcripts()))  # IDLE writes nothing
    await sync.sync_account_once(deps, account_id)
    status = await status_of(deps, account_id)
    totals.lost, totals.duplicated = max(0, 2 - status.messages), max(0, status.messages - 2)
    report(totals, backend)
    assert (status.state, status.server_total, status.synced, status.messages) == ("idle", 2, 2, 2)
    assert totals.stale_writes == 0


async def test_the_supervisor_takes_a_cut_in_idle_for_a_server_failure_and_fetches_what_arrived_meanwhile(
        deps, tenant, dovecot, mailbox, proxy, monkeypatch, caplog):
    monkeypatch.setattr(sync_supervisor, "BACKOFF_FIRST", 0.05)  # its retry after a failure: now, not within 5 s
    dovecot.deliver(mailbox.address, letter(mailbox.address, "Before"))
    account_id = await connect_through(deps, tenant.admin, mailbox, proxy)
    stop = asyncio.Event()
    keeping = asyncio.create_task(sync_supervisor.keep_in_sync(deps, account_id, stop))
    try:
        await idle_until(proxy, keeping, b"+ idling")
        assert proxy.cut_all() == 1
        dovecot.deliver(mailbox.address, letter(mailbox.address, "Meanwhile"))
        deadline = time.monotonic() + HANG
        while (await status_of(deps, account_id)).messages < 2:
            assert not keeping.done(), keeping
            assert time.monotonic() < deadline, "the message delivered during the outage never arrived"
            await asyncio.sleep(0.02)
        await idle_until(proxy, keeping, b"+ idling")  # and it waits in IDLE again
    finally:
        stop.set()
        proxy.cut_all()  # ends the IDLE now rather than after its slice
        await asyncio.wait_for(keeping, HANG)
    status = await status_of(deps, account_id)
    assert (status.server_total, status.synced, status.messages) == (2, 2, 2)
    crashes = [r.getMessage() for r in caplog.records if r.name == sync_supervisor.__name__ and r.levelname == "ERROR"]
    assert not crashes, "a lost connection was logged as a fault of ours"
