"""Sync health of an account, changed only through these named transitions.

States: ``pending`` (connected, never synced) → ``syncing`` (a pass is running)
→ ``idle`` (up to date; IDLE or polling) | ``failed`` (the last pass failed;
retried with backoff; ``sync_error`` says why in plain words) | ``stopped``
(needs a person: a UIDVALIDITY reset loop, re-authorisation; never retried
automatically).

A pass is *claimed* (``claim_sync``): the claiming process writes its
``host:pid`` and refreshes a heartbeat after every batch; another process may
take over only when the heartbeat is stale or the holder, on this host, is
gone (``kill -9``). Under a lease (``sync_leases``: the supervisor's ``Deps``
carries it as ``fence``) the lease decides: its holder claims at once, and
every transition here is fenced like any other write.
"""

from __future__ import annotations

import datetime as dt
import uuid

from salesinbox.adapters.db.tables import EmailAccount
from salesinbox.services.process_claims import holder_is_gone, this_process
from salesinbox.services.unit_of_work import Deps

PENDING, SYNCING, IDLE, FAILED, STOPPED = "pending", "syncing", "idle", "failed", "stopped"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _change(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID, **values) -> None:
    async with deps.writing() as db:
        row = await db.get(EmailAccount, (company_id, account_id))
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)


HEARTBEAT_STALE = dt.timedelta(seconds=120)


async def claim_sync(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID) -> bool:
    """Start a pass unless another live process is running one (its heartbeat is fresh)."""
    async with deps.writing() as db:
        row = await db.get(EmailAccount, (company_id, account_id))
        if row is None:
            return False
        # The lease holder is the only process allowed to write for the account: it takes over at once.
        busy = deps.fence is None and row.sync_state == SYNCING and row.sync_owner != this_process()
        fresh = row.sync_heartbeat_at is not None and _now() - row.sync_heartbeat_at < HEARTBEAT_STALE
        if busy and fresh and not holder_is_gone(row.sync_owner):
            return False
        row.sync_state, row.sync_owner = SYNCING, this_process()
        row.sync_started_at = row.sync_heartbeat_at = _now()
        return True


async def heartbeat(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID) -> None:
    await _change(deps, company_id, account_id, sync_heartbeat_at=_now())


async def mark_sync_succeeded(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID) -> None:
    await _change(deps, company_id, account_id, sync_state=IDLE, sync_error=None, last_sync_at=_now(), sync_owner=None)


async def mark_sync_failed(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID, reason: str) -> None:
    await _change(deps, company_id, account_id, sync_state=FAILED, sync_error=reason, sync_owner=None)


async def mark_sync_stopped(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID, reason: str) -> None:
    await _change(deps, company_id, account_id, sync_state=STOPPED, sync_error=reason, sync_owner=None)


# ---- OAuth sign-in (services/oauth.py) ------------------------------------------------------


async def mark_reauthorisation_needed(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID, reason: str) -> None:
    """The provider refused the account's sign-in for good: stopped until the owner signs in again."""
    await _change(deps, company_id, account_id, sync_state=STOPPED, sync_error=reason, sync_owner=None)


async def mark_reauthorised(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID) -> None:
    """The owner signed in again: the account waits for its next pass, the refusal forgotten."""
    await _change(deps, company_id, account_id, sync_state=PENDING, sync_error=None, sync_owner=None)
