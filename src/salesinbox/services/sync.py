"""The sync engine: one pass over an account's folders, initial or incremental.

Per folder (a SELECT ... readonly, i.e. EXAMINE):
1. UIDVALIDITY changed → the folder's locations are dropped (messages, their
   conversations and links stay) and the folder is read again; the same
   messages are found again by their dedupe keys, so nothing is duplicated.
   More than ``MAX_RESETS`` consecutive resets stops the account (loop guard).
2. UIDs in the sync window (SEARCH SINCE) not stored yet are fetched newest
   first, in batches that grow (the first is small, so the newest
   conversations are listed within a second), each batch stored in one write
   transaction while the next are fetched. Steps 1, 3 and 4 run for every
   folder first; then one pipeline takes the new mail of folder after folder
   (Gmail: a folder at a time, see below). The linking rules run once at the
   end of the pass.
3. UIDs stored but gone from the server are expunged locally, unless more
   than half of more than 100 vanished at once: then nothing is deleted and
   the folder waits for a person to confirm (mass-deletion safety valve).
4. Flags: CHANGEDSINCE the stored HIGHESTMODSEQ where CONDSTORE is
   advertised, else the flags of every stored UID.

Gmail (the profile from CAPABILITY: X-GM-EXT-1): All Mail is synced too,
after the other folders, so every message of the account is here, archived
ones included. A message's identity is its X-GM-MSGID, the same in every
folder: a new UID whose X-GM-MSGID was stored earlier in the pass (from
INBOX, Sent or All Mail) only gets its place recorded, its body is not
downloaded again (Gmail counts bandwidth). The user labels in X-GM-LABELS
of the messages fetched become labels on their conversations; later, a label
set or taken off in Gmail moves All Mail's HIGHESTMODSEQ, and the labels of
every conversation with a changed message are read again and followed.

No database transaction is held across a network call; every IMAP call runs in
a worker thread with a socket timeout. Resuming after a crash is the same
pass: what was committed is skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import delete, func, select, update

from salesinbox.adapters.blobs import raw_key
from salesinbox.adapters.db.maintenance import refresh_statistics
from salesinbox.adapters.db.tables import EmailAccount, MailFolder, Message, MessageLocation
from salesinbox.adapters.db.upsert import insert_missing
from salesinbox.adapters.imap.session import FolderInfo, FolderStatus, ImapAuthError, ImapError
from salesinbox.domain.accounts import SYNC_START_DAYS, SyncStart
from salesinbox.domain.errors import NotFound
from salesinbox.domain.oauth import OAuthTokenError, ReauthorisationNeeded
from salesinbox.domain.provider_errors import AUTH_WAIT, TroubleKind, read_server_trouble
from salesinbox.domain.provider_profiles import gmail_user_labels
from salesinbox.domain.text import Text
from salesinbox.mime.batch import Prepared, prepare_many
from salesinbox.services import idle, labels, linking, oauth, sync_state
from salesinbox.services.accounts import oauth_aware_imap_login
from salesinbox.services.mail_store import Arrival, MailStore
from salesinbox.services.ports import ServerLogin
from salesinbox.services.unit_of_work import Deps

SYNCED_ROLES = ("inbox", "sent", "drafts", "archive", "trash", "junk")
BATCH_SIZES = (50, 200, 500)
PIPELINE_DEPTH = 3
MAX_RESETS = 3
MASS_DELETION_MIN = 100
LINK_EVERY = 30.0  # seconds: a long pass links what it stored meanwhile, not only at its end


class SyncFailed(Exception):
    """The pass could not finish; the account's health says why.

    ``retry_after``: the least seconds to wait before the next attempt, when
    the provider asked for a pause (throttling, quota) or hammering would
    hurt (a refused password); None for the usual backoff.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SyncBusy(SyncFailed):
    """Another live process holds this account's pass."""


Progress = Callable[[str, int, int], None]  # (folder, done, total)


@dataclass
class FolderReport:
    name: str
    role: str
    server_total: int = 0
    fetched: int = 0
    expunged: int = 0
    held_deletions: int = 0
    reset: bool = False


@dataclass
class SyncReport:
    account_id: uuid.UUID
    folders: list[FolderReport] = field(default_factory=list)

    @property
    def fetched(self) -> int:
        return sum(f.fetched for f in self.folders)


