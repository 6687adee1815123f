"""Attachments of synced mail, cut out of the raw message when someone opens one.

The sync stores only an attachment's metadata (its IMAP part id, name, type);
its bytes stay in the raw MIME kept in blob storage under ``Message.raw_key``.
Opening one:

1. Access: the actor must see the message, by the rule of every read of mail
   (``conversations.get_conversation``): a location of it the actor may read
   (``access.readable_location``: one of their accounts, or one that shares
   the conversation). Anything else, another company's id included, is
   ``NotFound``.
2. Cache: the part's decoded bytes are kept as a blob of their own, keyed by
   the raw message's content hash and the part id (``part_key``); both are
   immutable, so a cached part is never stale.
3. Raw: otherwise the part is extracted from the raw blob (``mime.extract``,
   numbering parts exactly as the parse did) and cached. An attachment the
   sync left on the server (``on_server``: a large part of a large message,
   ``mime.lean``) is not in the raw blob: that one part is read from a
   visible location (``BODY.PEEK[<part>]``, under the same UIDVALIDITY rule
   as below), checked to be the same attachment, and cached.
4. Server: if the raw blob is missing, the message is read again from one of
   its visible locations (``BODY.PEEK[]``, so nothing is marked read), in a
   worker thread and outside any database transaction. A location is only
   trusted while the folder's UIDVALIDITY on the server is the one stored: a
   renumbered folder's UIDs may name other messages now. A copy identical to
   the one synced (same content hash) is stored as the raw blob again. A copy
   that differs (the message was merged by Message-ID with another account's
   copy) is used only if its parse reports the same attachment at that part id;
   it is not stored (no row names it), only the part it gave is cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from salesinbox.adapters.blobs import MISSING_BLOB
from salesinbox.adapters.db.tables import Attachment, EmailAccount, MailFolder, Message, MessageLocation
from salesinbox.adapters.imap.session import ImapError
from salesinbox.domain.errors import DomainError, NotFound
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.mime.extract import extract_part
from salesinbox.mime.parse import parse_message
from salesinbox.services.access import readable_location, usable_account_ids
from salesinbox.services.accounts import imap_login, require_email_sync
from salesinbox.services.ports import ServerLogin
from salesinbox.services.unit_of_work import Deps

log = logging.getLogger(__name__)


class AttachmentUnavailable(DomainError):
    """The attachment exists but its bytes cannot be had now (raw message lost, server unreachable)."""


@dataclass(frozen=True)
class AttachmentFile:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class _Place:
    """A visible location of the message: where the server may still have it."""

    account_id: uuid.UUID
    folder: str
    folder_uidvalidity: int | None
    uidvalidity: int
    uid: int


@dataclass(frozen=True)
class _Found:
    attachment: Attachment
    content_hash: str
    raw_key: str
    places: list[_Place]


def part_key(content_hash: str, part_id: str) -> str:
    """Where a part's decoded bytes are cached: by the raw message's content hash and the part id."""
    return f"parts/{content_hash[:2]}/{content_hash}/{part_id}"


async def open_attachment(deps: Deps, actor: Actor, attachment_id: uuid.UUID) -> AttachmentFile:
    """The attachment's name, type and decoded bytes, for an actor who can see its message."""
    require_email_sync(actor)
    found = await _access_attachment(deps, actor, attachment_id)
    content = await _part_bytes(deps, actor.company_id, found)
    attachment = found.attachment
    return AttachmentFile(attachment.filename, attachment.content_type, content)


async def _access_attachment(deps: Deps, actor: Actor, attachment_id: uuid.UUID) -> _Found:
    async with deps.reading() as db:
        row = (
            await db.execute(
                select(Attachment, Message.content_hash, Message.raw_key)
                .join(Message, (Message.company_id == Attachment.company_id) & (Message.id == Attachment.message_id))
                .where(Attachment.company_id == actor.company_id, Attachment.id == attachment_id)
            )
        ).first()
        if row is None:
            raise NotFound(Text("No such attachment."))
        attachment, content_hash, raw_key = row
        accounts = await usable_account_ids(db, actor)
        places = (
            await db.execute(
                select(MessageLocation, MailFolder.name, MailFolder.uidvalidity)
                .join(
                    MailFolder,
                    (MailFolder.company_id == MessageLocation.company_id)
                    & (MailFolder.id == MessageLocation.folder_id),
                )
                .join(
                    Message,
                    (Message.company_id == MessageLocation.company_id) & (Message.id == MessageLocation.message_id),
                )
                .where(
                    readable_location(accounts, actor.company_id),
                    MessageLocation.message_id == attachment.message_id,
                )
                .order_by(MessageLocation.account_id, MailFolder.name, MessageLocation.uid)
            )
        ).all()
    if not places:
        raise NotFound(Text("No such attachment."))
    return _Found(
        attachment,
        content_hash,
        raw_key,
        [_Place(loc.account_id, name, validity, loc.uidvalidity, loc.uid) for loc, name, validity in places],
    )


