"""Reading conversations: the Sales Inbox lists and the conversation view."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, exists, select

from salesinbox.adapters.db.search import search_message_ids
from salesinbox.adapters.db.tables import Attachment, Conversation, MailFolder, Message, MessageLocation
from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.domain.tenancy import Actor
from salesinbox.mime.quotes import split_text
from salesinbox.services.access import usable_account_ids
from salesinbox.services.accounts import require_email_sync
from salesinbox.services.unit_of_work import Deps

FOLDERS = ("inbox", "sent", "drafts", "archive", "trash", "junk")


@dataclass(frozen=True)
class ConversationSummary:
    id: uuid.UUID
    subject: str
    snippet: str
    last_message_at: dt.datetime | None
    message_count: int
    has_attachments: bool
    participants: list[str]
    unread: bool


@dataclass(frozen=True)
class AddressView:
    name: str
    email: str


@dataclass(frozen=True)
class AttachmentView:
    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    inline: bool


@dataclass(frozen=True)
class MessageView:
    id: uuid.UUID
    message_id: str | None
    subject: str
    sender: AddressView
    to: list[AddressView]
    cc: list[AddressView]
    sent_at: dt.datetime | None
    text: str
    reply_text: str  # the text without quoted history and signature (folded in the view)
    quoted_text: str
    signature_text: str
    snippet: str
    has_html: bool
    unread: bool
    folders: list[str]
    attachments: list[AttachmentView]
    parse_status: str


@dataclass(frozen=True)
class ConversationView:
    id: uuid.UUID
    subject: str
    message_count: int
    last_message_at: dt.datetime | None
    messages: list[MessageView]


def _visible_locations(account_ids: list[uuid.UUID], company_id: uuid.UUID):
    return and_(MessageLocation.company_id == company_id, MessageLocation.account_id.in_(account_ids))


async def list_conversations(
    deps: Deps, actor: Actor, *, folder: str = "inbox", query: str = "", limit: int = 50, offset: int = 0
) -> list[ConversationSummary]:
    require_email_sync(actor)
    if folder not in FOLDERS:
        raise ValidationFailed({"folder": f"Choose one of: {', '.join(FOLDERS)}."})
    async with deps.reading() as db:
        accounts = await usable_account_ids(db, actor)
        in_folder = (
            select(Message.conversation_id)
            .join(
                MessageLocation,
                (MessageLocation.company_id == Message.company_id) & (MessageLocation.message_id == Message.id),
            )
            .join(
                MailFolder,
                (MailFolder.company_id == MessageLocation.company_id) & (MailFolder.id == MessageLocation.folder_id),
            )
            .where(
                Message.company_id == actor.company_id,
                _visible_locations(accounts, actor.company_id),
                MailFolder.role == folder,
            )
        )
        if query.strip():
            ids = await search_message_ids(db, actor.company_id, query)
            in_folder = in_folder.where(Message.id.in_(ids))
        rows = await db.scalars(
            select(Conversation)
            .where(Conversation.company_id == actor.company_id, Conversation.id.in_(in_folder))
            .order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())
            .limit(min(limit, 200))
            .offset(offset)
        )
        conversations = list(rows)
        details = await _summaries_details(db, actor.company_id, accounts, [c.id for c in conversations])
        return [_summary(c, *details.get(c.id, ([], False))) for c in conversations]


async def _summaries_details(db, company_id, accounts, ids) -> dict[uuid.UUID, tuple[list[str], bool]]:
    if not ids:
        return {}
    rows = await db.execute(
        select(Message.conversation_id, Message.from_email, Message.from_name, MessageLocation.flags)
        .join(
            MessageLocation,
            (MessageLocation.company_id == Message.company_id) & (MessageLocation.message_id == Message.id),
        )
        .where(
            Message.company_id == company_id, Message.conversation_id.in_(ids), _visible_locations(accounts, company_id)
        )
        .order_by(Message.sent_at)
    )
    details: dict[uuid.UUID, tuple[list[str], bool]] = {}
    for conversation_id, email, name, flags in rows:
        people, unread = details.get(conversation_id, ([], False))
        who = name or email
        if who and who not in people:
            people.append(who)
        details[conversation_id] = (people, unread or "\\Seen" not in flags.split())
    return details


def _summary(c: Conversation, people: list[str], unread: bool) -> ConversationSummary:
    return ConversationSummary(
        c.id, c.subject, c.snippet, c.last_message_at, c.message_count, c.has_attachments, people[:10], unread
    )


async def get_conversation(deps: Deps, actor: Actor, conversation_id: uuid.UUID) -> ConversationView:
    require_email_sync(actor)
    async with deps.reading() as db:
        accounts = await usable_account_ids(db, actor)
        visible = exists().where(
            _visible_locations(accounts, actor.company_id), MessageLocation.message_id == Message.id
        )
        messages = list(
            await db.scalars(
                select(Message)
                .where(Message.company_id == actor.company_id, Message.conversation_id == conversation_id, visible)
                .order_by(Message.sent_at.nulls_first(), Message.id)
            )
        )
        conversation = await db.get(Conversation, (actor.company_id, conversation_id))
        if conversation is None or not messages:
            raise NotFound("No such conversation.")
        views = [await _message_view(db, actor.company_id, accounts, m) for m in messages]
        return ConversationView(conversation.id, conversation.subject, len(views), conversation.last_message_at, views)


async def _message_view(db, company_id, accounts, m: Message) -> MessageView:
    places = (
        await db.execute(
            select(MailFolder.role, MessageLocation.flags)
            .join(
                MailFolder,
                (MailFolder.company_id == MessageLocation.company_id) & (MailFolder.id == MessageLocation.folder_id),
            )
            .where(_visible_locations(accounts, company_id), MessageLocation.message_id == m.id)
        )
    ).all()
    attachments = await db.scalars(
        select(Attachment)
        .where(Attachment.company_id == company_id, Attachment.message_id == m.id)
        .order_by(Attachment.part_id)
    )
    folded = split_text(m.body_text)
    return MessageView(
        id=m.id,
        message_id=m.message_id_header,
        subject=m.subject,
        sender=AddressView(m.from_name, m.from_email),
        to=_address_views(m.to_list),
        cc=_address_views(m.cc_list),
        sent_at=m.sent_at,
        text=m.body_text,
        reply_text=folded.body,
        quoted_text=folded.quoted,
        signature_text=folded.signature,
        snippet=m.snippet,
        has_html=m.body_html is not None,
        unread=all("\\Seen" not in f.split() for _, f in places),
        folders=sorted({role for role, _ in places}),
        attachments=[AttachmentView(a.id, a.filename, a.content_type, a.size, a.inline) for a in attachments],
        parse_status=m.parse_status,
    )


def _address_views(encoded: str) -> list[AddressView]:
    return [AddressView(name, email) for name, email in json.loads(encoded or "[]")]
