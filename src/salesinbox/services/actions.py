"""Two-way actions on conversations: read / unread, archive, delete (to Trash, then for good), restore.

Each action is carried out on the mail server first, then mirrored here, per
(account, folder) of the conversation's messages that the actor may use:

- the folder is opened read-write and its UIDVALIDITY compared with the one
  stored; a mismatch means our UIDs are stale, so nothing is written there
  (the next sync pass renumbers the folder) and the action reports it;
- flags change with STORE; archive and delete MOVE (or COPY + expunge of
  exactly those UIDs); "delete forever" in Trash expunges those UIDs only;
- an account without an Archive folder but with an "all mail" folder (Gmail)
  archives by moving out of INBOX into All Mail, which Gmail reads as "take
  the Inbox label off" (the message stays in All Mail); moving it back COPYs
  it from All Mail to INBOX (the label again), never MOVEs out of All Mail;
- then the locations here are updated: flags rewritten, moved locations
  dropped and, where the server names the new UIDs (UIDPLUS COPYUID) under
  the UIDVALIDITY stored for the target folder, recorded there in the same
  transaction, so a move is listed, and can be undone, at once; otherwise
  the next pass finds the messages in their new folder, deduplicated.

Every action also runs on several conversations at once (``act_on_many``):
the same scoping, one connection per account, one command per folder.

No database transaction is held across an IMAP call.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from salesinbox.adapters.db.tables import EmailAccount, MailFolder, Message, MessageLocation
from salesinbox.adapters.imap.session import Landed
from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.services.access import usable_account_ids
from salesinbox.services.accounts import imap_login, require_email_sync
from salesinbox.services.unit_of_work import Deps


class StaleFolder(Exception):
    """The server renumbered the folder (UIDVALIDITY changed) since the last sync."""


@dataclass(frozen=True)
class ActionReport:
    changed: int  # locations changed on the server
    skipped_folders: list[str]  # folders left alone because their UIDs were stale


@dataclass
class _Place:
    account: EmailAccount
    folder: MailFolder
    uids: list[int]


async def set_read(deps: Deps, actor: Actor, conversation_id: uuid.UUID, read: bool) -> ActionReport:
    return await _set_read(deps, actor, [conversation_id], read)


async def _set_read(deps: Deps, actor: Actor, conversation_ids: list[uuid.UUID], read: bool) -> ActionReport:
    places = await places_of(deps, actor, conversation_ids)

    def act(session, place: _Place) -> None:
        session.set_flags(place.uids, ["\\Seen"], add=read)

    report = await _on_server(deps, places, act)

    async with deps.writing() as db:
        for place in places:
            if place.folder.name in report.skipped_folders:
                continue
            rows = await db.execute(
                select(MessageLocation).where(
                    MessageLocation.company_id == place.folder.company_id,
                    MessageLocation.folder_id == place.folder.id,
                    MessageLocation.uid.in_(place.uids),
                )
            )
            for location in rows.scalars():
                flags = [f for f in location.flags.split() if f != "\\Seen"]
                location.flags = " ".join([*flags, "\\Seen"] if read else flags)
    return report


async def archive(deps: Deps, actor: Actor, conversation_id: uuid.UUID) -> ActionReport:
    """Out of the Inbox into the account's Archive folder."""
    return await _archive(deps, actor, [conversation_id])


async def _archive(deps: Deps, actor: Actor, conversation_ids: list[uuid.UUID]) -> ActionReport:
    return await _move(deps, actor, conversation_ids, source_roles=("inbox",), target_role="archive",
                       else_role="all")


async def unarchive(deps: Deps, actor: Actor, conversation_id: uuid.UUID) -> ActionReport:
    """From the Archive back to the Inbox."""
    return await _unarchive(deps, actor, [conversation_id])


async def _unarchive(deps: Deps, actor: Actor, conversation_ids: list[uuid.UUID]) -> ActionReport:
    moved = await _move(deps, actor, conversation_ids, source_roles=("archive",), target_role="inbox")
    copied = await _back_from_all_mail(deps, actor, conversation_ids)
    return ActionReport(moved.changed + copied.changed, moved.skipped_folders + copied.skipped_folders)


async def _back_from_all_mail(deps: Deps, actor: Actor, conversation_ids: list[uuid.UUID]) -> ActionReport:
    """Gmail (no Archive folder): archived messages are in All Mail only; COPY gives them the Inbox label again."""
    places = await places_of(deps, actor, conversation_ids)
    in_inbox = {p.account.id for p in places if p.folder.role == "inbox"}
    with_archive = await _folders_by_role(deps, actor, {p.account.id for p in places}, "archive")
    places = [
        p for p in places
        if p.folder.role == "all" and p.account.id not in in_inbox and p.account.id not in with_archive
    ]
    if not places:
        return ActionReport(0, [])
    targets = await _folders_by_role(deps, actor, {p.account.id for p in places}, "inbox")
    places = [p for p in places if p.account.id in targets]
    report, copied, landed = await _transfer(deps, places, targets, keep_source=True)
    async with deps.writing() as db:  # All Mail keeps its copies: only the INBOX places are new
        await _follow(db, copied, targets, landed)
    return report


