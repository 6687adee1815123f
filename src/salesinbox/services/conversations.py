"""Reading conversations: the Sales Inbox lists and the conversation view."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import distinct, exists, func, or_, select

from salesinbox.adapters.db.search import matching
from salesinbox.adapters.db.tables import (
    Attachment,
    Conversation,
    ConversationLink,
    ConversationLinkState,
    ConversationParticipant,
    MailFolder,
    Message,
    MessageLocation,
    Organization,
    OrganizationDomain,
    Person,
    PersonEmail,
    unseen,
)
from salesinbox.domain.crm import NO_SUCH_ITEM
from salesinbox.domain.errors import NotFound, ValidationFailed
from salesinbox.domain.linking import Outcome, is_free_mail
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.mime.html_safety import sanitize_email_html
from salesinbox.mime.quotes import split_html, split_text
from salesinbox.services import labels, links
from salesinbox.services.access import inbox_location, readable_conversation, readable_location, usable_account_ids
from salesinbox.services.accounts import require_email_sync
from salesinbox.services.linking import ITEM_TABLES as _LINKABLE
from salesinbox.services.unit_of_work import Deps

FOLDERS = ("inbox", "sent", "drafts", "archive", "trash", "junk")
#: Not a mail folder: conversations in the actor's accounts the linking rules could not decide on.
NEEDS_LINKING = "needs_linking"
ITEM_KINDS = ("deal", "lead", "project", "person", "organization")
_ITEM_TABLES = {**_LINKABLE, "person": Person, "organization": Organization}


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
    labels: list[str] = field(default_factory=list)


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
    remote_images: int  # remote image references in the HTML (blocked until the user asks)
    unread: bool
    folders: list[str]
    attachments: list[AttachmentView]
    parse_status: str
    sender_person_id: uuid.UUID | None = None  # the CRM person with the sender's address, if any


@dataclass(frozen=True)
class ConversationView:
    id: uuid.UUID
    subject: str
    message_count: int
    last_message_at: dt.datetime | None
    messages: list[MessageView]
    links: list[links.LinkView] = field(default_factory=list)
    linking: links.LinkingView | None = None
    visibility: str | None = None  # in the actor's own accounts that hold it; None when they hold none
    visibility_choices: list[str] = field(default_factory=list)
    in_inbox: bool = True  # one of the actor's accounts holds it (else it is read as shared)
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Filters:
    """What the list can be narrowed to; every field is optional and they combine (AND)."""

    unread: bool | None = None
    has_attachments: bool | None = None
    account_id: uuid.UUID | None = None
    participant: str = ""  # an email address, or part of one
    after: dt.date | None = None  # last message on or after
    before: dt.date | None = None  # last message before the end of this day
    label: str = ""  # a label's name (any case); a name no label has lists nothing


async def list_conversations(
    deps: Deps,
    actor: Actor,
    *,
    folder: str = "inbox",
    query: str = "",
    limit: int = 50,
    offset: int = 0,
    filters: Filters | None = None,
) -> list[ConversationSummary]:
    require_email_sync(actor)
    if folder not in (*FOLDERS, NEEDS_LINKING):
        choices = ", ".join((*FOLDERS, NEEDS_LINKING))
        raise ValidationFailed({"folder": Text("Choose one of: %(choices)s.", choices=choices)})
    filters = filters or Filters()
    async with deps.reading() as db:
        accounts = await usable_account_ids(db, actor)
        shown = [a for a in accounts if filters.account_id in (None, a)]
        if folder == NEEDS_LINKING:
            folders = await _folders(db, actor, shown, "trash")
        else:
            folders = await _folders(db, actor, shown, role=folder)
        if folder == "archive":
            in_folder = await _with_all_mail_archive(db, actor, shown, folders)
        else:
            in_folder = _placed(Message.conversation_id, actor.company_id, folders)
        if folder == NEEDS_LINKING:
            in_folder = in_folder.where(Message.conversation_id.in_(_undecided(actor.company_id)))
        if filters.participant.strip():
            in_folder = in_folder.where(
                Message.participants.contains(filters.participant.strip().lower(), autoescape=True)
            )
        if query.strip():
            in_folder = in_folder.where(await matching(db, actor.company_id, query, Message.id))
        chosen = select(Conversation).where(Conversation.company_id == actor.company_id, Conversation.id.in_(in_folder))
        if filters.unread is not None:  # an unread message in this folder, or none
            unread = in_folder.where(unseen())
            chosen = chosen.where(Conversation.id.in_(unread) if filters.unread else Conversation.id.not_in(unread))
        if filters.has_attachments is not None:
            chosen = chosen.where(Conversation.has_attachments.is_(filters.has_attachments))
        if filters.label.strip():
            chosen = chosen.where(Conversation.id.in_(labels.labelled(actor.company_id, filters.label)))
        if filters.after is not None:
            chosen = chosen.where(Conversation.last_message_at >= dt.datetime.combine(filters.after, dt.time(), dt.UTC))
        if filters.before is not None:
            end = dt.datetime.combine(filters.before + dt.timedelta(days=1), dt.time(), dt.UTC)
            chosen = chosen.where(Conversation.last_message_at < end)
        rows = await db.scalars(
            chosen.order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())
            .limit(min(limit, 200))
            .offset(offset)
        )
        conversations = list(rows)
        details = await _summaries_details(
            db, actor.company_id, inbox_location(shown, actor.company_id), [c.id for c in conversations]
        )
        names = await labels.labels_of(db, actor.company_id, [c.id for c in conversations])
        return [_summary(c, *details.get(c.id, ([], False)), names.get(c.id, [])) for c in conversations]


async def _folders(
    db, actor: Actor, accounts: list[uuid.UUID], but: str | None = None, *, role: str | None = None
) -> list[uuid.UUID]:
    """The folders of these (the actor's) accounts with this role, or with any role ``but`` this one."""
    chosen = select(MailFolder.id).where(MailFolder.company_id == actor.company_id, MailFolder.account_id.in_(accounts))
    if role is not None:
        chosen = chosen.where(MailFolder.role == role)
    if but is not None:
        chosen = chosen.where(MailFolder.role != but)
    return list(await db.scalars(chosen))


async def _with_all_mail_archive(db, actor: Actor, accounts: list[uuid.UUID], archive_folders: list[uuid.UUID]):
    """The Archive list: the Archive folders, and for an account with none (Gmail) what its All Mail holds
    that is not in its INBOX (Gmail's "archived": the Inbox label taken off)."""
    with_archive = select(MailFolder.account_id).where(
        MailFolder.company_id == actor.company_id, MailFolder.role == "archive"
    )
    all_mail = list(await db.scalars(
        select(MailFolder.id).where(
            MailFolder.company_id == actor.company_id,
            MailFolder.account_id.in_(accounts),
            MailFolder.role == "all",
            MailFolder.account_id.not_in(with_archive),
        )
    ))
    chosen = _placed(Message.conversation_id, actor.company_id, [*archive_folders, *all_mail])
    if not all_mail:
        return chosen
    inbox_folders = await _folders(db, actor, accounts, role="inbox")
    in_inbox = _placed(Message.conversation_id, actor.company_id, inbox_folders).subquery()
    return chosen.where(
        or_(MessageLocation.folder_id.not_in(all_mail), Message.conversation_id.not_in(select(in_inbox.c[0])))
    )


def _placed(column, company_id: uuid.UUID, folders: list[uuid.UUID]):
    """``column`` over the messages with a location in these folders (of the actor's accounts: ``_folders``).

    Folder ids, not a join with the folders: the location index holds the folder of each message,
    so whether a conversation is in the list is answered from two indexes (bench/README.md, capacity).
    """
    return (
        select(column)
        .join(
            MessageLocation,
            (MessageLocation.company_id == Message.company_id) & (MessageLocation.message_id == Message.id),
        )
        .where(
            Message.company_id == company_id,
            MessageLocation.company_id == company_id,
            MessageLocation.folder_id.in_(folders),
        )
    )


def _undecided(company_id: uuid.UUID):
    """The conversations waiting in "Needs linking"."""
    return select(ConversationLinkState.conversation_id).where(
        ConversationLinkState.company_id == company_id,
        ConversationLinkState.outcome == Outcome.NEEDS_LINKING.value,
    )


async def item_conversations(
    deps: Deps, actor: Actor, kind: str, item_id: uuid.UUID, *, limit: int = 100
) -> list[ConversationSummary]:
    """The conversations shown on an item's Email tab, newest first, that the actor may read.

    Deals, leads and projects: their links. Persons: conversations with one of
    their addresses. Organizations: with one of their (not free-mail) domains
    or one of their persons' addresses.
    """
    require_email_sync(actor)
    if kind not in ITEM_KINDS:
        raise ValidationFailed({"kind": Text("Choose one of: %(choices)s.", choices=", ".join(ITEM_KINDS))})
    company = actor.company_id
    async with deps.reading() as db:
        if await db.get(_ITEM_TABLES[kind], (company, item_id)) is None:
            raise NotFound(NO_SUCH_ITEM[kind])
        accounts = await usable_account_ids(db, actor)
        if kind in ("deal", "lead", "project"):
            ids = select(ConversationLink.conversation_id).where(
                ConversationLink.company_id == company,
                ConversationLink.item_type == kind,
                ConversationLink.item_id == item_id,
                ConversationLink.removed_at.is_(None),
            )
        else:
            persons = [item_id] if kind == "person" else select(Person.id).where(
                Person.company_id == company, Person.organization_id == item_id
            )
            emails = select(PersonEmail.email).where(
                PersonEmail.company_id == company, PersonEmail.person_id.in_(persons)
            )
            matches = ConversationParticipant.email.in_(emails)
            if kind == "organization":
                domains = [
                    d for d in await db.scalars(select(OrganizationDomain.domain).where(
                        OrganizationDomain.company_id == company, OrganizationDomain.organization_id == item_id
                    )) if not is_free_mail(d)
                ]
                matches = or_(matches, ConversationParticipant.domain.in_(domains))
            ids = select(ConversationParticipant.conversation_id).where(
                ConversationParticipant.company_id == company, matches
            )
        rows = await db.scalars(
            select(Conversation)
            .where(
                Conversation.company_id == company,
                Conversation.id.in_(ids),
                readable_conversation(accounts, company, Conversation.id),
            )
            .order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())
            .limit(min(limit, 200))
        )
        found = list(rows)
        details = await _summaries_details(
            db, company, readable_location(accounts, company), [c.id for c in found], unread_in=accounts
        )
        names = await labels.labels_of(db, company, [c.id for c in found])
        return [_summary(c, *details.get(c.id, ([], False)), names.get(c.id, [])) for c in found]


