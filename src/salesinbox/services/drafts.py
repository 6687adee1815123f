"""Drafts: saved as they are typed, here first, then as one copy in the server's Drafts folder.

A save is two steps, so what was typed is never lost to an unreachable server:

1. The text is committed to the ``drafts`` row (``version`` + 1, ``server_state``
   pending). From here on it survives anything.
2. Then it is filed on the server: a new message (a fresh Message-ID, the
   stable header ``X-Salesinbox-Draft: <draft id>``, flags ``\\Draft \\Seen``) is
   APPENDed to the account's Drafts folder and its UID learnt (UIDPLUS
   APPENDUID, else SEARCH by its Message-ID). The row records the new copy only
   if its version is still the one uploaded (a slower upload of an older text
   deletes its own copy instead). Then the previous copy goes: by its stored
   UID only when the folder's UIDVALIDITY is still the stored one, never by a
   UID of another numbering (then by its Message-ID, found by SEARCH in the
   current numbering: another client's draft carries no header of ours);
   and any other copy carrying this draft's header
   with a lower UID (a crash between APPEND and the commit, a renumbered
   folder) is found by SEARCH in the current numbering and removed too.

So the server holds one copy of a draft, its latest saved text. A failed step 2
leaves the row pending with the server's words in ``last_error`` (also when
it failed after recording the new copy, while removing the old one: the row
goes back to pending, so a copy left behind is removed); the next save, or
``settle`` (run by the outbox worker), files it.

Sending a draft, or throwing it away, marks the row ``discarding`` (any upload
still running then loses its race), removes the server copies the same way,
and deletes the row; if the server cannot be reached, ``settle`` finishes it.

Drafts belong to their account, not to one user: whoever may use the account
(its owner; a team account's members) sees, edits and sends them
(``access.usable_account_ids``). A draft another mail client left in the
Drafts folder is opened for editing by making a row for it that points at its
(folder, UID, UIDVALIDITY); the first save replaces it.

No database transaction is held across an IMAP call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import delete, false, select, update

from salesinbox.adapters.db.tables import Draft, EmailAccount, MailFolder, Message, MessageLocation
from salesinbox.adapters.imap.session import ImapError
from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.mime.compose_html import clean_compose_html
from salesinbox.services.access import usable_account_ids
from salesinbox.services.accounts import imap_login, require_email_sync
from salesinbox.services.outbox import WIRE, one_line, recipient, reply_chain, set_body, set_reply_headers
from salesinbox.services.unit_of_work import Deps

DRAFT_HEADER = "X-Salesinbox-Draft"
DRAFT_FLAGS = (b"\\Draft", b"\\Seen")


@dataclass(frozen=True)
class DraftInput:
    account_id: uuid.UUID
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    text: str = ""
    html: str | None = None  # rich text from the editor; cleaned before it is stored
    in_reply_to: uuid.UUID | None = None


@dataclass(frozen=True)
class DraftView:
    id: uuid.UUID
    account_id: uuid.UUID
    to: str
    cc: str
    bcc: str
    subject: str
    text: str
    html: str | None
    in_reply_to: uuid.UUID | None
    version: int
    on_server: bool  # the latest saved text is in the server's Drafts folder
    last_error: str | None
    updated_at: dt.datetime


@dataclass(frozen=True)
class _Copy:
    folder: str
    uid: int
    uidvalidity: int
    message_id: str | None = None  # found by it (SEARCH) when the folder was renumbered since


class DraftsFolderMissing(Exception):
    """The account has no Drafts folder (no SPECIAL-USE \\Drafts)."""


# ---- saving -------------------------------------------------------------------------------


async def save_draft(deps: Deps, actor: Actor, draft_id: uuid.UUID | None, data: DraftInput) -> DraftView:
    """Commit the text (a new draft, or a new version of one), then file it on the server."""
    require_email_sync(actor)
    html = clean_compose_html(data.html) if data.html else None
    moved_from: tuple[uuid.UUID, _Copy] | None = None
    async with deps.writing() as db:
        accounts = await usable_account_ids(db, actor)
        if data.account_id not in accounts:
            raise ValidationFailed({"account_id": Text("Choose the account to send from.")})
        row = await _usable_row(db, actor, accounts, draft_id) if draft_id else None
        if row is None:
            row = Draft(company_id=actor.company_id, account_id=data.account_id, version=0)
            db.add(row)
        elif row.account_id != data.account_id and row.server_uid is not None:
            moved_from = (row.account_id, _copy_of(row))  # the old account's copy is taken down below
            row.server_folder = row.server_uid = row.server_uidvalidity = row.server_message_id = None
        row.account_id, row.user_id = data.account_id, actor.user_id
        row.to_addresses, row.cc_addresses, row.bcc_addresses = data.to[:5000], data.cc[:5000], data.bcc[:5000]
        row.subject, row.body_text, row.body_html = data.subject[:2000], data.text, html or None
        row.in_reply_to_id = await _answerable(db, actor, accounts, data.in_reply_to)
        row.version, row.server_state = row.version + 1, "pending"
    if moved_from is not None:
        await _take_down(deps, actor.company_id, moved_from[0], row.id, moved_from[1])
    await push_draft(deps, actor.company_id, row.id)
    return await get_draft(deps, actor, row.id)


async def _usable_row(db, actor: Actor, accounts: list[uuid.UUID], draft_id: uuid.UUID) -> Draft:
    row = await db.get(Draft, (actor.company_id, draft_id))
    if row is None or row.account_id not in accounts or row.server_state == "discarding":
        raise NotFound(Text("No such draft."))
    return row


async def _answerable(db, actor: Actor, accounts: list[uuid.UUID], message_id: uuid.UUID | None) -> uuid.UUID | None:
    """The message a reply draft answers, if the actor may use an account that holds it."""
    if message_id is None:
        return None
    return await db.scalar(
        select(MessageLocation.message_id).where(
            MessageLocation.company_id == actor.company_id,
            MessageLocation.message_id == message_id,
            MessageLocation.account_id.in_(accounts),
        ).limit(1)
    )


def _copy_of(row: Draft) -> _Copy | None:
    if row.server_folder is None or row.server_uid is None or row.server_uidvalidity is None:
        return None
    return _Copy(row.server_folder, row.server_uid, row.server_uidvalidity, row.server_message_id)


def build_draft_message(
    account: EmailAccount, row: Draft, parent: Message | None, parent_chain: Sequence[str] = ()
) -> EmailMessage:
    """The server copy of a draft, built by the email library; addresses not finished yet are left out."""
    message = EmailMessage()
    message["From"] = Address(display_name=one_line(account.display_name or ""), addr_spec=account.address)
    for header, typed in (("To", row.to_addresses), ("Cc", row.cc_addresses), ("Bcc", row.bcc_addresses)):
        addresses = [a for a in (_finished(part) for part in _split(typed)) if a is not None]
        if addresses:
            message[header] = addresses
    message["Subject"] = one_line(row.subject)
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain=account.address.rpartition("@")[2] or "salesinbox.invalid")
    message[DRAFT_HEADER] = str(row.id)
    if parent is not None:
        set_reply_headers(message, parent.message_id_header, parent_chain)
    set_body(message, row.body_text, row.body_html)
    return message


def _split(typed: str) -> list[str]:
    return [part.strip() for part in typed.replace(",", "\n").splitlines() if part.strip()]


def _finished(typed: str) -> Address | None:
    try:
        return recipient(typed, "to")
    except ValidationFailed:
        return None


async def push_draft(deps: Deps, company_id: uuid.UUID, draft_id: uuid.UUID) -> str:
    """File the row's latest text on the server and remove the copy it replaces; returns ``server_state``."""
    async with deps.reading() as db:
        row = await db.get(Draft, (company_id, draft_id))
        if row is None or row.server_state != "pending":
            return row.server_state if row else "gone"
        account = await db.get(EmailAccount, (company_id, row.account_id))
        folder_name = await _drafts_folder_name(db, company_id, account.id)
        parent = await db.get(Message, (company_id, row.in_reply_to_id)) if row.in_reply_to_id else None
        version, previous = row.version, _copy_of(row)
    chain = await reply_chain(deps, parent) if parent is not None else ()
    message = build_draft_message(account, row, parent, chain)
    raw, message_id = message.as_bytes(policy=WIRE), str(message["Message-ID"])
    try:
        login = await imap_login(deps, account)
    except ImapError as exc:  # an OAuth sign-in that could not be renewed: the next try may
        await _note_failure(deps, company_id, draft_id, version, exc)
        return "pending"
    session = deps.open_mailbox(login)
    filed: _Copy | None = None
    try:
        await asyncio.to_thread(session.connect)
        filed = await asyncio.to_thread(_file, session, folder_name, raw, message_id)
        if not await _record(deps, company_id, draft_id, version, filed, message_id):
            # A newer text was saved meanwhile, or the draft was sent: this copy is not wanted.
            await asyncio.to_thread(_destroy_in, session, filed.folder, filed.uidvalidity, [filed.uid])
            return "superseded"
        removed = await asyncio.to_thread(_remove_older, session, draft_id, previous, filed)
        await _forget(deps, company_id, account.id, filed.folder, filed.uidvalidity, removed)
    except Exception as exc:  # noqa: BLE001 - the text is safe here; the server gets it on the next try
        await _note_failure(deps, company_id, draft_id, version, exc)
        await _file_again(deps, company_id, draft_id, previous, filed)
        return "pending"
    finally:
        await asyncio.to_thread(session.close)
    return "saved"