async def sync_account_once(
    deps: Deps, account_id: uuid.UUID, progress: Progress | None = None, *, roles: tuple[str, ...] | None = None
) -> SyncReport:
    """One pass over the account's folders (only those of ``roles`` when given: IDLE said INBOX changed)."""
    account = await _load_account(deps, account_id)
    cid = account.company_id
    if not await sync_state.claim_sync(deps, cid, account_id):
        raise SyncBusy("Another process is syncing this account right now.")
    report = SyncReport(account_id)
    await link_pending(deps, cid)  # a pass cut short, or conversations stored before the rules existed
    try:  # under the process's login-rate cap: reconnects after a server restart come spread out
        session = await idle.connect(deps, await _login(deps, account))
    except ImapAuthError as exc:
        if account.auth_method == "oauth2":  # the next pass refreshes the token, and learns whether it was revoked
            await oauth.forget_access_token(deps, cid, account_id)
        failure = _failure(exc, account.auth_method)
        await sync_state.mark_sync_failed(deps, cid, account_id, str(failure))
        raise failure from exc
    except ImapError as exc:
        failure = _failure(exc)
        await sync_state.mark_sync_failed(deps, cid, account_id, str(failure))
        raise failure from exc
    try:
        folders = [f for f in await _folders_to_sync(deps, session, account) if roles is None or f.role in roles]
        if not session.profile.gmail_extensions:
            await _sync_folders(deps, session, account, folders, progress, report)
        else:  # in order: a folder finds the X-GM-MSGIDs the ones before it stored
            for info in folders:
                report.folders.append(await _sync_folder(deps, session, account, info, progress))
    except _LoopGuard as exc:
        await sync_state.mark_sync_stopped(deps, cid, account_id, str(exc))
        raise SyncFailed(str(exc)) from exc
    except ImapError as exc:
        failure = _failure(exc)
        await sync_state.mark_sync_failed(deps, cid, account_id, str(failure))
        raise failure from exc
    finally:
        await asyncio.to_thread(session.close)
    if report.fetched:  # only stored mail leaves conversations without a verdict (one write transaction less)
        await link_pending(deps, cid)
    await sync_state.mark_sync_succeeded(deps, cid, account_id)
    return report


class _LoopGuard(Exception):
    pass


def _auth_words(detail: str, auth_method: str = "password") -> str:
    if auth_method == "oauth2":
        return f"{detail} The sign-in will be renewed on the next attempt."
    return f"{detail} Open the account, enter the current password (or an app password) and test the connection."


def _failure(exc: ImapError, auth_method: str = "password") -> SyncFailed:
    """The one place a server's failure becomes the account's health words and the least wait before a retry.

    A provider's text it knows (domain/provider_errors.py) gives plain words,
    with the server's own text kept after them; anything else keeps the
    adapter's words (a dropped connection, a timeout) and the usual backoff.
    """
    if isinstance(exc, ImapAuthError) and auth_method == "oauth2":
        # A refused access token: the next pass renews it, or learns that access was revoked, without
        # the wait a refused password gets (the caller forgot the token; the usual backoff applies).
        return SyncFailed(_auth_words(str(exc), auth_method), None)
    said = exc.server_text
    trouble = read_server_trouble(said or "", exc.provider)
    if trouble.kind is TroubleKind.TRANSIENT or said is None:
        words = _auth_words(str(exc), auth_method) if isinstance(exc, ImapAuthError) else str(exc)
        return SyncFailed(words, AUTH_WAIT if isinstance(exc, ImapAuthError) else None)
    if trouble.kind is TroubleKind.AUTH:
        return SyncFailed(f"{_auth_words(str(exc), auth_method)} (The server said: “{said}”)", trouble.retry_after)
    return SyncFailed(f"{trouble.words} (The server said: “{said}”)", trouble.retry_after)


async def _login(deps: Deps, account: EmailAccount) -> ServerLogin:
    """The IMAP login; for an OAuth account a sign-in refused for good (already marked) or a transient failure."""
    try:
        return await oauth_aware_imap_login(deps, account)
    except ReauthorisationNeeded as exc:  # stopped until the owner signs in again (said again: a pass claimed it)
        await sync_state.mark_reauthorisation_needed(deps, account.company_id, account.id, str(exc))
        raise SyncFailed(str(exc)) from exc
    except OAuthTokenError as exc:
        await sync_state.mark_sync_failed(deps, account.company_id, account.id, exc.detail)
        raise SyncFailed(exc.detail) from exc


async def _load_account(deps: Deps, account_id: uuid.UUID) -> EmailAccount:
    async with deps.reading() as db:
        account = await db.scalar(select(EmailAccount).where(EmailAccount.id == account_id))
    if account is None:
        raise NotFound(Text("No such email account."))
    return account


def _since(account: EmailAccount) -> dt.date | None:
    days = SYNC_START_DAYS[SyncStart(account.sync_start)]
    return None if days is None else dt.date.today() - dt.timedelta(days=days)


# ---- folders ----------------------------------------------------------------------------


