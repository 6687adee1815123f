"""Keeps accounts in sync: a pass, then IDLE on INBOX, again and again.

Embedded, ``salesinbox serve`` runs this as an asyncio task beside the web app;
``salesinbox sync`` runs it in the foreground. Per account:

- a full pass (``services.sync.sync_account_once``), then IDLE on INBOX for at
  most ``IDLE_MAX`` (RFC 2177 asks clients to re-issue IDLE within 29 minutes;
  we use 25), or ``POLL_EVERY`` when a pass of the other folders is due;
- a failed pass is retried after a jittered exponential backoff (capped), so
  a server restart does not meet a thundering herd of reconnects, and never
  sooner than the provider asked ("Suggested Backoff Time", a used-up quota:
  ``SyncFailed.retry_after``);
- a stopped account (loop guard, re-authorisation) is left alone until a
  person acts.
Leases for several sync processes arrive with the scale-out step.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid

from salesinbox.domain.errors import NotFound
from salesinbox.services import sync
from salesinbox.services.sync_status import account_statuses
from salesinbox.services.unit_of_work import Deps

log = logging.getLogger(__name__)

IDLE_MAX = 25 * 60.0
POLL_EVERY = 120.0
BACKOFF_FIRST, BACKOFF_MAX = 5.0, 600.0


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^attempt)], so reconnects spread out."""
    return (rng or random).uniform(0, min(BACKOFF_MAX, BACKOFF_FIRST * 2**attempt))


def retry_delay(attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
    """The backoff, but never less than the wait the provider asked for (plus up to 10 %, spreading accounts out)."""
    delay = backoff(attempt, rng)
    if retry_after is None:
        return delay
    return max(delay, retry_after * (rng or random).uniform(1.0, 1.1))


async def keep_in_sync(deps: Deps, account_id: uuid.UUID, stop: asyncio.Event) -> None:
    attempt = 0
    while not stop.is_set():
        try:
            await sync.sync_account_once(deps, account_id)
            attempt = 0
            await _wait_for_mail(deps, account_id, stop)
        except sync.SyncFailed as exc:
            if (await account_statuses(deps, [account_id]))[0].state == "stopped":
                log.warning("sync stopped for account %s: %s", account_id, exc)
                return
            delay = retry_delay(attempt, exc.retry_after)
            attempt += 1
            log.info("sync of account %s failed (%s); retrying in %.0f s", account_id, exc, delay)
            await _sleep_unless(stop, delay)
        except NotFound:
            return  # the account was disconnected
        except Exception:
            # A fault of ours must not end syncing for good: log it with its
            # traceback, back off like a server error, try again.
            delay = backoff(attempt)
            attempt += 1
            log.exception("sync of account %s crashed; retrying in %.0f s", account_id, delay)
            await _sleep_unless(stop, delay)


async def _wait_for_mail(deps: Deps, account_id: uuid.UUID, stop: asyncio.Event) -> None:
    waited = await sync.wait_for_inbox_change(deps, account_id, min(POLL_EVERY, IDLE_MAX), stop)
    log.debug("account %s: IDLE ended (%s)", account_id, "change" if waited else "poll")


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def supervise(deps: Deps, stop: asyncio.Event, account_ids: list[uuid.UUID] | None = None) -> None:
    """Sync every account (or the given ones) until ``stop`` is set; new accounts join on the next look."""
    tasks: dict[uuid.UUID, asyncio.Task] = {}
    while not stop.is_set():
        try:
            statuses = await account_statuses(deps, account_ids)
        except Exception:
            log.exception("could not read the accounts to sync; looking again shortly")
            statuses = []
        for status in statuses:
            running = tasks.get(status.id)
            if (running is None or running.done()) and status.state != "stopped":
                tasks[status.id] = asyncio.create_task(keep_in_sync(deps, status.id, stop))
        await _sleep_unless(stop, 10.0)
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