async def _file_again(deps: Deps, company_id, draft_id, previous: _Copy | None, filed: _Copy | None) -> None:
    """A push failed after a copy may have landed: the row goes back to pending, so ``settle`` files it again.

    What this push left on the server (its own copy if the connection dropped
    after APPEND, a superseded copy it could not take down) carries the
    draft's header, and the next push removes every such copy below its own.
    The copy it was replacing may carry none (another client's draft opened
    for editing): if the row already records this push's copy, it points
    again at the one replaced, so the next push removes that too. The server
    ends with one copy, never two.
    """
    recorded = (
        (Draft.server_uid == filed.uid, Draft.server_uidvalidity == filed.uidvalidity) if filed else (false(),)
    )
    async with deps.writing() as db:
        await db.execute(
            update(Draft)
            .where(Draft.company_id == company_id, Draft.id == draft_id, Draft.server_state == "saved", *recorded)
            .values(
                server_state="pending",
                server_folder=previous.folder if previous else None,
                server_uid=previous.uid if previous else None,
                server_uidvalidity=previous.uidvalidity if previous else None,
                server_message_id=previous.message_id if previous else None,
            )
        )
        await db.execute(
            update(Draft)
            .where(Draft.company_id == company_id, Draft.id == draft_id, Draft.server_state == "saved")
            .values(server_state="pending")
        )


