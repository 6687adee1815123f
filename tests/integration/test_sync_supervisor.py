"""Keeping accounts in sync: IDLE brings new mail in without anyone asking."""

from __future__ import annotations

import asyncio
import random
import time

from salesinbox.workers.sync_supervisor import BACKOFF_MAX, backoff, supervise
from tests.integration.test_sync import connect, mail, status_of


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
