"""Leases: sync processes share the accounts, and one that lost an account's lease cannot write for it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid

import pytest
from sqlalchemy import func, select, update

from salesinbox.adapters.db.tables import EmailAccount, SyncLease
from salesinbox.domain.accounts import Security, SyncStart
from salesinbox.services import accounts, sync_leases, sync_state
from salesinbox.services.accounts import AccountInput
from salesinbox.services.sync_leases import LeaseLost
from salesinbox.workers.sync_supervisor import supervise


async def unreachable_accounts(deps, tenant, count: int) -> list[uuid.UUID]:
    """Accounts whose server is never reached by these tests (port 9: discard, closed)."""
    ids = []
    for _ in range(count):
        address = f"lease-{uuid.uuid4().hex[:10]}@example.test"
        view = await accounts.connect_account(
            deps,
            tenant.admin,
            AccountInput(
                address=address,
                login=address,
                password="unused-Pass1",
                imap_host="127.0.0.1",
                imap_port=9,
                imap_security=Security.NONE,
                smtp_host="127.0.0.1",
                smtp_port=9,
                smtp_security=Security.NONE,
                sync_start=SyncStart.EVERYTHING,
            ),
            verify=False,
        )
        ids.append(view.id)
    return ids


async def expire(deps, lease) -> None:
    async with deps.writing() as db:
        await db.execute(
            update(SyncLease)
            .where(SyncLease.account_id == lease.account_id)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )


async def test_processes_claim_disjoint_leases_up_to_what_they_ask(deps, tenant):
    ids = await unreachable_accounts(deps, tenant, 6)
    first = await sync_leases.claim(deps, "host:1:a", 3, ids)
    second = await sync_leases.claim(deps, "host:2:b", 10, ids)
    third = await sync_leases.claim(deps, "host:3:c", 10, ids)
    assert len(first) == 3 and len(second) == 3 and third == []
    assert {lease.account_id for lease in first}.isdisjoint(lease.account_id for lease in second)
    assert all(lease.epoch == 1 for lease in first + second)


async def test_concurrent_claims_never_share_an_account(deps, tenant):
    ids = await unreachable_accounts(deps, tenant, 8)
    results = await asyncio.gather(*(sync_leases.claim(deps, f"host:{n}:x", 3, ids) for n in range(4)))
    claimed = [lease.account_id for leases in results for lease in leases]
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 8


async def test_an_expired_lease_is_taken_over_and_the_old_holder_can_no_longer_write(deps, tenant):
    [account_id] = await unreachable_accounts(deps, tenant, 1)
    [old] = await sync_leases.claim(deps, "host:1:old", 1, [account_id])
    assert await sync_leases.claim(deps, "host:2:new", 1, [account_id]) == []  # still held
    await expire(deps, old)
    [new] = await sync_leases.claim(deps, "host:2:new", 1, [account_id])
    assert new.epoch == old.epoch + 1

    with pytest.raises(LeaseLost):  # every write of the old holder is fenced off, state transitions included
        await sync_state.mark_sync_failed(dataclasses.replace(deps, fence=old), tenant.company_id, account_id, "x")
    await sync_state.mark_sync_failed(dataclasses.replace(deps, fence=new), tenant.company_id, account_id, "ok")
    async with deps.reading() as db:
        assert (await db.get(EmailAccount, (tenant.company_id, account_id))).sync_error == "ok"

    assert await sync_leases.renew(deps, "host:1:old", [old]) == [old]  # renewing tells it the lease is gone
    assert await sync_leases.renew(deps, "host:2:new", [new]) == []


async def test_a_released_lease_is_free_at_once_and_a_stopped_account_is_not_claimed(deps, tenant):
    first, second = await unreachable_accounts(deps, tenant, 2)
    leases = await sync_leases.claim(deps, "host:1:a", 2, [first, second])
    await sync_leases.release(deps, leases)
    await sync_state.mark_sync_stopped(deps, tenant.company_id, second, "needs a person")
    again = await sync_leases.claim(deps, "host:2:b", 2, [first, second])
    assert [lease.account_id for lease in again] == [first]
    assert await sync_leases.syncable_accounts(deps, [first, second]) == 1


async def test_supervisors_share_the_accounts_and_the_survivor_takes_over_the_rest(deps, tenant):
    ids = await unreachable_accounts(deps, tenant, 4)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(supervise(deps, stop_a, ids))
    b = asyncio.create_task(supervise(deps, stop_b, ids))
    try:
        holders = await until(lambda h: len(h) == 2 and sum(h.values()) == 4, deps, ids)
        assert sorted(holders.values()) == [2, 2]
        stop_a.set()
        await asyncio.wait_for(a, 30)  # releases its leases as it stops
        holders = await until(lambda h: len(h) == 1 and sum(h.values()) == 4, deps, ids)
    finally:
        stop_a.set()
        stop_b.set()
        await asyncio.wait_for(asyncio.gather(a, b, return_exceptions=True), 30)
    assert await lease_holders(deps, ids) == {}  # everything given back on the way out


async def lease_holders(deps, ids) -> dict[str, int]:
    async with deps.reading() as db:
        rows = await db.execute(
            select(SyncLease.holder, func.count())
            .where(SyncLease.account_id.in_(ids), SyncLease.holder.is_not(None))
            .group_by(SyncLease.holder)
        )
        return dict(rows.all())


async def until(condition, deps, ids, within: float = 30.0):
    deadline = time.monotonic() + within
    while not condition(holders := await lease_holders(deps, ids)):
        assert time.monotonic() < deadline, f"timed out: {holders}"
        await asyncio.sleep(0.2)
    return holders