async def _folders_to_sync(deps: Deps, session, account: EmailAccount) -> list[MailFolder]:
    roles = (*SYNCED_ROLES, "all") if session.profile.gmail_extensions else SYNCED_ROLES  # Gmail: All Mail last
    infos = [f for f in await asyncio.to_thread(session.folders) if f.role in roles]
    infos.sort(key=lambda f: roles.index(f.role))
    async with deps.writing() as db:
        rows = {
            r.name: r
            for r in await db.scalars(
                select(MailFolder).where(
                    MailFolder.company_id == account.company_id, MailFolder.account_id == account.id
                )
            )
        }
        for info in infos:
            if info.name not in rows:
                rows[info.name] = _new_folder(account, info)
                db.add(rows[info.name])
        await db.flush()
        return [rows[i.name] for i in infos]


def _new_folder(account: EmailAccount, info: FolderInfo) -> MailFolder:
    return MailFolder(
        company_id=account.company_id,
        account_id=account.id,
        name=info.name,
        role=info.role,
        state="pending",
        server_total=0,
        synced=0,
        consecutive_resets=0,
        held_deletions=0,
    )


@dataclass
class _Plan:
    """One folder of a pass once its state is read: what is new there, fetched next."""

    folder: MailFolder
    status: FolderStatus
    report: FolderReport
    new: list[int]  # newest first
    done: int = 0  # of ``new``, stored


async def _sync_folders(
    deps: Deps, session, account: EmailAccount, folders: list[MailFolder], progress: Progress | None, report: SyncReport
) -> None:
    """Every folder's changes read first, then their new mail through one fetch pipeline, folder after folder.

    One pipeline for the pass, not one per folder: the worker processes are
    already fetching the next folder's first batches while this one's last
    are stored, instead of the store waiting for them at every folder.
    """
    if deps.fetcher is not None and any(f.uidvalidity is None for f in folders):
        deps.fetcher.warm_up()  # a first sync is coming: the workers import while the folders are read
    plans = [await _plan_folder(deps, session, account, folder) for folder in folders]
    report.folders.extend(plan.report for plan in plans)
    for plan in plans:
        if progress:
            progress(plan.folder.name, plan.report.server_total - len(plan.new), plan.report.server_total)
        if not plan.new:
            await _finish_folder(deps, plan.folder, plan.status, plan.report)
    await _fetch_new(deps, session, account, [p for p in plans if p.new], progress)


async def _plan_folder(deps: Deps, session, account: EmailAccount, folder: MailFolder) -> _Plan:
    """EXAMINE, a renumbering, expunges and flag changes applied; the new UIDs in the sync window, newest first."""
    report = FolderReport(folder.name, folder.role)
    status = await asyncio.to_thread(session.examine, folder.name)
    if folder.uidvalidity is not None and folder.uidvalidity != status.uidvalidity:
        await _reset_folder(deps, folder)
        report.reset = True
    since = _since(account)
    stored = await _stored_uids(deps, folder)
    if _quick_resync(session, folder, status, stored):
        new = await _changes_by_qresync(deps, session, folder, stored, status, since, report)
    else:
        window = await asyncio.to_thread(session.uids, since)
        everything = window if since is None else await asyncio.to_thread(session.uids, None)
        report.server_total = len(window)
        await _expunge(deps, folder, stored, [uid for uid in stored if uid not in set(everything)], report)
        await _refresh_flags(deps, session, folder, stored, status, everything)
        new = sorted(set(window) - set(stored), reverse=True)
    return _Plan(folder, status, report, new)


async def _sync_folder(
    deps: Deps,
    session,
    account: EmailAccount,
    folder: MailFolder,
    progress: Progress | None,
) -> FolderReport:
    """A Gmail folder on its own: the X-GM-MSGIDs stored before it (this pass or any earlier one) are placed,
    not fetched again."""
    plan = await _plan_folder(deps, session, account, folder)
    plan.new = await _place_known_gmail(deps, session, folder, plan.status.uidvalidity, plan.new)
    if progress:
        progress(folder.name, plan.report.server_total - len(plan.new), plan.report.server_total)
    await _fetch_new(deps, session, account, [plan] if plan.new else [], progress, finish=False)
    await _learn_gmail(deps, session, folder, plan.new)
    await _finish_folder(deps, folder, plan.status, plan.report)
    return plan.report