async def _drafts_folder_name(db, company_id: uuid.UUID, account_id: uuid.UUID) -> str | None:
    return await db.scalar(
        select(MailFolder.name).where(
            MailFolder.company_id == company_id, MailFolder.account_id == account_id, MailFolder.role == "drafts"
        )
    )


def _file(session, folder_name: str | None, raw: bytes, message_id: str) -> _Copy:
    """APPEND the copy to Drafts and learn its UID in the folder's current numbering."""
    folder = folder_name or next((f.name for f in session.folders() if f.role == "drafts"), None)
    if folder is None:
        raise DraftsFolderMissing("This account has no Drafts folder.")
    landed = session.append(folder, raw, flags=DRAFT_FLAGS)
    uidvalidity = session.open_for_writing(folder)
    if landed is not None and landed[0] == uidvalidity:
        return _Copy(folder, landed[1], uidvalidity)
    found = session.uids_with_header("Message-ID", message_id)
    if not found:
        raise DraftsFolderMissing("The saved draft could not be found in the Drafts folder again.")
    return _Copy(folder, max(found), uidvalidity)


def _remove_older(session, draft_id: uuid.UUID, previous: _Copy | None, filed: _Copy) -> list[int]:
    """Remove the copy this one replaces, and stray older copies of the draft; returns UIDs removed in ``filed``'s
    folder. The stored UID is used only under the stored UIDVALIDITY; strays are found in the current numbering."""
    doomed: set[int] = set()
    if previous is not None and previous.folder != filed.folder:
        _destroy_in(session, previous.folder, previous.uidvalidity, [previous.uid])
        session.open_for_writing(filed.folder)
    elif previous is not None and previous.uidvalidity == filed.uidvalidity and previous.uid != filed.uid:
        doomed.add(previous.uid)
    elif previous is not None:  # renumbered: the stored UID means nothing now, the Message-ID still does
        doomed.update(uid for uid in _by_message_id(session, previous) if uid < filed.uid)
    # Only lower UIDs: a higher one is a newer save's copy, appended after this one.
    doomed.update(uid for uid in session.uids_with_header(DRAFT_HEADER, str(draft_id)) if uid < filed.uid)
    session.destroy(sorted(doomed))
    return sorted(doomed)