async def _summaries_details(
    db, company_id, locations, ids, *, unread_in: list[uuid.UUID] | None = None
) -> dict[uuid.UUID, tuple[list[str], bool]]:
    """Senders and unread state per conversation, over the given locations.

    ``unread_in``: count only these accounts' flags as unread (someone else's
    unread mail, read as shared, is not unread for the actor).
    """
    if not ids:
        return {}
    rows = await db.execute(
        select(
            Message.conversation_id, Message.from_email, Message.from_name, MessageLocation.flags,
            MessageLocation.account_id,
        )
        .join(
            MessageLocation,
            (MessageLocation.company_id == Message.company_id) & (MessageLocation.message_id == Message.id),
        )
        .where(Message.company_id == company_id, Message.conversation_id.in_(ids), locations)
        .order_by(Message.sent_at)
    )
    details: dict[uuid.UUID, tuple[list[str], bool]] = {}
    for conversation_id, email, name, flags, account_id in rows:
        people, unread = details.get(conversation_id, ([], False))
        who = name or email
        if who and who not in people:
            people.append(who)
        mine = unread_in is None or account_id in unread_in
        details[conversation_id] = (people, unread or (mine and "\\Seen" not in flags.split()))
    return details


def _summary(c: Conversation, people: list[str], unread: bool, names: list[str]) -> ConversationSummary:
    return ConversationSummary(
        c.id, c.subject, c.snippet, c.last_message_at, c.message_count, c.has_attachments, people[:10], unread, names
    )