async def _place_known_gmail(deps: Deps, session, folder: MailFolder, uidvalidity: int, new: list[int]) -> list[int]:
    """Record the place of new UIDs whose X-GM-MSGID is stored already (no body fetched); returns the others.

    The ids are kept with the account's locations (``_learn_gmail``): a message
    moved back to the Inbox in Gmail, or a renumbered folder, is placed by its
    id in a later pass too, never downloaded again.
    """
    if not new or not await _knows_gmail_ids(deps, folder):
        return new  # the account's first folder: nothing to look up
    places = await asyncio.to_thread(session.gmail_places, new)
    known = await _messages_by_gmail_id(deps, folder, {str(place[0]) for place in places.values()})
    hits = {uid: place for uid, place in places.items() if str(place[0]) in known}
    for chunk in _chunks(sorted(hits), 500):
        async with deps.writing() as db:
            rows = [
                {
                    "company_id": folder.company_id,
                    "folder_id": folder.id,
                    "uid": uid,
                    "account_id": folder.account_id,
                    "message_id": known[str(msgid)],
                    "uidvalidity": uidvalidity,
                    "flags": " ".join(flags),
                    "modseq": modseq,
                    "gm_msgid": str(msgid),
                }
                for uid in chunk
                for msgid, flags, modseq in [hits[uid]]
            ]
            await insert_missing(db, MessageLocation.__table__, rows)
            await labels.follow_keywords(
                db, folder.company_id, [labels.FlagChange(r["message_id"], "", r["flags"]) for r in rows]
            )
    return [uid for uid in new if uid not in hits]


async def _knows_gmail_ids(deps: Deps, folder: MailFolder) -> bool:
    async with deps.reading() as db:
        return (
            await db.scalar(
                select(MessageLocation.uid)
                .where(
                    MessageLocation.company_id == folder.company_id,
                    MessageLocation.account_id == folder.account_id,
                    MessageLocation.gm_msgid.is_not(None),
                )
                .limit(1)
            )
        ) is not None


async def _messages_by_gmail_id(deps: Deps, folder: MailFolder, gm_msgids: set[str]) -> dict[str, uuid.UUID]:
    """X-GM-MSGID -> stored message, for the ids of ``gm_msgids`` the account's locations know."""
    found: dict[str, uuid.UUID] = {}
    async with deps.reading() as db:
        for chunk in _chunks(sorted(gm_msgids), 500):
            found.update(
                (
                    await db.execute(
                        select(MessageLocation.gm_msgid, MessageLocation.message_id).where(
                            MessageLocation.company_id == folder.company_id,
                            MessageLocation.account_id == folder.account_id,
                            MessageLocation.gm_msgid.in_(chunk),
                        )
                    )
                ).all()
            )
    return found


async def _learn_gmail(deps: Deps, session, folder: MailFolder, fetched: list[int]) -> None:
    """The X-GM-MSGID of the messages just stored, kept with their locations (for the folders and passes that
    follow), and their labels (X-GM-LABELS)."""
    for chunk in _chunks(fetched, 1000):
        facts = await asyncio.to_thread(session.gmail_labels, chunk)
        async with deps.writing() as db:
            stored = dict(
                (
                    await db.execute(
                        select(MessageLocation.uid, MessageLocation.message_id).where(
                            MessageLocation.company_id == folder.company_id,
                            MessageLocation.folder_id == folder.id,
                            MessageLocation.uid.in_(chunk),
                        )
                    )
                ).all()
            )
            labelled: dict[uuid.UUID, list[str]] = {}
            ids = []
            for uid, (msgid, names) in facts.items():
                if uid in stored:
                    ids.append(
                        {"company_id": folder.company_id, "folder_id": folder.id, "uid": uid, "gm_msgid": str(msgid)}
                    )
                    labelled.setdefault(stored[uid], []).extend(gmail_user_labels(names))
            if ids:
                await db.execute(update(MessageLocation), ids)  # by primary key, one statement for the lot
            await labels.follow_provider_labels(db, folder.company_id, labelled)


async def link_pending(deps: Deps, company_id: uuid.UUID, *, chunk: int = 500) -> None:
    """Run the linking rules on every conversation that has new mail, a few hundred per transaction.

    One at a time per company: the pending conversations are the company's, so
    passes of its accounts running at once would refresh the same ones and
    collide on their rows (duplicate participants). In this process an asyncio
    lock queues them without holding connections; across processes a
    transaction-scoped advisory lock on PostgreSQL (SQLite's BEGIN IMMEDIATE
    already serialises writers).
    """
    loop = asyncio.get_running_loop()
    lock = _LINKING.setdefault((id(loop), company_id), asyncio.Lock())
    async with lock:
        while True:
            async with deps.writing() as db:
                if db.get_bind().dialect.name == "postgresql":
                    await db.execute(select(func.pg_advisory_xact_lock(_LINKING_LOCK, func.hashtext(str(company_id)))))
                if await linking.refresh_pending(db, company_id, limit=chunk) < chunk:
                    return


_LINKING: dict[tuple[int, uuid.UUID], asyncio.Lock] = {}
_LINKING_LOCK = 7_403  # the advisory lock class of "linking pending conversations" (key 2: the company)