def _by_message_id(session, copy: _Copy) -> list[int]:
    """UIDs of the copy in the selected folder's current numbering, found by its Message-ID.

    For a copy another mail client made (no header of ours) after the folder
    was renumbered; nothing without a Message-ID, rather than a guess.
    """
    return session.uids_with_header("Message-ID", copy.message_id) if copy.message_id else []


def _destroy_in(session, folder: str, uidvalidity: int, uids: list[int]) -> bool:
    """Delete these UIDs of ``folder`` for good, only if it is still numbered as they were read."""
    if session.open_for_writing(folder) != uidvalidity:
        return False  # renumbered: these UIDs may name other messages now
    session.destroy(uids)
    return True


async def _record(deps: Deps, company_id, draft_id, version: int, filed: _Copy, message_id: str) -> bool:
    async with deps.writing() as db:
        done = await db.execute(
            update(Draft)
            .where(
                Draft.company_id == company_id,
                Draft.id == draft_id,
                Draft.version == version,
                Draft.server_state == "pending",
            )
            .values(
                server_state="saved",
                server_folder=filed.folder,
                server_uid=filed.uid,
                server_uidvalidity=filed.uidvalidity,
                server_message_id=message_id.strip("<>"),  # as the sync stores Message-IDs
                last_error=None,
            )
        )
    return done.rowcount == 1


async def _note_failure(deps: Deps, company_id, draft_id, version: int | None, exc: Exception) -> None:
    """The server's words on the row, unless a newer save has come since (``version`` None: whatever it is)."""
    newer = () if version is None else (Draft.version == version,)
    async with deps.writing() as db:
        await db.execute(
            update(Draft)
            .where(Draft.company_id == company_id, Draft.id == draft_id, *newer)
            .values(last_error=str(exc)[:1000] or type(exc).__name__)
        )


async def _forget(deps: Deps, company_id, account_id, folder: str, uidvalidity: int, uids: list[int]) -> None:
    """Drop our record of server copies removed, so the Drafts folder lists them no more before the next pass."""
    if not uids:
        return
    async with deps.writing() as db:
        folder_row = await db.scalar(
            select(MailFolder).where(
                MailFolder.company_id == company_id, MailFolder.account_id == account_id, MailFolder.name == folder
            )
        )
        if folder_row is None or folder_row.uidvalidity != uidvalidity:
            return
        await db.execute(
            delete(MessageLocation).where(
                MessageLocation.company_id == company_id,
                MessageLocation.folder_id == folder_row.id,
                MessageLocation.uid.in_(uids),
            )
        )
        folder_row.highestmodseq = None  # the folder changed under the sync: it must look again


# ---- sending, discarding ------------------------------------------------------------------


async def discard_draft(deps: Deps, actor: Actor, draft_id: uuid.UUID) -> bool:
    """Sent or thrown away: gone from the list at once, then from the server; True when the server copy is gone."""
    require_email_sync(actor)
    async with deps.writing() as db:
        row = await _usable_row(db, actor, await usable_account_ids(db, actor), draft_id)
        row.server_state, row.version = "discarding", row.version + 1
        account_id, copy = row.account_id, _copy_of(row)
    return await _take_down(deps, actor.company_id, account_id, draft_id, copy, delete_row=True)