async def get_conversation(deps: Deps, actor: Actor, conversation_id: uuid.UUID) -> ConversationView:
    require_email_sync(actor)
    async with deps.reading() as db:
        accounts = await usable_account_ids(db, actor)
        visible = exists().where(
            readable_location(accounts, actor.company_id), MessageLocation.message_id == Message.id
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
            raise NotFound(Text("No such conversation."))
        senders = {m.from_email.lower() for m in messages if m.from_email}
        persons = dict((await db.execute(
            select(PersonEmail.email, PersonEmail.person_id).where(
                PersonEmail.company_id == actor.company_id, PersonEmail.email.in_(senders))
        )).all()) if senders else {}
        views = [
            dataclasses.replace(
                await _message_view(db, actor.company_id, accounts, m),
                sender_person_id=persons.get(m.from_email.lower()),
            )
            for m in messages
        ]
        sharing = await links.sharing_of(db, actor, conversation_id, accounts)
        return ConversationView(
            conversation.id,
            conversation.subject,
            len(views),
            conversation.last_message_at,
            views,
            links=await links.links_of(db, actor.company_id, conversation_id),
            linking=await links.linking_of(db, actor.company_id, conversation_id),
            visibility=sharing.visibility,
            visibility_choices=sharing.choices,
            in_inbox=sharing.in_inbox,
            labels=(await labels.labels_of(db, actor.company_id, [conversation_id])).get(conversation_id, []),
        )


async def _message_view(db, company_id, accounts, m: Message) -> MessageView:
    places = (
        await db.execute(
            select(MailFolder.role, MessageLocation.flags)
            .join(
                MailFolder,
                (MailFolder.company_id == MessageLocation.company_id) & (MailFolder.id == MessageLocation.folder_id),
            )
            .where(inbox_location(accounts, company_id), MessageLocation.message_id == m.id)
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
        remote_images=_remote_images(m.body_html),
        unread=bool(places) and all("\\Seen" not in f.split() for _, f in places),
        folders=sorted({role for role, _ in places}),
        attachments=[AttachmentView(a.id, a.filename, a.content_type, a.size, a.inline) for a in attachments],
        parse_status=m.parse_status,
    )


def _remote_images(html: str | None) -> int:
    if not html:
        return 0
    return sanitize_email_html(html, remote_images=None, inline_image=lambda _cid: None).remote_images


def _address_views(encoded: str) -> list[AddressView]:
    return [AddressView(name, email) for name, email in json.loads(encoded or "[]")]


async def unread_counts(deps: Deps, actor: Actor) -> dict[str, int]:
    """Unread conversations per folder role, over the accounts the actor may use."""
    require_email_sync(actor)
    async with deps.reading() as db:
        accounts = await usable_account_ids(db, actor)
        rows = await db.execute(
            select(MailFolder.role, func.count(distinct(Message.conversation_id)))
            .join(
                MessageLocation,
                (MessageLocation.company_id == MailFolder.company_id) & (MessageLocation.folder_id == MailFolder.id),
            )
            .join(
                Message, (Message.company_id == MessageLocation.company_id) & (Message.id == MessageLocation.message_id)
            )
            .where(
                inbox_location(accounts, actor.company_id),
                unseen(),
            )
            .group_by(MailFolder.role)
        )
        counts = dict.fromkeys(FOLDERS, 0)
        counts.update({role: n for role, n in rows if role in counts})
        # Each undecided conversation once, as soon as one of its messages is found in the actor's folders.
        placed = _placed(Message.id, actor.company_id, await _folders(db, actor, accounts, "trash")).where(
            Message.conversation_id == ConversationLinkState.conversation_id
        )
        counts[NEEDS_LINKING] = await db.scalar(
            select(func.count()).where(
                ConversationLinkState.company_id == actor.company_id,
                ConversationLinkState.outcome == Outcome.NEEDS_LINKING.value,
                placed.correlate(ConversationLinkState).exists(),
            )
        ) or 0
        return counts


async def inbox_version(deps: Deps, actor: Actor) -> str:
    """Changes whenever a sync pass stores, moves or re-flags mail the actor can see.

    Live updates compare it: it lives in the database, so it works whichever
    process (embedded, CLI, another worker) ran the pass.
    """
    require_email_sync(actor)
    async with deps.reading() as db:
        accounts = await usable_account_ids(db, actor)
        count, synced, last = (
            await db.execute(
                select(
                    func.count(), func.coalesce(func.sum(MailFolder.synced), 0), func.max(MailFolder.last_sync_at)
                ).where(MailFolder.company_id == actor.company_id, MailFolder.account_id.in_(accounts))
            )
        ).one()
        return f"{len(accounts)}.{count}.{synced}.{last.timestamp() if last else 0}"


@dataclass(frozen=True)
class MessageBody:
    html: str  # sanitised: no script, no handlers, remote images blocked or proxied
    remote_images: int
    folded_html: str  # the quoted history of the HTML, sanitised the same way ("" if none)


async def message_html(
    deps: Deps, actor: Actor, message_id: uuid.UUID, *, proxy: Callable[[str], str] | None
) -> MessageBody | None:
    """A message's HTML, sanitised for the reading pane; None when it has none.

    ``proxy`` makes a remote image URL into our image proxy's URL; ``None``
    blocks remote images (the default until the user asks to see them).
    Inline ``cid:`` images are served as the message's attachments.
    """
    require_email_sync(actor)
    async with deps.reading() as db:
        accounts = await usable_account_ids(db, actor)
        visible = exists().where(
            readable_location(accounts, actor.company_id), MessageLocation.message_id == Message.id
        )
        row = (
            await db.execute(
                select(Message.body_html).where(
                    Message.company_id == actor.company_id, Message.id == message_id, visible
                )
            )
        ).first()
        if row is None:
            raise NotFound(Text("No such message."))
        if row.body_html is None:
            return None
        inline = {
            cid.strip("<>"): attachment_id
            for attachment_id, cid in await db.execute(
                select(Attachment.id, Attachment.content_id).where(
                    Attachment.company_id == actor.company_id,
                    Attachment.message_id == message_id,
                    Attachment.content_id.is_not(None),
                )
            )
        }
    folded = split_html(row.body_html)

    def inline_image(content_id: str) -> str | None:
        found = inline.get(content_id.strip("<>"))
        return f"/attachments/{found}?inline=1" if found else None

    body = sanitize_email_html(folded.body_html, remote_images=proxy, inline_image=inline_image)
    quoted = (
        sanitize_email_html(folded.quoted_html, remote_images=proxy, inline_image=inline_image)
        if folded.quoted_html.strip()
        else None
    )
    return MessageBody(
        body.html, body.remote_images + (quoted.remote_images if quoted else 0), quoted.html if quoted else ""
    )