async def _part_bytes(deps: Deps, company_id: uuid.UUID, found: _Found) -> bytes:
    part_id = found.attachment.part_id
    cache_key = part_key(found.content_hash, part_id)
    cached = await _get_blob(deps, cache_key)
    if cached is not None:
        return cached
    if found.attachment.on_server:
        content = await _part_from_server(deps, company_id, found)
        await deps.blobs.put(cache_key, content)
        return content
    raw = await _get_blob(deps, found.raw_key)
    if raw is None:
        raw = await _raw_from_server(deps, company_id, found)
    content = await asyncio.to_thread(extract_part, raw, part_id)
    if content is None:
        raise AttachmentUnavailable(Text("This attachment cannot be read from the stored message."))
    await deps.blobs.put(cache_key, content)
    return content


async def _get_blob(deps: Deps, key: str) -> bytes | None:
    try:
        return await deps.blobs.get(key)
    except MISSING_BLOB:
        return None


# ---- the raw message, again from the server ------------------------------------------------


async def _raw_from_server(deps: Deps, company_id: uuid.UUID, found: _Found) -> bytes:
    async def usable(raw: bytes) -> bytes | None:
        return raw if await _usable_copy(deps, found, raw) else None

    return await _from_server(
        deps, company_id, found, lambda session, uid: session.fetch_one(uid), usable,
        Text("The stored copy of this message is missing and the mail server did not give it back. Try again later."),
    )


async def _part_from_server(deps: Deps, company_id: uuid.UUID, found: _Found) -> bytes:
    """An attachment left on the server at sync (``mime.lean``): that one part, from a visible location.

    The part comes as a message of its own (its MIME header, its encoded
    body) and is decoded as the parse would. A location holding another copy
    of the message (merged by Message-ID) may number its parts differently:
    the part is used only if it is the attachment the row describes.
    """
    attachment = found.attachment

    async def usable(part: bytes) -> bytes | None:
        return await asyncio.to_thread(_same_attachment, part, attachment)

    return await _from_server(
        deps, company_id, found, lambda session, uid: session.fetch_part(uid, attachment.part_id), usable,
        Text("This attachment is kept on the mail server, which did not give it back. Try again later."),
    )


async def _from_server(deps: Deps, company_id: uuid.UUID, found: _Found, read, usable, unavailable: Text) -> bytes:
    """``read(session, uid)`` at each visible location in turn, until ``usable`` accepts what it gave."""
    for place in found.places:
        if place.folder_uidvalidity != place.uidvalidity:
            continue  # the folder was renumbered since this location was read: its UID may be another message
        try:
            login = await _imap_login(deps, company_id, place.account_id)
            got = await asyncio.to_thread(_read_at, deps.open_mailbox(login), place, read)
        except ImapError as exc:
            log.warning("attachment: not read again from %s: %s", place.folder, exc)
            continue
        if got is not None and (result := await usable(got)) is not None:
            return result
    raise AttachmentUnavailable(unavailable)


def _same_attachment(part: bytes, attachment: Attachment) -> bytes | None:
    """The part's decoded bytes, if it is the attachment (same name and type); else None."""
    described = parse_message(part).attachments
    if not described or (described[0].filename[:500], described[0].content_type[:200]) != (
        attachment.filename,
        attachment.content_type,
    ):  # as stored: mail_store cuts them to the columns' lengths
        return None
    return extract_part(part, "1")


def _read_at(mailbox, place: _Place, read) -> bytes | None:
    """Blocking: connect, EXAMINE the folder, and ``read`` the UID if the folder still has the stored UIDVALIDITY."""
    session = mailbox.connect()
    try:
        status = session.examine(place.folder)
        if status.uidvalidity != place.uidvalidity:
            return None
        return read(session, place.uid)
    finally:
        session.close()


async def _usable_copy(deps: Deps, found: _Found, raw: bytes) -> bool:
    if hashlib.sha256(raw).hexdigest() == found.content_hash:
        await deps.blobs.put(found.raw_key, raw)
        return True
    attachment = found.attachment
    parsed = await asyncio.to_thread(parse_message, raw)
    return any(
        (a.part_id, a.filename, a.content_type) == (attachment.part_id, attachment.filename, attachment.content_type)
        for a in parsed.attachments
    )


async def _imap_login(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID) -> ServerLogin:
    async with deps.reading() as db:
        account = await db.get(EmailAccount, (company_id, account_id))
    if account is None:
        raise NotFound(Text("No such attachment."))
    return await imap_login(deps, account)