async def _take_down(
    deps: Deps, company_id, account_id, draft_id, copy: _Copy | None, *, delete_row: bool = False
) -> bool:
    async with deps.reading() as db:
        account = await db.get(EmailAccount, (company_id, account_id))
        folder_name = copy.folder if copy else await _drafts_folder_name(db, company_id, account_id)
    try:
        login = await imap_login(deps, account)
    except ImapError as exc:
        if delete_row:
            await _note_failure(deps, company_id, draft_id, None, exc)
        return False
    session = deps.open_mailbox(login)

    def remove() -> tuple[str, int, list[int]] | None:
        folder = folder_name or next((f.name for f in session.folders() if f.role == "drafts"), None)
        if folder is None:
            return None
        uidvalidity = session.open_for_writing(folder)
        doomed = set(session.uids_with_header(DRAFT_HEADER, str(draft_id)))
        if copy is not None and copy.uidvalidity == uidvalidity:
            doomed.add(copy.uid)  # a copy another client made carries no header of ours
        elif copy is not None and copy.folder == folder:
            doomed.update(_by_message_id(session, copy))
        session.destroy(sorted(doomed))
        return folder, uidvalidity, sorted(doomed)

    try:
        await asyncio.to_thread(session.connect)
        removed = await asyncio.to_thread(remove)
    except Exception as exc:  # noqa: BLE001 - settle() tries again; the row stays "discarding" meanwhile
        if delete_row:
            await _note_failure(deps, company_id, draft_id, None, exc)
        return False
    finally:
        await asyncio.to_thread(session.close)
    if removed is not None:
        await _forget(deps, company_id, account_id, *removed)
    if delete_row:
        async with deps.writing() as db:
            await db.execute(delete(Draft).where(Draft.company_id == company_id, Draft.id == draft_id))
    return True


async def settle(deps: Deps, *, limit: int = 20, company_id: uuid.UUID | None = None) -> int:
    """File drafts whose upload failed and remove those sent or discarded (the outbox worker's chore).

    Of every company, or of one."""
    of_company = () if company_id is None else (Draft.company_id == company_id,)
    async with deps.reading() as db:
        rows = list(
            await db.scalars(
                select(Draft).where(Draft.server_state.in_(("pending", "discarding")), *of_company)
                .order_by(Draft.updated_at).limit(limit)
            )
        )
    for row in rows:
        if row.server_state == "pending":
            await push_draft(deps, row.company_id, row.id)
        else:
            await _take_down(deps, row.company_id, row.account_id, row.id, _copy_of(row), delete_row=True)
    return len(rows)


# ---- reading, opening ---------------------------------------------------------------------


async def get_draft(deps: Deps, actor: Actor, draft_id: uuid.UUID) -> DraftView:
    require_email_sync(actor)
    async with deps.reading() as db:
        return _view(await _usable_row(db, actor, await usable_account_ids(db, actor), draft_id))


async def list_drafts(deps: Deps, actor: Actor, *, limit: int = 100) -> list[DraftView]:
    """The drafts of every account the actor may use (a team account's drafts for all its members)."""
    require_email_sync(actor)
    async with deps.reading() as db:
        accounts = await usable_account_ids(db, actor)
        rows = await db.scalars(
            select(Draft)
            .where(
                Draft.company_id == actor.company_id,
                Draft.account_id.in_(accounts),
                Draft.server_state != "discarding",
            )
            .order_by(Draft.updated_at.desc())
            .limit(limit)
        )
        return [_view(row) for row in rows]


