"""Storing synced messages: one stored message per company, threaded into conversations.

Invariants, all inside the caller's single write transaction per batch:
- A message is stored once per company under its dedupe key: ``mid:<Message-ID>``,
  or ``hash:<sha256 of the raw bytes>`` when the Message-ID is missing or is
  reused by a different message (another sender or date). Every (folder, UID)
  where it lives is a ``MessageLocation``.
- Threading follows ``domain.threading``: a new message joins every
  conversation it is connected to; several means a merge into the oldest.
- The raw MIME is written to blob storage *before* the transaction (content
  addressed, so a rolled-back batch leaves only a harmless orphan blob).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from salesinbox.adapters.db.ids import new_id
from salesinbox.adapters.db.search import SearchDocument, index_documents
from salesinbox.adapters.db.tables import (
    Attachment,
    Conversation,
    Message,
    MessageLocation,
    MessageThreadKey,
)
from salesinbox.domain.threading import ThreadFacts, subject_connected
from salesinbox.mime.parse import Address, ParsedMessage


@dataclass(frozen=True)
class Arrival:
    """One message as fetched from a folder, parsed."""

    uid: int
    flags: tuple[str, ...]
    modseq: int | None
    parsed: ParsedMessage
    raw_key: str
    size: int


def _addresses(items) -> str:
    return json.dumps([[a.name, a.email] for a in items], ensure_ascii=False)


def _participants(p: ParsedMessage) -> list[str]:
    people: list[Address] = [*([p.from_] if p.from_ else []), *p.to, *p.cc, *p.bcc]
    return sorted({a.email for a in people if a.email})


def facts_of(p: ParsedMessage) -> ThreadFacts:
    return ThreadFacts.of(
        message_id=p.message_id,
        in_reply_to=p.in_reply_to,
        references=p.references,
        subject=p.subject,
        participants=_participants(p),
        date=p.date,
        gm_thrid=p.gm_thrid,
    )


def _row_facts(m: Message) -> ThreadFacts:
    return ThreadFacts(
        keys=frozenset(),
        subject_key=m.subject_key,
        is_orphan_reply=m.orphan_reply,
        participants=frozenset(m.participants.split()),
        date=m.sent_at,
    )


class MailStore:
    """Stores arrivals for one account folder inside one transaction."""

    def __init__(self, db: AsyncSession, company_id: uuid.UUID, account_id: uuid.UUID) -> None:
        self.db, self.company_id, self.account_id = db, company_id, account_id
        self._conversations: dict[uuid.UUID, Conversation] = {}

    async def store(self, folder_id: uuid.UUID, uidvalidity: int, arrivals: list[Arrival]) -> int:
        """Store a batch; returns how many messages were new to the company."""
        existing = await self._existing(arrivals)
        new_count, documents = 0, []
        for arrival in arrivals:
            message = await self._resolve(existing, arrival)
            if message is None:
                message = await self._insert(arrival)
                existing[message.dedupe_key] = message
                documents.append(_document(self.company_id, message, arrival.parsed))
                new_count += 1
            self.db.add(
                MessageLocation(
                    company_id=self.company_id,
                    folder_id=folder_id,
                    uid=arrival.uid,
                    account_id=self.account_id,
                    message_id=message.id,
                    uidvalidity=uidvalidity,
                    flags=" ".join(arrival.flags),
                    modseq=arrival.modseq,
                )
            )
        await self.db.flush()
        await index_documents(self.db, documents)
        return new_count

    # ---- dedupe ----------------------------------------------------------------------

    async def _existing(self, arrivals: list[Arrival]) -> dict[str, Message]:
        keys = {k for a in arrivals for k in _candidate_keys(a.parsed)}
        rows = await self.db.scalars(
            select(Message).where(Message.company_id == self.company_id, Message.dedupe_key.in_(keys))
        )
        return {m.dedupe_key: m for m in rows}

    async def _resolve(self, existing: dict[str, Message], arrival: Arrival) -> Message | None:
        p = arrival.parsed
        by_hash = existing.get(f"hash:{p.content_hash}")
        if by_hash is not None:
            return by_hash
        if not p.message_id:
            return None
        same_id = existing.get(f"mid:{p.message_id}")
        if same_id is None or _same_message(same_id, p):
            return same_id
        return None  # a reused Message-ID: stored apart under its content hash

    # ---- insert ----------------------------------------------------------------------

    async def _insert(self, arrival: Arrival) -> Message:
        p, facts = arrival.parsed, facts_of(arrival.parsed)
        key = f"mid:{p.message_id}" if p.message_id else f"hash:{p.content_hash}"
        if p.message_id and await self._key_taken(key):
            key = f"hash:{p.content_hash}"
        conversation = await self._conversation_for(facts)
        message = Message(
            company_id=self.company_id,
            conversation_id=conversation.id,
            dedupe_key=key,
            message_id_header=p.message_id,
            content_hash=p.content_hash,
            raw_key=arrival.raw_key,
            size=arrival.size,
            subject=p.subject,
            subject_key=facts.subject_key[:500],
            orphan_reply=facts.is_orphan_reply,
            from_email=p.from_.email if p.from_ else "",
            from_name=p.from_.name if p.from_ else "",
            to_list=_addresses(p.to),
            cc_list=_addresses(p.cc),
            bcc_list=_addresses(p.bcc),
            participants=" ".join(sorted(facts.participants)),
            sent_at=p.date,
            snippet=p.snippet,
            body_text=p.text,
            body_html=p.html,
            has_attachments=bool(p.attachments),
            is_calendar=p.is_calendar,
            is_bulk=p.is_bulk,
            parse_status=p.status,
            parse_problems="\n".join(p.problems),
            gm_thrid=p.gm_thrid,
        )
        self.db.add(message)
        await self.db.flush()
        for thread_key in facts.keys:
            self.db.add(MessageThreadKey(company_id=self.company_id, key=thread_key[:1000], message_id=message.id))
        for a in p.attachments:
            self.db.add(
                Attachment(
                    company_id=self.company_id,
                    message_id=message.id,
                    part_id=a.part_id,
                    filename=a.filename[:500],
                    content_type=a.content_type[:200],
                    size=a.size,
                    content_id=(a.content_id or None) and a.content_id[:500],
                    inline=a.inline,
                )
            )
        _count_into(conversation, message)
        return message

    async def _key_taken(self, key: str) -> bool:
        return bool(
            await self.db.scalar(
                select(Message.id).where(Message.company_id == self.company_id, Message.dedupe_key == key)
            )
        )

    # ---- threading --------------------------------------------------------------------

    async def _conversation_for(self, facts: ThreadFacts) -> Conversation:
        linked = await self._linked_conversations(facts)
        if not linked:
            conversation = Conversation(company_id=self.company_id, id=new_id())
            self.db.add(conversation)
            self._conversations[conversation.id] = conversation
            return conversation
        survivor = min(linked)  # UUIDv7: the oldest conversation keeps its id (and later its links)
        await self._merge(survivor, linked - {survivor})
        return await self._conversation(survivor)

    async def _linked_conversations(self, facts: ThreadFacts) -> set[uuid.UUID]:
        await self.db.flush()
        linked: set[uuid.UUID] = set()
        if facts.keys:
            linked |= set(
                await self.db.scalars(
                    select(Message.conversation_id)
                    .join(
                        MessageThreadKey,
                        (MessageThreadKey.company_id == Message.company_id)
                        & (MessageThreadKey.message_id == Message.id),
                    )
                    .where(
                        MessageThreadKey.company_id == self.company_id,
                        MessageThreadKey.key.in_([k[:1000] for k in facts.keys]),
                    )
                    .distinct()
                )
            )
        if facts.subject_key:
            candidates = select(Message).where(
                Message.company_id == self.company_id, Message.subject_key == facts.subject_key[:500]
            )
            if not facts.is_orphan_reply:
                candidates = candidates.where(Message.orphan_reply.is_(True))
            for row in await self.db.scalars(candidates.limit(500)):
                if subject_connected(facts, _row_facts(row)):
                    linked.add(row.conversation_id)
        return linked

    async def _merge(self, survivor_id: uuid.UUID, merged: set[uuid.UUID]) -> None:
        if not merged:
            return
        survivor = await self._conversation(survivor_id)
        for other_id in merged:
            _absorb(survivor, await self._conversation(other_id))
        await self.db.execute(
            update(Message)
            .where(Message.company_id == self.company_id, Message.conversation_id.in_(merged))
            .values(conversation_id=survivor_id)
        )
        await self.db.flush()
        for other_id in merged:
            self._conversations.pop(other_id, None)
        await self.db.execute(
            delete(Conversation).where(Conversation.company_id == self.company_id, Conversation.id.in_(merged))
        )

    async def _conversation(self, conversation_id: uuid.UUID) -> Conversation:
        if conversation_id not in self._conversations:
            self._conversations[conversation_id] = await self.db.get(Conversation, (self.company_id, conversation_id))
        return self._conversations[conversation_id]


def _candidate_keys(p: ParsedMessage) -> list[str]:
    keys = [f"hash:{p.content_hash}"]
    if p.message_id:
        keys.append(f"mid:{p.message_id}")
    return keys


def _same_message(stored: Message, p: ParsedMessage) -> bool:
    """The same Message-ID from the same sender at the same time is the same message
    (copies in several folders or accounts differ only in trace headers)."""
    sender = p.from_.email if p.from_ else ""
    return stored.from_email == sender and _close(stored.sent_at, p.date)


def _close(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= dt.timedelta(minutes=5)


def _count_into(conversation: Conversation, message: Message) -> None:
    conversation.message_count = (conversation.message_count or 0) + 1
    conversation.has_attachments = bool(conversation.has_attachments) or message.has_attachments
    when = message.sent_at
    if conversation.message_count == 1 or (
        when and conversation.last_message_at and when >= conversation.last_message_at
    ):
        conversation.last_message_at = when or conversation.last_message_at
        conversation.snippet = message.snippet
    # The conversation is named after its first message (sync fetches newest first).
    if conversation.message_count == 1 or (when and conversation.started_at and when < conversation.started_at):
        conversation.started_at, conversation.subject = when, message.subject


def _absorb(survivor: Conversation, other: Conversation) -> None:
    survivor.message_count = (survivor.message_count or 0) + (other.message_count or 0)
    survivor.has_attachments = bool(survivor.has_attachments or other.has_attachments)
    if other.last_message_at and (survivor.last_message_at is None or other.last_message_at > survivor.last_message_at):
        survivor.last_message_at, survivor.snippet = other.last_message_at, other.snippet
    if other.started_at and (survivor.started_at is None or other.started_at < survivor.started_at):
        survivor.started_at, survivor.subject = other.started_at, other.subject


def _document(company_id: uuid.UUID, message: Message, p: ParsedMessage) -> SearchDocument:
    people = [*([p.from_] if p.from_ else []), *p.to, *p.cc]
    return SearchDocument(
        company_id=company_id,
        message_id=message.id,
        subject=p.subject,
        body=p.text,
        participants=" ".join(f"{a.name} {a.email}" for a in people),
        attachments=" ".join(a.filename for a in p.attachments),
    )