def _quick_resync(session, folder: MailFolder, status, stored: dict[int, str]) -> bool:
    """RFC 7162 QRESYNC applies: the server offers it and the folder was read whole before, at a known state.

    Not while deletions are held for confirmation: VANISHED reports each
    expunge once, and those are still waiting to be applied.
    """
    return (
        session.has(b"QRESYNC")
        and folder.highestmodseq is not None
        and status.highestmodseq is not None
        and folder.uidnext is not None
        and not folder.held_deletions
        and not folder.deletions_confirmed
    )


async def _changes_by_qresync(
    deps: Deps, session, folder: MailFolder, stored: dict[int, str], status, since, report: FolderReport
) -> list[int]:
    """Flag changes and expunges since the stored HIGHESTMODSEQ (VANISHED), and the UIDs past the stored UIDNEXT.

    No UID list of the whole folder is read: an unchanged folder costs one
    SELECT, a changed one a FETCH of what changed and a SEARCH of what is new.
    """
    new: list[int] = []
    if status.highestmodseq != folder.highestmodseq:
        if stored:
            changes, vanished = await asyncio.to_thread(
                session.changes_and_vanished, sorted(stored), folder.highestmodseq
            )
            await _expunge(deps, folder, stored, sorted(vanished), report)
            await _apply_flags(deps, folder, stored, changes)
        if status.uidnext is None or status.uidnext > folder.uidnext:
            found = await asyncio.to_thread(session.uids_from, folder.uidnext, since)
            new = sorted(set(found) - set(stored), reverse=True)
    report.server_total = len(stored) + len(new)  # stored: what _expunge left
    return new


async def _stored_uids(deps: Deps, folder: MailFolder) -> dict[int, str]:
    async with deps.reading() as db:
        rows = await db.execute(
            select(MessageLocation.uid, MessageLocation.flags).where(
                MessageLocation.company_id == folder.company_id, MessageLocation.folder_id == folder.id
            )
        )
        return {uid: flags for uid, flags in rows}


async def _reset_folder(deps: Deps, folder: MailFolder) -> None:
    """UIDVALIDITY changed: forget this folder's UIDs, keep every message and link."""
    async with deps.writing() as db:
        row = await db.get(MailFolder, (folder.company_id, folder.id))
        row.consecutive_resets += 1
        resets = row.consecutive_resets
        await db.execute(
            delete(MessageLocation).where(
                MessageLocation.company_id == folder.company_id, MessageLocation.folder_id == folder.id
            )
        )
        row.uidvalidity = row.highestmodseq = None
        row.synced = 0
    folder.consecutive_resets, folder.uidvalidity, folder.highestmodseq = resets, None, None
    if resets > MAX_RESETS:
        raise _LoopGuard(
            f"The folder “{folder.name}” was renumbered by the server {resets} times in a row "
            "(UIDVALIDITY changed). Sync is stopped for this account so that nothing is imported "
            "twice; ask your mail provider what happened, then reconnect the account."
        )


async def _expunge(
    deps: Deps, folder: MailFolder, stored: dict[int, str], gone: list[int], report: FolderReport
) -> None:
    """Forget the locations of ``gone`` UIDs, unless that is a mass deletion (then hold them for a person)."""
    if len(stored) > MASS_DELETION_MIN and len(gone) > len(stored) / 2 and not folder.deletions_confirmed:
        report.held_deletions = len(gone)  # the safety valve: a person confirms first
        return
    report.expunged = len(gone)
    if not gone:
        return
    async with deps.writing() as db:
        for chunk in _chunks(gone, 500):
            await db.execute(
                delete(MessageLocation).where(
                    MessageLocation.company_id == folder.company_id,
                    MessageLocation.folder_id == folder.id,
                    MessageLocation.uid.in_(chunk),
                )
            )
    for uid in gone:
        stored.pop(uid)


async def _refresh_flags(
    deps: Deps, session, folder: MailFolder, stored: dict[int, str], status, on_server: list[int]
) -> None:
    if not stored:
        return
    if folder.highestmodseq is not None and status.highestmodseq is not None:
        if status.highestmodseq == folder.highestmodseq:
            return
        changes = await asyncio.to_thread(session.changed_since, sorted(stored), folder.highestmodseq)
        if folder.role == "all" and session.profile.gmail_extensions:
            await _follow_gmail_labels(deps, session, folder, sorted(changes))
    else:
        changes = await asyncio.to_thread(session.flags, [u for u in on_server if u in stored])
    await _apply_flags(deps, folder, stored, changes)


