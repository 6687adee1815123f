"""Keeping accounts in sync: IDLE brings new mail in without anyone asking."""

from __future__ import annotations

import asyncio
import random
import time

from salesinbox.services import sync
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
