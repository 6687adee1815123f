"""IDLE for many accounts at once, and logins under a rate cap.

Each account waiting for mail holds one IMAP connection in IDLE (RFC 2177)
on INBOX. imapclient is blocking, so each waiting connection needs a thread;
the default executor of ``asyncio.to_thread`` has at most ``min(32, cpus+4)``
threads, which would let 32 accounts IDLE and queue the rest. IDLE therefore
runs on its own pool (``IDLE_THREADS`` at most, each with a ``THREAD_STACK``
stack: a waiting thread touches a few pages, so 500 of them cost tens of MB
of RSS — see bench/README.md). A thread notices ``stop`` within
``IDLE_POLL`` seconds, so releasing an account (shutdown, a lease handed to
another process) frees its thread and connection quickly.

Every login of the sync engine (a pass, an IDLE connection) waits its turn
at ``login_gate``: at most ``LOGIN_RATE`` logins a second per process. With
the supervisor's jittered backoff this spreads the reconnects of hundreds of
accounts after a server restart, instead of a thundering herd that trips the
server's own connection limits.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aiolimiter import AsyncLimiter
from sqlalchemy import select

from salesinbox.adapters.db.tables import EmailAccount, MailFolder
from salesinbox.adapters.imap.session import FolderStatus, ImapAuthError, ImapError
from salesinbox.domain.errors import NotFound
from salesinbox.domain.oauth import OAuthTokenError, ReauthorisationNeeded
from salesinbox.domain.text import Text
from salesinbox.services.accounts import oauth_aware_imap_login
from salesinbox.services.ports import MailboxSession, ServerLogin
from salesinbox.services.unit_of_work import Deps

T = TypeVar("T")

LOGIN_RATE = 50.0  # logins per second per process (new mail costs two: its pass, the next IDLE)
IDLE_THREADS = 4096
THREAD_STACK = 512 * 1024
IDLE_SLICE = 30.0  # seconds of one IDLE command: a dropped connection shows up at the latest then

_POOL: ThreadPoolExecutor | None = None
_IDLING: dict[uuid.UUID, float] = {}  # account -> when (time.monotonic) its IDLE began
_STACK_LOCK = threading.Lock()
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncLimiter] = weakref.WeakKeyDictionary()


def idling() -> dict[uuid.UUID, float]:
    """The accounts of this process waiting in IDLE now, with when each began (``time.monotonic``)."""
    return dict(_IDLING)


class IdleFailed(Exception):
    """The IDLE connection could not be made or was lost."""


def login_gate() -> AsyncLimiter:
    """The process's login limiter (one per event loop: an asyncio limiter belongs to its loop)."""
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = AsyncLimiter(1, 1 / LOGIN_RATE)  # evenly spaced: no burst
    return gate


async def in_idle_thread(work: Callable[[], T]) -> T:
    """Run blocking IMAP work on the IDLE pool (not the default executor)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=IDLE_THREADS, thread_name_prefix="imap-idle")
    with _STACK_LOCK:  # the stack size applies to threads started now, i.e. by this submit
        previous = threading.stack_size(THREAD_STACK)
        try:
            future = _POOL.submit(work)
        finally:
            threading.stack_size(previous)
    return await asyncio.wrap_future(future)


async def connect(deps: Deps, login: ServerLogin) -> MailboxSession:
    """Log in when the gate allows, on a thread of the IDLE pool (always free: the login is not queued
    behind other work, so logins reach the server as spaced as the gate let them go)."""
    await login_gate().acquire()
    session = deps.open_mailbox(login)
    try:
        return await in_idle_thread(session.connect)
    except asyncio.CancelledError:
        # The app is stopping mid-login: the thread finishes its login; closing the session
        # makes it shut that connection instead of leaving it open (a leaked socket).
        await in_idle_thread(session.close)
        raise


NewMail = Callable[[MailboxSession, FolderStatus], Awaitable[FolderStatus | None]]
NEW_MAIL_ONLY = frozenset({"EXISTS", "RECENT"})  # what a delivery makes the server say
CHANGES = NEW_MAIL_ONLY | {"EXPUNGE", "FETCH", "VANISHED"}  # else a keep-alive ("OK Still here"): IDLE on


async def wait_for_inbox_change(
    deps: Deps, account_id: uuid.UUID, seconds: float, stop: asyncio.Event, take_new_mail: NewMail | None = None
) -> bool:
    """IDLE on INBOX for up to ``seconds``; True when a pass of INBOX is needed.

    IDLE runs on its own connection in a thread of the IDLE pool; ``stop``
    ends the wait within ``IDLE_POLL`` seconds. A lost connection raises
    IdleFailed: the caller backs off and reconnects, as after a failed pass.

    With ``take_new_mail``, new mail alone (the server said EXISTS) is taken
    on this connection (``services.sync.take_new_inbox_mail``) and IDLE goes
    on: no logout, login or pass per delivery. It answers the folder's state
    after, or None when something else changed too and a pass must look.
    """
    account = await _load_account(deps, account_id)
    try:
        session = await connect(deps, await oauth_aware_imap_login(deps, account))
    except (ImapAuthError, OAuthTokenError, ReauthorisationNeeded):
        return True  # a refused sign-in: a pass records it in the account's health (and backs off), IDLE cannot
    except ImapError as exc:  # the server is away: back off and come back to IDLE
        raise IdleFailed(str(exc)) from exc
    try:
        status = await in_idle_thread(lambda: session.examine("INBOX"))
        if _changed_meanwhile(status, await _stored_inbox(deps, account)):
            return True  # mail or flags changed between the last pass and this IDLE: IDLE alone would not say so
        deadline = time.monotonic() + seconds
        _IDLING[account_id] = time.monotonic()
        while (remaining := deadline - time.monotonic()) > 0 and not stop.is_set():
            slice_ = min(IDLE_SLICE, remaining)
            news = await in_idle_thread(lambda s=slice_: session.idle(s, stop.is_set)) & CHANGES
            if not news:
                continue
            if take_new_mail is None or not news <= NEW_MAIL_ONLY:
                return True
            status = await take_new_mail(session, status)
            if status is None:
                return True
        return False
    except ImapError as exc:
        raise IdleFailed(str(exc)) from exc
    finally:
        _IDLING.pop(account_id, None)
        await in_idle_thread(session.close)


async def _load_account(deps: Deps, account_id: uuid.UUID) -> EmailAccount:
    async with deps.reading() as db:
        account = await db.scalar(select(EmailAccount).where(EmailAccount.id == account_id))
    if account is None:
        raise NotFound(Text("No such email account."))
    return account


async def _stored_inbox(deps: Deps, account: EmailAccount) -> tuple[int | None, int | None]:
    """INBOX's UIDNEXT and HIGHESTMODSEQ as the last pass left them."""
    async with deps.reading() as db:
        row = (
            await db.execute(
                select(MailFolder.uidnext, MailFolder.highestmodseq).where(
                    MailFolder.company_id == account.company_id,
                    MailFolder.account_id == account.id,
                    MailFolder.name == "INBOX",
                )
            )
        ).first()
    return (row.uidnext, row.highestmodseq) if row is not None else (None, None)


def _changed_meanwhile(status, stored: tuple[int | None, int | None]) -> bool:
    """New mail (UIDNEXT moved), or, where the server keeps mod-sequences, a flag change or an
    expunge (HIGHESTMODSEQ moved) since the pass read INBOX. A phone marking a message read
    just after the pass would otherwise wait for the next poll of every folder."""
    uidnext, highestmodseq = stored
    if status.uidnext != uidnext:
        return True
    return status.highestmodseq is not None and status.highestmodseq != highestmodseq