async def _follow_gmail_labels(deps: Deps, session, folder: MailFolder, changed: list[int]) -> None:
    """Gmail: labels set or taken off in Gmail on mail stored earlier (a label change moves MODSEQ).

    For each conversation with a changed message in All Mail (which holds every message of the account),
    the user labels of all its messages there are read again and become its labels from this account
    (``labels.follow_gmail_labels``).
    """
    if not changed:
        return
    async with deps.reading() as db:
        touched: set[uuid.UUID] = set()
        for chunk in _chunks(changed, 500):
            touched |= set(await db.scalars(
                select(Message.conversation_id)
                .join(MessageLocation, (MessageLocation.company_id == Message.company_id)
                      & (MessageLocation.message_id == Message.id))
                .where(MessageLocation.company_id == folder.company_id, MessageLocation.folder_id == folder.id,
                       MessageLocation.uid.in_(chunk))
            ))
        placed: list[tuple[int, uuid.UUID]] = []
        for chunk in _chunks(sorted(touched), 500):
            placed += (await db.execute(
                select(MessageLocation.uid, Message.conversation_id)
                .join(Message, (Message.company_id == MessageLocation.company_id)
                      & (Message.id == MessageLocation.message_id))
                .where(MessageLocation.company_id == folder.company_id, MessageLocation.folder_id == folder.id,
                       Message.conversation_id.in_(chunk))
            )).all()
    facts = await asyncio.to_thread(session.gmail_labels, sorted({uid for uid, _ in placed}))
    truth: dict[uuid.UUID, set[str]] = {conversation: set() for conversation in touched}
    for uid, conversation in placed:
        truth[conversation] |= set(gmail_user_labels(facts.get(uid, (0, ()))[1]))
    async with deps.writing() as db:
        await labels.follow_gmail_labels(db, folder.company_id, folder.account_id, truth)


async def _apply_flags(deps: Deps, folder: MailFolder, stored: dict[int, str], changes: dict) -> None:
    updates = {
        uid: " ".join(flags) for uid, (flags, _m) in changes.items() if uid in stored and stored[uid] != " ".join(flags)
    }
    if not updates:
        return
    async with deps.writing() as db:
        seen = []
        for uid, flags in updates.items():
            row = await db.get(MessageLocation, (folder.company_id, folder.id, uid))
            if row is not None:
                seen.append(labels.FlagChange(row.message_id, row.flags, flags))
                row.flags = flags
        await labels.follow_keywords(db, folder.company_id, seen)  # keywords another mail client set or removed


async def _fetch_new(
    deps: Deps,
    session,
    account: EmailAccount,
    plans: list[_Plan],
    progress: Progress | None,
    *,
    finish: bool = True,
) -> None:
    """The new mail of ``plans``, folder after folder, newest first, through one pipeline a few batches deep.

    Worker processes fetch, keep and parse batches n+1 and n+2 while this
    task stores n; the depth bounds memory. The first, small batch is fetched
    here, on the pass's connection, so the newest conversations are listed
    before the workers have even started; the batches grow after it. A
    folder is finished (its state recorded) when its last batch is stored,
    unless ``finish`` is False (the caller has more to do first). Linking
    runs at the end of the pass, and meanwhile every ``LINK_EVERY`` seconds
    of a long one.
    """
    batches = list(_growing_batches(plans))
    if not batches:
        return
    login = await _login(deps, account)
    if deps.fetcher is not None and len(batches) > 1:
        deps.fetcher.warm_up()
    rules = {
        plan.folder.id: linking.ContactRule(
            account.contact_policy, account.address, account.owner_id, plan.folder.role == "sent"
        )
        for plan in plans
    }

    def start(index: int) -> asyncio.Task:
        plan, uids = batches[index]
        folder, uidvalidity = plan.folder.name, plan.status.uidvalidity
        if index == 0 or deps.fetcher is None:
            return asyncio.create_task(_fetch_here(deps, session, fetch_lock, folder, uidvalidity, uids))
        return asyncio.create_task(_fetch_in_workers(deps, login, folder, uidvalidity, uids))

    fetch_lock = asyncio.Lock()
    ahead = [start(index) for index in range(min(PIPELINE_DEPTH, len(batches)))]
    linked_at = time.monotonic()
    try:
        for index, (plan, uids) in enumerate(batches):
            arrivals = await ahead.pop(0)
            if index + PIPELINE_DEPTH < len(batches):
                ahead.append(start(index + PIPELINE_DEPTH))
            folder = plan.folder
            async with deps.writing() as db:
                store = MailStore(db, account.company_id, account.id, rules[folder.id])
                await store.store(folder.id, plan.status.uidvalidity, arrivals)
                row = await db.get(MailFolder, (folder.company_id, folder.id))
                row.uidvalidity, row.server_total = plan.status.uidvalidity, plan.report.server_total
                row.synced = (row.synced or 0) + len(arrivals)
                row.state = "syncing"
            plan.report.fetched += len(arrivals)
            plan.done += len(uids)
            await sync_state.heartbeat(deps, account.company_id, account.id)
            if (index + 1) & index == 0:  # after batches 1, 2, 4, 8 ...: the tables doubled
                async with deps.writing() as db:
                    await refresh_statistics(db)
            if progress:
                progress(folder.name, plan.report.server_total - len(plan.new) + plan.done, plan.report.server_total)
            if finish and plan.done == len(plan.new):
                await _finish_folder(deps, folder, plan.status, plan.report)
            if time.monotonic() - linked_at > LINK_EVERY:  # a long initial sync: deals see their mail meanwhile
                await link_pending(deps, account.company_id)
                linked_at = time.monotonic()
    finally:
        # After a failure the batches fetched ahead must not outlive the pass: queued ones
        # would issue FETCH on a connection the caller is closing, their errors unheard.
        for task in ahead:
            task.cancel()
        await asyncio.gather(*ahead, return_exceptions=True)


