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

Which accounts: those this process holds a lease on (``services/sync_leases.py``).
Every ``TICK`` the supervisor says it is alive, renews its leases, claims
free or expired ones up to its fair share (accounts / live sync processes)
and gives back what exceeds it, so N processes (``salesinbox worker --role
sync``) share the accounts and take over a dead one's within 30 s. Each
account runs with a ``Deps`` fenced by its lease: once the lease is lost,
the account's next write raises ``LeaseLost`` and its task ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import uuid

from salesinbox.domain.errors import NotFound
from salesinbox.services import idle, sync, sync_leases
from salesinbox.services.sync_leases import Lease, LeaseLost
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
    """Pass, IDLE, pass ... A lost IDLE connection (a server restart) is re-established without a pass:
    IDLE begins by comparing INBOX's UIDNEXT and HIGHESTMODSEQ with the stored ones, so a change made
    meanwhile still brings a pass at once, and the other folders get theirs within ``POLL_EVERY``.
    Hundreds of accounts then cost a login and a SELECT each to come back, not a whole pass. New mail
    IDLE announced is taken on the IDLE connection (``sync.take_new_inbox_mail``: no login, no pass);
    another change brings a pass of INBOX alone (one SELECT instead of six); every ``POLL_EVERY`` all
    folders get one."""
    attempt, need_pass, roles = 0, True, None
    while not stop.is_set():
        try:
            if need_pass:
                await sync.sync_account_once(deps, account_id, roles=roles)
                need_pass = False
            # New mail in INBOX: a pass of INBOX alone; the time for a pass of every folder: all of them.
            roles = ("inbox",) if await _wait_for_mail(deps, account_id, stop) else None
            attempt, need_pass = 0, True
        except idle.IdleFailed as exc:
            delay = backoff(attempt)
            attempt += 1
            log.info("IDLE of account %s lost (%s); again in %.0f s", account_id, exc, delay)
            await _sleep_unless(stop, delay)
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
        except LeaseLost:
            log.info("account %s: lease lost to another process; letting go", account_id)
            return
        except Exception:
            # A fault of ours must not end syncing for good: log it with its
            # traceback, back off like a server error, try again.
            delay = backoff(attempt)
            attempt += 1
            log.exception("sync of account %s crashed; retrying in %.0f s", account_id, delay)
            await _sleep_unless(stop, delay)


async def _wait_for_mail(deps: Deps, account_id: uuid.UUID, stop: asyncio.Event) -> bool:
    # New mail alone is taken on the IDLE connection itself; anything else brings a pass of INBOX.
    taker = sync.new_mail_taker(deps, account_id)
    changed = await idle.wait_for_inbox_change(deps, account_id, min(POLL_EVERY, IDLE_MAX), stop, taker)
    log.debug("account %s: IDLE ended (%s)", account_id, "change" if changed else "poll")
    return changed


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


GRACE = 5.0  # seconds an account's task gets to end by itself (an IDLE ends within 2 s) before it is cancelled


@dataclasses.dataclass
class _Held:
    lease: Lease
    task: asyncio.Task
    stop: asyncio.Event


async def supervise(deps: Deps, stop: asyncio.Event, account_ids: list[uuid.UUID] | None = None) -> None:
    """Keep this process's share of the accounts (or of the given ones) in sync until ``stop`` is set."""
    name = sync_leases.worker_name()
    held: dict[uuid.UUID, _Held] = {}
    first = True
    try:
        while not stop.is_set():
            try:
                await _tick(deps, name, held, account_ids, claiming=not first)
            except Exception:  # the database may be briefly away: leases expire only after TTL
                log.exception("lease bookkeeping failed; trying again shortly")
            first = False  # the first tick only registers: processes started together then share at once
            await _sleep_unless(stop, sync_leases.TICK)
    finally:
        await _let_go(deps, list(held.values()))
        try:
            await sync_leases.retire_worker(deps, name)
        except Exception:
            log.exception("could not retire sync worker %s (its row expires by itself)", name)


async def _tick(
    deps: Deps, name: str, held: dict[uuid.UUID, _Held], account_ids: list[uuid.UUID] | None, *, claiming: bool
) -> None:
    workers = await sync_leases.heartbeat_worker(deps, name)
    for lease in await sync_leases.renew(deps, name, [h.lease for h in held.values()]):
        await _let_go(deps, [held.pop(lease.account_id)], release=False)  # taken over after an expiry
    ended = [h for h in held.values() if h.task.done()]  # stopped, disconnected, or fenced off
    await _let_go(deps, [held.pop(h.lease.account_id) for h in ended])
    if not claiming:
        return
    share = sync_leases.fair_share(await sync_leases.syncable_accounts(deps, account_ids), workers)
    if len(held) > share:  # a process joined: give back the excess, the newest claims first
        extra = list(held.values())[share:]
        await _let_go(deps, [held.pop(h.lease.account_id) for h in extra])
    for lease in await sync_leases.claim(deps, name, share - len(held), account_ids):
        held[lease.account_id] = _start(deps, lease)


def _start(deps: Deps, lease: Lease) -> _Held:
    own_stop = asyncio.Event()
    fenced = dataclasses.replace(deps, fence=lease)
    task = asyncio.create_task(keep_in_sync(fenced, lease.account_id, own_stop))
    return _Held(lease, task, own_stop)


async def _let_go(deps: Deps, helds: list[_Held], *, release: bool = True) -> None:
    """Stop these accounts' tasks (gently, then by cancelling), then free their leases."""
    if not helds:
        return
    for h in helds:
        h.stop.set()
    tasks = [h.task for h in helds]
    _done, pending = await asyncio.wait(tasks, timeout=GRACE)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if release:
        try:
            await sync_leases.release(deps, [h.lease for h in helds])
        except Exception:
            log.exception("could not release %d leases (they expire by themselves)", len(helds))
