"""Leases: which sync process keeps which account in sync.

Any number of sync processes (``salesinbox worker --role sync``, or the one
embedded in ``salesinbox serve``) share the accounts through rows in the
database, never through a lock service:

- every process registers itself in ``sync_workers`` and refreshes that row
  on each tick (``TICK``); a row not refreshed for ``TTL`` is a dead process;
- each account has one ``sync_leases`` row: ``holder`` (the process's name),
  ``expires_at`` and ``epoch``. A process claims free or expired leases up to
  its fair share, ``ceil(accounts / live processes)``, renews what it holds
  on every tick, gives back what exceeds its share (a newcomer then takes
  it), and releases everything when it stops. A killed process's leases
  expire after ``TTL`` and are claimed by the others on their next tick: an
  orphaned account resumes within ``TTL + TICK`` (15 + 3 s).
- Claiming bumps ``epoch``: the fencing token. Each write transaction of the
  sync engine for a leased account first checks, inside that transaction,
  that the lease still carries the holder and epoch it claimed
  (``Lease.verify``, called by ``Deps.writing`` when the ``Deps`` carries a
  fence). A process that lost its lease — paused past its expiry, cut off
  from the database, then back — raises ``LeaseLost`` instead of writing.

Transactions: on PostgreSQL a claim selects with ``FOR UPDATE SKIP LOCKED``
(two processes claiming at once take different rows, neither waits), and the
check reads the lease ``FOR SHARE``, so a takeover waits for a write in
flight to commit and the writer never commits after a takeover. On SQLite
every writing transaction is ``BEGIN IMMEDIATE``: claims and checks are
serialised by the database's write lock.

Times are the processes' clocks (UTC); keep hosts under NTP. A clock ahead by
more than ``TTL`` would take leases early — fencing still keeps the old holder
from writing.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, delete, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from salesinbox.adapters.db.tables import EmailAccount, SyncLease, SyncWorker
from salesinbox.services.process_claims import this_process
from salesinbox.services.unit_of_work import Deps

TTL = dt.timedelta(seconds=15)
TICK = 3.0  # seconds between renewals (and looks for free leases)
STOPPED = "stopped"  # an account that needs a person is not synced, so not leased


class LeaseLost(Exception):
    """This process no longer holds the account's lease: it must not write for it."""


@dataclass(frozen=True)
class Lease:
    company_id: uuid.UUID
    account_id: uuid.UUID
    holder: str
    epoch: int

    async def verify(self, db: AsyncSession) -> None:
        """Fencing: raise LeaseLost unless the lease is still ours, in the caller's transaction."""
        row = (
            await db.execute(
                select(SyncLease.holder, SyncLease.epoch)
                .where(SyncLease.company_id == self.company_id, SyncLease.account_id == self.account_id)
                .with_for_update(read=True)
            )
        ).first()
        if row is None or row.holder != self.holder or row.epoch != self.epoch:
            raise LeaseLost(f"account {self.account_id}: lease epoch {self.epoch} is no longer held")


def worker_name() -> str:
    """``host:pid:random``: unique even when a pid is reused."""
    return f"{this_process()}:{os.urandom(3).hex()}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def heartbeat_worker(deps: Deps, name: str) -> int:
    """Say this process is alive; forget dead ones; return how many sync processes are alive."""
    now = _now()
    async with deps.writing() as db:
        await db.execute(delete(SyncWorker).where(SyncWorker.expires_at < now))
        row = await db.get(SyncWorker, name)
        if row is None:
            db.add(SyncWorker(name=name, expires_at=now + TTL))
        else:
            row.expires_at = now + TTL
        await db.flush()
        return await db.scalar(select(func.count()).select_from(SyncWorker)) or 1


async def retire_worker(deps: Deps, name: str) -> None:
    async with deps.writing() as db:
        await db.execute(delete(SyncWorker).where(SyncWorker.name == name))


def _eligible(account_ids: list[uuid.UUID] | None):
    """Accounts that are synced (not stopped), optionally only some."""
    condition = EmailAccount.sync_state != STOPPED
    if account_ids is not None:
        condition = and_(condition, EmailAccount.id.in_(account_ids))
    return condition


async def syncable_accounts(deps: Deps, account_ids: list[uuid.UUID] | None = None) -> int:
    async with deps.reading() as db:
        return await db.scalar(select(func.count()).select_from(EmailAccount).where(_eligible(account_ids))) or 0


def fair_share(accounts: int, workers: int) -> int:
    return math.ceil(accounts / max(workers, 1))


async def _ensure_lease_rows(db: AsyncSession) -> None:
    """Every account gets its lease row the first time anyone looks (accounts are added by the web app)."""
    missing = select(EmailAccount.company_id, EmailAccount.id, literal(0)).where(
        ~exists()
        .where(SyncLease.company_id == EmailAccount.company_id, SyncLease.account_id == EmailAccount.id)
        .correlate(EmailAccount)
    )
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    await db.execute(
        dialect.insert(SyncLease).from_select(["company_id", "account_id", "epoch"], missing).on_conflict_do_nothing()
    )


async def claim(deps: Deps, name: str, limit: int, account_ids: list[uuid.UUID] | None = None) -> list[Lease]:
    """Take up to ``limit`` free or expired leases; each one's epoch goes up by one."""
    if limit <= 0:
        return []
    now = _now()
    async with deps.writing() as db:
        await _ensure_lease_rows(db)
        rows = (
            await db.execute(
                select(SyncLease.company_id, SyncLease.account_id, SyncLease.epoch)
                .join(
                    EmailAccount,
                    and_(EmailAccount.company_id == SyncLease.company_id, EmailAccount.id == SyncLease.account_id),
                )
                .where(or_(SyncLease.holder.is_(None), SyncLease.expires_at < now), _eligible(account_ids))
                .order_by(SyncLease.expires_at)
                .limit(limit)
                .with_for_update(of=SyncLease, skip_locked=True)
            )
        ).all()
        leases = []
        for company_id, account_id, epoch in rows:
            await db.execute(
                update(SyncLease)
                .where(SyncLease.company_id == company_id, SyncLease.account_id == account_id)
                .values(holder=name, epoch=epoch + 1, expires_at=now + TTL)
            )
            leases.append(Lease(company_id, account_id, name, epoch + 1))
        return leases


async def renew(deps: Deps, name: str, held: list[Lease]) -> list[Lease]:
    """Push back the expiry of every lease still ours; return the ones lost (taken over after an expiry)."""
    if not held:
        return []
    async with deps.writing() as db:
        await db.execute(update(SyncLease).where(SyncLease.holder == name).values(expires_at=_now() + TTL))
        ours = {
            (c, a, e)
            for c, a, e in await db.execute(
                select(SyncLease.company_id, SyncLease.account_id, SyncLease.epoch).where(SyncLease.holder == name)
            )
        }
    return [lease for lease in held if (lease.company_id, lease.account_id, lease.epoch) not in ours]


async def release(deps: Deps, leases: list[Lease]) -> None:
    """Give leases back (free at once for another process); one no longer ours is left alone."""
    if not leases:
        return
    async with deps.writing() as db:
        for lease in leases:
            await db.execute(
                update(SyncLease)
                .where(
                    SyncLease.company_id == lease.company_id,
                    SyncLease.account_id == lease.account_id,
                    SyncLease.holder == lease.holder,
                    SyncLease.epoch == lease.epoch,
                )
                .values(holder=None, expires_at=None)
            )