async def _fetch_here(
    deps: Deps, session, lock: asyncio.Lock, folder: str, uidvalidity: int, uids: list[int]
) -> list[Arrival]:
    """Fetch on the pass's own connection, parse in a thread, keep the raw MIME: for the first batch.

    The pass has examined every folder by now; the batch's folder is examined
    again, and its numbering checked as a worker checks it.
    """
    async with lock:  # one IMAP connection: one command at a time

        def fetch() -> list:
            session.examine_numbered(folder, uidvalidity)
            return list(session.fetch_mail(uids))

        fetched = await asyncio.to_thread(fetch)
    return await _prepared(deps, fetched)


async def _fetch_in_workers(
    deps: Deps, login: ServerLogin, folder: str, uidvalidity: int, uids: list[int]
) -> list[Arrival]:
    """Fetched, kept and parsed by a worker process on a connection of its own (adapters.imap.fetch_workers)."""
    done = await deps.fetcher.fetch(login, folder, uidvalidity, uids)
    return [_arrival(d.uid, d.flags, d.modseq, d.gm_thrid, d.size, d.prepared, d.raw_key) for d in done]


def _arrival(
    uid: int, flags, modseq, gm_thrid: str | None, size: int, prepared: Prepared, key: str | None = None
) -> Arrival:
    """``key``: where the raw MIME was kept (a worker's pack); else under the message's content-addressed key."""
    parsed = prepared.parsed
    if gm_thrid:
        parsed = replace(parsed, gm_thrid=gm_thrid)
    return Arrival(uid, flags, modseq, parsed, key or raw_key(parsed.content_hash), size, prepared)


async def _finish_folder(deps: Deps, folder: MailFolder, status, report: FolderReport) -> None:
    async with deps.writing() as db:
        row = await db.get(MailFolder, (folder.company_id, folder.id))
        synced = await db.scalar(
            select(func.count())
            .select_from(MessageLocation)
            .where(MessageLocation.company_id == folder.company_id, MessageLocation.folder_id == folder.id)
        )
        row.uidvalidity, row.uidnext, row.highestmodseq = status.uidvalidity, status.uidnext, status.highestmodseq
        row.server_total, row.synced, row.last_sync_at = report.server_total, synced, dt.datetime.now(dt.UTC)
        row.held_deletions = report.held_deletions
        row.deletions_confirmed = False
        row.state = "needs_confirmation" if report.held_deletions else "synced"
        row.last_error = (
            (
                f"{report.held_deletions} messages vanished from “{row.name}” at once. Nothing was "
                "deleted here; confirm in the account page if this was intended."
            )
            if report.held_deletions
            else None
        )
        if not report.reset:
            row.consecutive_resets = 0


def _growing_batches(plans: list[_Plan]):
    """(plan, UIDs) batches, folder after folder; sizes grow over the pass (``BATCH_SIZES``), not per folder."""
    index = 0
    for plan in plans:
        start = 0
        while start < len(plan.new):
            size = BATCH_SIZES[min(index, len(BATCH_SIZES) - 1)]
            yield plan, plan.new[start : start + size]
            start, index = start + size, index + 1


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---- new mail on the IDLE connection ------------------------------------------------------

FAST_NEW_MAIL_MAX = 100  # more at once (a client moving mail in): a pass, with its worker processes


def new_mail_taker(deps: Deps, account_id: uuid.UUID) -> idle.NewMail:
    """What IDLE calls when the server says EXISTS: ``take_new_inbox_mail`` for this account."""

    async def take(session, known: FolderStatus) -> FolderStatus | None:
        return await take_new_inbox_mail(deps, account_id, session, known)

    return take