async def trash(deps: Deps, actor: Actor, conversation_id: uuid.UUID) -> ActionReport:
    """Into Trash, from every folder but Trash; a conversation already in Trash only is deleted for good."""
    return await _trash(deps, actor, [conversation_id])


async def _trash(deps: Deps, actor: Actor, conversation_ids: list[uuid.UUID]) -> ActionReport:
    places = await places_of(deps, actor, conversation_ids)
    if places and all(p.folder.role == "trash" for p in places):
        return await _destroy(deps, places)
    return await _move(deps, actor, conversation_ids, source_roles=None, target_role="trash")


async def restore(deps: Deps, actor: Actor, conversation_id: uuid.UUID) -> ActionReport:
    """From Trash back to the Inbox."""
    return await _restore(deps, actor, [conversation_id])


async def _restore(deps: Deps, actor: Actor, conversation_ids: list[uuid.UUID]) -> ActionReport:
    return await _move(deps, actor, conversation_ids, source_roles=("trash",), target_role="inbox")


_BY_NAME = {
    "archive": _archive,
    "unarchive": _unarchive,
    "trash": _trash,
    "restore": _restore,
    "read": lambda deps, actor, ids: _set_read(deps, actor, ids, True),
    "unread": lambda deps, actor, ids: _set_read(deps, actor, ids, False),
}
BULK_ACTIONS = frozenset(_BY_NAME)
MOST_AT_ONCE = 200

#: Why a move cannot be made, by the folder it goes to: one message a folder, as other languages inflect its name.
_NO_FOLDER = {
    "archive": lambda accounts: Text("%(accounts)s has no archive folder.", accounts=accounts),
    "inbox": lambda accounts: Text("%(accounts)s has no inbox folder.", accounts=accounts),
    "trash": lambda accounts: Text("%(accounts)s has no trash folder.", accounts=accounts),
}


async def act_on_many(deps: Deps, actor: Actor, action: str, conversation_ids: list[uuid.UUID]) -> ActionReport:
    """One action (archive, unarchive, trash, restore, read, unread) on several conversations at once.

    Each conversation is scoped exactly as the single actions scope it (the
    actor's company, the accounts they may use); if any one is not there for
    the actor, nothing is done (NotFound). One IMAP connection per account,
    one command per folder.
    """
    run = _BY_NAME.get(action)
    if run is None:
        raise NotFound(Text("No such action."))
    ids = list(dict.fromkeys(conversation_ids))
    if not ids or len(ids) > MOST_AT_ONCE:
        raise ValidationFailed({"ids": Text("Choose between 1 and %(most)s conversations.", most=MOST_AT_ONCE)})
    return await run(deps, actor, ids)


async def _move(
    deps, actor, conversation_ids: list[uuid.UUID], *, source_roles, target_role: str, else_role: str | None = None
) -> ActionReport:
    """MOVE the conversations' messages in ``source_roles`` (None: any other) to the account's ``target_role``
    folder, or its ``else_role`` folder where it has none."""
    places = [
        p
        for p in await places_of(deps, actor, conversation_ids)
        if (source_roles is None and p.folder.role != target_role) or (source_roles and p.folder.role in source_roles)
    ]
    accounts = {p.account.id for p in places}
    targets = await _folders_by_role(deps, actor, accounts, target_role)
    if else_role is not None and accounts - set(targets):
        targets = await _folders_by_role(deps, actor, accounts - set(targets), else_role) | targets
    missing = [p.account.address for p in places if p.account.id not in targets]
    if missing:
        raise ValidationFailed({"folder": _NO_FOLDER[target_role](", ".join(sorted(set(missing))))})
    report, moved, landed = await _transfer(deps, places, targets, keep_source=False)
    async with deps.writing() as db:  # one transaction: never listed in both folders, nor in neither
        await _follow(db, moved, targets, landed)
        await _drop(db, moved)
    return report


async def _transfer(
    deps: Deps, places: list[_Place], targets: dict[uuid.UUID, MailFolder], *, keep_source: bool
) -> tuple[ActionReport, list[_Place], dict[uuid.UUID, Landed]]:
    """MOVE (COPY where ``keep_source``) each place's UIDs to its account's target folder, on the server.

    Returns the report, the places done (a renumbered folder is skipped) and, per source folder, the UIDs
    the server named in the target (COPYUID) for ``_follow``.
    """
    landed: dict[uuid.UUID, Landed] = {}

    def act(session, place: _Place) -> None:
        send = session.copy if keep_source else session.move
        where = send(place.uids, targets[place.account.id].name)
        if where is not None:
            landed[place.folder.id] = where

    report = await _on_server(deps, places, act)
    return report, [p for p in places if p.folder.name not in report.skipped_folders], landed