async def edit_synced_draft(deps: Deps, actor: Actor, message_id: uuid.UUID) -> uuid.UUID:
    """The draft to edit for a message in a Drafts folder: ours if we filed it, else a new one pointing at it."""
    require_email_sync(actor)
    async with deps.writing() as db:
        accounts = await usable_account_ids(db, actor)
        found = (
            await db.execute(
                select(Message, MessageLocation, MailFolder.name)
                .join(MessageLocation, (MessageLocation.company_id == Message.company_id)
                      & (MessageLocation.message_id == Message.id))
                .join(MailFolder, (MailFolder.company_id == MessageLocation.company_id)
                      & (MailFolder.id == MessageLocation.folder_id))
                .where(
                    Message.company_id == actor.company_id,
                    Message.id == message_id,
                    MessageLocation.account_id.in_(accounts),
                    MailFolder.role == "drafts",
                )
                .limit(1)
            )
        ).first()
        if found is None:
            raise NotFound(Text("No such draft."))
        message, location, folder = found
        if message.message_id_header:
            ours = await db.scalar(
                select(Draft.id).where(
                    Draft.company_id == actor.company_id,
                    Draft.account_id.in_(accounts),
                    Draft.server_message_id == message.message_id_header,
                    Draft.server_state != "discarding",
                )
            )
            if ours is not None:
                return ours
        row = Draft(
            company_id=actor.company_id,
            account_id=location.account_id,
            user_id=actor.user_id,
            to_addresses=_typed(message.to_list),
            cc_addresses=_typed(message.cc_list),
            bcc_addresses=_typed(message.bcc_list),
            subject=message.subject or "",
            body_text=message.body_text or "",
            body_html=(clean_compose_html(message.body_html) or None) if message.body_html else None,
            version=1,
            server_state="saved",
            server_folder=folder,
            server_uid=location.uid,
            server_uidvalidity=location.uidvalidity,
            server_message_id=message.message_id_header,
        )
        db.add(row)
    return row.id


def _typed(encoded: str) -> str:
    """Stored ``[[name, email], ...]`` as the compose field shows addresses."""
    out = []
    for name, email in json.loads(encoded or "[]"):
        if email:
            out.append(f"{one_line(name)} <{email}>" if name else email)
    return ", ".join(out)


def _view(row: Draft) -> DraftView:
    return DraftView(
        id=row.id,
        account_id=row.account_id,
        to=row.to_addresses,
        cc=row.cc_addresses,
        bcc=row.bcc_addresses,
        subject=row.subject,
        text=row.body_text,
        html=row.body_html,
        in_reply_to=row.in_reply_to_id,
        version=row.version,
        on_server=row.server_state == "saved",
        last_error=row.last_error,
        updated_at=row.updated_at,
    )


async def draft_from_scheduled(deps: Deps, actor: Actor, outbound_id: uuid.UUID) -> DraftView:
    """Edit a message scheduled to be sent later: it stops being scheduled and comes back as a draft.

    The send is cancelled first (only while it is still scheduled), then the
    draft is saved from the message's own bytes: recipients, subject, text and
    rich text, and the message it answers. Drafts keep no attachments, so a
    message with attachments is refused here (cancel it and write it again).
    """
    from salesinbox.adapters.db.tables import OutboundMessage
    from salesinbox.mime.parse import parse_message
    from salesinbox.services import outbox

    view = await outbox.get_outbound(deps, actor, outbound_id)  # NotFound unless the actor may see it
    async with deps.reading() as db:
        row = await db.get(OutboundMessage, (actor.company_id, outbound_id))
    if row is None or view.status != "scheduled":
        raise ValidationFailed({"outbound": Text("It is already on its way and can no longer be edited.")})
    parsed = parse_message(await deps.blobs.get(row.raw_key))
    if parsed.attachments:
        raise ValidationFailed(
            {"outbound": Text("A message with attachments cannot be edited: cancel it and write it again.")}
        )
    to, cc = [a.email for a in parsed.to], [a.email for a in parsed.cc]
    bcc = [a for a in json.loads(row.recipients) if a not in {*to, *cc}]
    if not await outbox.cancel(deps, actor, outbound_id):
        raise ValidationFailed({"outbound": Text("It is already on its way and can no longer be edited.")})
    return await save_draft(deps, actor, None, DraftInput(
        account_id=row.account_id, to=", ".join(to), cc=", ".join(cc), bcc=", ".join(bcc), subject=parsed.subject,
        text=parsed.text, html=parsed.html, in_reply_to=row.in_reply_to_id,
    ))