async def take_new_inbox_mail(deps: Deps, account_id: uuid.UUID, session, known: FolderStatus) -> FolderStatus | None:
    """New mail IDLE announced, fetched and stored on the IDLE connection itself; INBOX's state after.

    ``known`` is what this connection last read of INBOX (the stored state
    matched it when IDLE began). The mail past the stored UIDNEXT is fetched,
    parsed and stored as a pass would, and IDLE goes on. None, when a pass must
    look instead: the folder was renumbered, a mass arrival, Gmail (whose mail
    is identified across folders), an OAuth account (the pass's fresh login is
    where a revoked grant shows), or something besides new mail changed —
    flags (SEARCH MODSEQ finds old messages changed) or an expunge (EXISTS
    does not add up). The mail fetched here is stored either way, unless a
    pass changed the folder meanwhile; a flag change the check could not rule
    out (no CONDSTORE) waits for the poll.
    """
    if session.profile.gmail_extensions:
        return None
    account = await _load_account(deps, account_id)
    if account.auth_method == "oauth2":
        return None  # a pass logs in afresh: a grant revoked at the provider shows at once, not at the next poll
    async with deps.reading() as db:
        folder = await db.scalar(
            select(MailFolder).where(
                MailFolder.company_id == account.company_id,
                MailFolder.account_id == account.id,
                MailFolder.name == "INBOX",
            )
        )
    if folder is None or folder.uidnext is None or folder.held_deletions or folder.deletions_confirmed:
        return None
    status = await idle.in_idle_thread(lambda: session.examine("INBOX"))
    if status.uidnext is None or status.uidvalidity != known.uidvalidity or folder.uidvalidity != status.uidvalidity:
        return None
    found = await idle.in_idle_thread(lambda: session.uids_from(folder.uidnext, _since(account)))
    stored = await _stored_among(deps, folder, found)
    new = sorted(set(found) - stored, reverse=True)
    if len(new) > FAST_NEW_MAIL_MAX:
        return None
    fetched = await idle.in_idle_thread(lambda: list(session.fetch_mail(new)))
    only_new = status.exists == known.exists + len(found)
    if only_new and status.highestmodseq is not None and known.highestmodseq is not None:
        changed = await idle.in_idle_thread(lambda: session.uids_changed_since(known.highestmodseq))
        only_new = set(changed) <= set(found)
    arrivals = await _prepared(deps, fetched)
    contacts = linking.ContactRule(account.contact_policy, account.address, account.owner_id, False)
    async with deps.writing() as db:
        row = await db.get(MailFolder, (folder.company_id, folder.id))
        if row.uidnext != folder.uidnext or row.uidvalidity != status.uidvalidity:
            return None  # a pass ran meanwhile (another process, by hand): it stores what it found
        if arrivals:
            await MailStore(db, account.company_id, account.id, contacts).store(folder.id, status.uidvalidity, arrivals)
        row.uidnext = status.uidnext
        row.synced = (row.synced or 0) + len(arrivals)
        row.server_total = (row.server_total or 0) + len(arrivals)
        if only_new and row.highestmodseq == known.highestmodseq:
            row.highestmodseq = status.highestmodseq  # nothing else changed: the next IDLE need not look
    if arrivals:
        await link_pending(deps, account.company_id)
    return status if only_new else None


async def _stored_among(deps: Deps, folder: MailFolder, uids: list[int]) -> set[int]:
    if not uids:
        return set()
    async with deps.reading() as db:
        return set(
            await db.scalars(
                select(MessageLocation.uid).where(
                    MessageLocation.company_id == folder.company_id,
                    MessageLocation.folder_id == folder.id,
                    MessageLocation.uid.in_(uids),
                )
            )
        )


async def _prepared(deps: Deps, fetched: list) -> list[Arrival]:
    """Parsed in a thread, the raw MIME kept: a few messages, no worker process needed."""
    if not fetched:
        return []
    prepared = await asyncio.to_thread(prepare_many, [(f.raw, f.lean) for f in fetched])
    arrivals = [
        _arrival(f.uid, f.flags, f.modseq, f.gm_thrid, f.size or len(f.raw), p)
        for f, p in zip(fetched, prepared, strict=True)
    ]
    await asyncio.gather(*(deps.blobs.put(a.raw_key, f.raw) for a, f in zip(arrivals, fetched, strict=True)))
    return arrivals


async def wait_for_inbox_change(deps: Deps, account_id: uuid.UUID, seconds: float, stop: asyncio.Event) -> bool:
    """IDLE on INBOX (``services/idle.py``); a lost connection raises SyncFailed, as a pass does."""
    try:
        return await idle.wait_for_inbox_change(deps, account_id, seconds, stop)
    except idle.IdleFailed as exc:
        raise SyncFailed(str(exc)) from exc


async def confirm_held_deletions(deps: Deps, account_id: uuid.UUID) -> int:
    """A person says the mass deletion was intended; the next pass applies it. Returns the folders released."""
    async with deps.writing() as db:
        rows = list(
            await db.scalars(
                select(MailFolder).where(MailFolder.account_id == account_id, MailFolder.held_deletions > 0)
            )
        )
        for row in rows:
            row.deletions_confirmed = True
        return len(rows)