async def _follow(db, moved: list[_Place], targets: dict[uuid.UUID, MailFolder], landed) -> None:
    """Record the moved messages in their new folder at once, where the server said their UIDs (COPYUID).

    So the conversation is listed where it went, and undone (moved back) at
    once, without waiting for a sync pass; that pass finds these UIDs stored
    and skips them. Only under the UIDVALIDITY stored for the target folder:
    another numbering is left to the next pass.
    """
    for place in moved:
        target, where = targets[place.account.id], landed.get(place.folder.id)
        if where is None or where.uidvalidity != target.uidvalidity:
            continue
        rows = await db.execute(
            select(MessageLocation).where(
                MessageLocation.company_id == place.folder.company_id,
                MessageLocation.folder_id == place.folder.id,
                MessageLocation.uid.in_(place.uids),
            )
        )
        for old in rows.scalars():
            uid = where.uids.get(old.uid)
            if uid is None or await db.get(MessageLocation, (old.company_id, target.id, uid)) is not None:
                continue  # not reported, or a sync pass stored it first
            db.add(
                MessageLocation(
                    company_id=old.company_id,
                    folder_id=target.id,
                    uid=uid,
                    account_id=old.account_id,
                    message_id=old.message_id,
                    uidvalidity=where.uidvalidity,
                    flags=old.flags,
                )
            )


async def _destroy(deps: Deps, places: list[_Place]) -> ActionReport:
    def act(session, place: _Place) -> None:
        session.destroy(place.uids)

    report = await _on_server(deps, places, act)
    await _forget(deps, [p for p in places if p.folder.name not in report.skipped_folders])
    return report


async def _forget(deps: Deps, places: list[_Place]) -> None:
    async with deps.writing() as db:
        await _drop(db, places)


async def _drop(db, places: list[_Place]) -> None:
    for place in places:
        await db.execute(
            delete(MessageLocation).where(
                MessageLocation.company_id == place.folder.company_id,
                MessageLocation.folder_id == place.folder.id,
                MessageLocation.uid.in_(place.uids),
            )
        )
        # The folder changed under us: the next pass must look again, not trust HIGHESTMODSEQ.
        await db.execute(
            update(MailFolder)
            .where(MailFolder.company_id == place.folder.company_id, MailFolder.id == place.folder.id)
            .values(highestmodseq=None)
        )


async def places_of(deps: Deps, actor: Actor, conversation_ids: list[uuid.UUID]) -> list[_Place]:
    """Where the conversations' messages are, in the accounts the actor may use; NotFound unless each has some."""
    require_email_sync(actor)
    async with deps.reading() as db:
        accounts = await usable_account_ids(db, actor)
        rows = (
            await db.execute(
                select(MessageLocation.uid, MailFolder, EmailAccount, Message.conversation_id)
                .join(
                    Message,
                    (Message.company_id == MessageLocation.company_id) & (Message.id == MessageLocation.message_id),
                )
                .join(
                    MailFolder,
                    (MailFolder.company_id == MessageLocation.company_id)
                    & (MailFolder.id == MessageLocation.folder_id),
                )
                .join(
                    EmailAccount,
                    (EmailAccount.company_id == MessageLocation.company_id)
                    & (EmailAccount.id == MessageLocation.account_id),
                )
                .where(
                    Message.company_id == actor.company_id,
                    Message.conversation_id.in_(conversation_ids),
                    MessageLocation.account_id.in_(accounts),
                )
            )
        ).all()
    if not rows or {row.conversation_id for row in rows} != set(conversation_ids):
        raise NotFound(Text("No such conversation."))
    grouped: dict[uuid.UUID, _Place] = {}
    uids: dict[uuid.UUID, list[int]] = defaultdict(list)
    for uid, folder, account, _conversation in rows:
        grouped.setdefault(folder.id, _Place(account, folder, []))
        uids[folder.id].append(uid)
    for folder_id, place in grouped.items():
        place.uids = sorted(uids[folder_id])
    return list(grouped.values())


async def _folders_by_role(
    deps: Deps, actor: Actor, account_ids: set[uuid.UUID], role: str
) -> dict[uuid.UUID, MailFolder]:
    async with deps.reading() as db:
        rows = await db.execute(
            select(MailFolder).where(
                MailFolder.company_id == actor.company_id,
                MailFolder.account_id.in_(account_ids),
                MailFolder.role == role,
            )
        )
        return {folder.account_id: folder for folder in rows.scalars()}


async def _on_server(deps: Deps, places: list[_Place], act) -> ActionReport:
    by_account: dict[uuid.UUID, list[_Place]] = defaultdict(list)
    for place in places:
        by_account[place.account.id].append(place)
    changed, skipped = 0, []
    for account_places in by_account.values():
        account = account_places[0].account
        login = await imap_login(deps, account)

        def run(account_places=account_places, login=login) -> tuple[int, list[str]]:
            session = deps.open_mailbox(login).connect()
            done, stale = 0, []
            try:
                for place in account_places:
                    if session.open_for_writing(place.folder.name) != place.folder.uidvalidity:
                        stale.append(place.folder.name)  # never write with UIDs of another numbering
                        continue
                    act(session, place)
                    done += len(place.uids)
            finally:
                session.close()
            return done, stale

        done, stale = await asyncio.to_thread(run)
        changed += done
        skipped += stale
    return ActionReport(changed, skipped)
