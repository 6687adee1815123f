"""Sync health of an account, changed only through these named transitions.

States: ``pending`` (connected, never synced) → ``syncing`` (a pass is running)
→ ``idle`` (up to date; IDLE or polling) | ``failed`` (the last pass failed;
retried with backoff; ``sync_error`` says why in plain words) | ``stopped``
(needs a person: a UIDVALIDITY reset loop, re-authorisation; never retried
automatically).
"""

from __future__ import annotations

import datetime as dt
import uuid

from salesinbox.adapters.db.tables import EmailAccount
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


async def mark_sync_started(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID) -> None:
    await _change(deps, company_id, account_id, sync_state=SYNCING, sync_started_at=_now())


async def mark_sync_succeeded(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID) -> None:
    await _change(deps, company_id, account_id, sync_state=IDLE, sync_error=None, last_sync_at=_now())


async def mark_sync_failed(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID, reason: str) -> None:
    await _change(deps, company_id, account_id, sync_state=FAILED, sync_error=reason)


async def mark_sync_stopped(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID, reason: str) -> None:
    await _change(deps, company_id, account_id, sync_state=STOPPED, sync_error=reason)
