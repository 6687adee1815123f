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
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select, update
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
from salesinbox.adapters.db.upsert import insert_rows
from salesinbox.domain.threading import SUBJECT_WINDOW, ThreadFacts, subject_connected
from salesinbox.mime.batch import Prepared, addresses_json, facts_of
from salesinbox.mime.parse import ParsedMessage
from salesinbox.services import labels, linking
from salesinbox.services.unit_of_work import mail_changed


@dataclass(frozen=True)
class Arrival:
    """One message as fetched from a folder, parsed."""

    uid: int
    flags: tuple[str, ...]
    modseq: int | None
    parsed: ParsedMessage
    raw_key: str
    size: int
    prepared: Prepared | None = None  # row fields computed in the parse worker, when it ran there


_addresses = addresses_json
# Core tables for the lookups of a batch: selecting ORM attributes ran every row through the ORM's loading.
_MT = Message.__table__
_M = _MT.c
_K = MessageThreadKey.__table__.c
_C = Conversation.__table__


@dataclass
class _Candidate:
    """A stored (or just-inserted) message as the subject fallback sees it."""

    conversation_id: uuid.UUID
    facts: ThreadFacts


class _Conversations:
    """Union-find over conversation ids, for the merges one batch can cause."""

    def __init__(self) -> None:
        self.parent: dict[uuid.UUID, uuid.UUID] = {}

    def find(self, cid: uuid.UUID) -> uuid.UUID:
        while self.parent.get(cid, cid) != cid:
            cid = self.parent[cid]
        return cid

    def unite(self, ids: set[uuid.UUID]) -> uuid.UUID:
        roots = {self.find(i) for i in ids}
        survivor = min(roots)  # UUIDv7: the oldest conversation keeps its id (and later its links)
        for root in roots - {survivor}:
            self.parent[root] = survivor
        return survivor


class MailStore:
    """Stores one batch of arrivals for one account folder, inside the caller's transaction.

    The batch is threaded in memory after three lookups (dedupe keys, thread
    keys, subjects), then written with bulk inserts: the cost per message is
    a few rows, not a few round trips.
    """

    def __init__(
        self,
        db: AsyncSession,
        company_id: uuid.UUID,
        account_id: uuid.UUID,
        contacts: linking.ContactRule | None = None,
    ) -> None:
        self.db, self.company_id, self.account_id = db, company_id, account_id
        self.contacts = contacts  # the account's contact-creation policy; None: create no persons

    async def store(self, folder_id: uuid.UUID, uidvalidity: int, arrivals: list[Arrival]) -> int:
        """Store a batch; returns how many messages were new to the company."""
        mail_changed(self.db, self.company_id)  # live streams are nudged once this transaction commits
        existing = await self._existing(arrivals)
        fresh: list[tuple[Arrival, dict]] = []
        placed: list[tuple[Arrival, uuid.UUID]] = []
        for arrival in arrivals:
            found = _resolve(existing, arrival.parsed)
            if found is None:
                row = self._message_row(arrival, existing)
                existing[row["dedupe_key"]] = _Known(row["id"], row["from_email"], row["sent_at"])
                fresh.append((arrival, row))
                placed.append((arrival, row["id"]))
            else:
                placed.append((arrival, found.id))
        if fresh:
            await self._thread_and_insert(fresh)
        # A location can be here already: a move in this app records the message's new place (COPYUID)
        # while a pass that listed that folder before the move is still storing it. Same place, same
        # message: skipped, not an error that would fail the pass.
        await insert_rows(
            self.db,
            MessageLocation.__table__,
            [
                {
                    "company_id": self.company_id,
                    "folder_id": folder_id,
                    "uid": a.uid,
                    "account_id": self.account_id,
                    "message_id": mid,
                    "uidvalidity": uidvalidity,
                    "flags": " ".join(a.flags),
                    "modseq": a.modseq,
                }
                for a, mid in placed
            ],
            skip_existing=True,
        )
        await labels.follow_keywords(
            self.db, self.company_id, [labels.FlagChange(mid, "", " ".join(a.flags)) for a, mid in placed]
        )
        await index_documents(self.db, [_document(self.company_id, row["id"], a.parsed) for a, row in fresh])
        if self.contacts is not None:
            people = linking.correspondents(self.contacts, [a.parsed for a, _row in fresh])
            await linking.create_persons(self.db, self.company_id, self.contacts, people)
        # The rules look at these conversations again when the pass is done (sync.link_pending): once
        # each, not once per batch that touches them. Until then they have no verdict, as new ones.
        # A new message's conversation is known here; one stored before (found again in another folder) is read.
        fresh_ids = {row["id"] for _, row in fresh}
        conversations = {row["conversation_id"] for _, row in fresh}
        conversations |= await self._conversations_of([mid for _, mid in placed if mid not in fresh_ids])
        await linking.mark_stale(self.db, self.company_id, conversations)
        return len(fresh)

    async def _conversations_of(self, message_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        for chunk in _chunks(message_ids, 500):
            found.update(await self.db.scalars(
                select(_M.conversation_id).where(_M.company_id == self.company_id, _M.id.in_(chunk))
            ))
        return found

    # ---- dedupe ----------------------------------------------------------------------

    async def _existing(self, arrivals: list[Arrival]) -> dict[str, _Known]:
        keys = list({k for a in arrivals for k in _candidate_keys(a.parsed)})
        rows = await self.db.execute(
            select(_M.dedupe_key, _M.id, _M.from_email, _M.sent_at).where(
                _M.company_id == self.company_id, _M.dedupe_key.in_(keys)
            )
        )
        return {key: _Known(mid, sender, sent) for key, mid, sender, sent in rows}

    def _message_row(self, arrival: Arrival, existing: dict[str, _Known]) -> dict:
        p = arrival.parsed
        key = f"mid:{p.message_id}" if p.message_id else f"hash:{p.content_hash}"
        if key in existing:  # a reused Message-ID: stored apart under its content hash
            key = f"hash:{p.content_hash}"
        pre = arrival.prepared
        if pre is not None and pre.parsed.gm_thrid != p.gm_thrid:  # the IMAP layer added a Gmail thread id
            pre = None
        facts = pre.facts if pre else facts_of(p)
        return {
            "company_id": self.company_id,
            "id": new_id(),
            "dedupe_key": key,
            "message_id_header": p.message_id,
            "content_hash": p.content_hash,
            "raw_key": arrival.raw_key,
            "size": arrival.size,
            "subject": p.subject,
            "subject_key": facts.subject_key[:500],
            "orphan_reply": facts.is_orphan_reply,
            "from_email": p.from_.email if p.from_ else "",
            "from_name": p.from_.name if p.from_ else "",
            "to_list": pre.to_json if pre else _addresses(p.to),
            "cc_list": pre.cc_json if pre else _addresses(p.cc),
            "bcc_list": pre.bcc_json if pre else _addresses(p.bcc),
            "participants": " ".join(sorted(facts.participants)),
            "sent_at": p.date,
            "snippet": p.snippet,
            "body_text": p.text,
            "body_html": p.html,
            "has_attachments": bool(p.attachments),
            "is_calendar": p.is_calendar,
            "is_bulk": p.is_bulk,
            "parse_status": p.status,
            "parse_problems": "\n".join(p.problems),
            "gm_thrid": p.gm_thrid,
            "_facts": facts,
        }

    # ---- threading ---------------------------------------------------------------------

    async def _thread_and_insert(self, fresh: list[tuple[Arrival, dict]]) -> None:
        by_key = await self._conversations_by_key({k for _, row in fresh for k in row["_facts"].keys})
        by_subject = await self._subject_candidates([row["_facts"] for _, row in fresh])
        known = await self._load_conversations(
            {c for ids in by_key.values() for c in ids} | {c.conversation_id for cs in by_subject.values() for c in cs}
        )
        # The subject edge needs an orphan reply on one side: a message that is none looks only at
        # the orphans with its subject (a common subject has hundreds of the others in a batch).
        orphans = {key: [c for c in cs if c.facts.is_orphan_reply] for key, cs in by_subject.items()}
        unions, created = _Conversations(), {}
        for _, row in fresh:
            facts: ThreadFacts = row.pop("_facts")
            subject = facts.subject_key[:500]
            linked = {c for k in facts.keys for c in by_key.get(k, ())}
            linked |= {
                c.conversation_id
                for c in (by_subject if facts.is_orphan_reply else orphans).get(subject, ())
                if subject_connected(facts, c.facts)
            }
            if linked:
                conversation_id = unions.unite(linked)
            else:
                conversation_id = new_id()
                created[conversation_id] = _Summary(self.company_id, conversation_id)
            row["conversation_id"] = conversation_id
            for key in facts.keys:
                by_key.setdefault(key, set()).add(conversation_id)
            candidate = _Candidate(conversation_id, facts)
            by_subject.setdefault(subject, []).append(candidate)
            if facts.is_orphan_reply:
                orphans.setdefault(subject, []).append(candidate)
            row["_keys"] = facts.keys
        await self._apply(fresh, unions, known, created)

    async def _conversations_by_key(self, keys: set[str]) -> dict[str, set[uuid.UUID]]:
        found: dict[str, set[uuid.UUID]] = {}
        for chunk in _chunks(sorted(k[:1000] for k in keys), 500):
            rows = await self.db.execute(
                select(_K.key, _M.conversation_id)
                .join(_MT, (_M.company_id == _K.company_id) & (_M.id == _K.message_id))
                .where(_K.company_id == self.company_id, _K.key.in_(chunk))
            )
            for key, conversation_id in rows:
                found.setdefault(key, set()).add(conversation_id)
        return found

    async def _subject_candidates(self, batch: list[ThreadFacts]) -> dict[str, list[_Candidate]]:
        """Stored messages the batch may join by subject (``subject_connected``).

        An edge needs an orphan reply on one side and both dates inside the
        window, so only two kinds of rows can matter: orphan replies with a
        subject of the batch, and any message with the subject of an orphan
        reply of the batch; both within the window around the batch's dates.
        Loading every message with a common subject ("Invoice") would make a
        large mailbox quadratic.
        """
        dated = [f for f in batch if f.subject_key and f.date is not None]
        found: dict[str, list[_Candidate]] = {}
        if not dated:
            return found
        low = min(f.date for f in dated) - SUBJECT_WINDOW
        high = max(f.date for f in dated) + SUBJECT_WINDOW
        any_kind = {f.subject_key[:500] for f in dated if f.is_orphan_reply}
        orphans_only = {f.subject_key[:500] for f in dated} - any_kind
        for keys, only_orphans in ((any_kind, False), (orphans_only, True)):
            for chunk in _chunks(sorted(keys), 500):
                query = select(_M.subject_key, _M.conversation_id, _M.orphan_reply, _M.participants, _M.sent_at).where(
                    _M.company_id == self.company_id,
                    _M.subject_key.in_(chunk),
                    _M.sent_at.between(low, high),
                )
                if only_orphans:
                    query = query.where(_M.orphan_reply.is_(True))
                for key, conversation_id, orphan, people, sent_at in await self.db.execute(query):
                    facts = ThreadFacts(frozenset(), key, orphan, frozenset(people.split()), sent_at)
                    found.setdefault(key, []).append(_Candidate(conversation_id, facts))
        return found

    async def _load_conversations(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, _Summary]:
        if not ids:
            return {}
        found: dict[uuid.UUID, _Summary] = {}
        for chunk in _chunks(list(ids), 500):
            rows = await self.db.execute(
                select(*(_C.c[name] for name in _SUMMARY_FIELDS)).where(
                    _C.c.company_id == self.company_id, _C.c.id.in_(chunk)
                )
            )
            for row in rows:
                found[row.id] = _Summary(self.company_id, **row._mapping)
        return found

    async def _apply(self, fresh, unions: _Conversations, known: dict, created: dict) -> None:
        """Resolve merges, insert the new conversations and messages, update the survivors' summaries."""
        everything = {**known, **created}
        merged = {cid for cid in everything if unions.find(cid) != cid}
        for cid in sorted(merged):
            _absorb(everything[unions.find(cid)], everything[cid])
        for _, row in fresh:
            row["conversation_id"] = unions.find(row["conversation_id"])
            _count_into(everything[row["conversation_id"]], row)
        await self._insert(Conversation, [_conversation_row(c) for cid, c in created.items() if cid not in merged])
        keys = [
            {"company_id": self.company_id, "key": k[:1000], "message_id": row["id"]}
            for _, row in fresh
            for k in row.pop("_keys")
        ]
        await self._insert(Message, [row for _, row in fresh])
        await self._insert(MessageThreadKey, keys)
        await self._insert(
            Attachment,
            [
                {
                    "company_id": self.company_id,
                    "id": new_id(),
                    "message_id": row["id"],
                    "part_id": att.part_id,
                    "filename": att.filename[:500],
                    "content_type": att.content_type[:200],
                    "size": att.size,
                    "content_id": att.content_id[:500] if att.content_id else None,
                    "inline": att.inline,
                    "on_server": att.on_server,
                }
                for arrival, row in fresh
                for att in arrival.parsed.attachments
            ],
        )
        survivors = [_conversation_row(c) for cid, c in known.items() if cid not in merged]
        if survivors:
            await self.db.execute(
                update(Conversation.__table__)
                .where(
                    Conversation.__table__.c.company_id == bindparam("b_company"),
                    Conversation.__table__.c.id == bindparam("b_id"),
                )
                .values({name: bindparam(name) for name in _SUMMARY_FIELDS if name != "id"}),
                [
                    {
                        **{k: v for k, v in row.items() if k not in ("company_id", "id")},
                        "b_company": row["company_id"],
                        "b_id": row["id"],
                    }
                    for row in survivors
                ],
            )
        stale = {cid: unions.find(cid) for cid in merged if cid in known}
        if stale:
            await self.db.execute(
                update(Message.__table__)
                .where(
                    Message.__table__.c.company_id == bindparam("b_company"),
                    Message.__table__.c.conversation_id == bindparam("b_gone"),
                )
                .values(conversation_id=bindparam("b_survivor")),
                [{"b_company": self.company_id, "b_gone": g, "b_survivor": s} for g, s in sorted(stale.items())],
            )
            await linking.merge_conversations(self.db, self.company_id, stale)
            await labels.merge_labels(self.db, self.company_id, stale)
            for chunk in _chunks(sorted(stale), 500):
                await self.db.execute(
                    delete(Conversation).where(Conversation.company_id == self.company_id, Conversation.id.in_(chunk))
                )
        await self.db.flush()

    async def _insert(self, model, rows: list[dict]) -> None:
        for chunk in _chunks(rows, 500):
            await insert_rows(self.db, model.__table__, chunk)


_SUMMARY_FIELDS = (
    "id",
    "subject",
    "snippet",
    "started_at",
    "last_message_at",
    "message_count",
    "has_attachments",
)


@dataclass
class _Summary:
    """A conversation's summary columns while a batch is threaded (cheaper than an ORM object)."""

    company_id: uuid.UUID
    id: uuid.UUID
    subject: str = ""
    snippet: str = ""
    started_at: dt.datetime | None = None
    last_message_at: dt.datetime | None = None
    message_count: int = 0
    has_attachments: bool = False


@dataclass(frozen=True)
class _Known:
    id: uuid.UUID
    from_email: str
    sent_at: dt.datetime | None


def _resolve(existing: dict[str, _Known], p: ParsedMessage) -> _Known | None:
    by_hash = existing.get(f"hash:{p.content_hash}")
    if by_hash is not None:
        return by_hash
    if not p.message_id:
        return None
    same_id = existing.get(f"mid:{p.message_id}")
    if same_id is None or _same_message(same_id, p):
        return same_id
    return None


def _conversation_row(c: _Summary) -> dict:
    return {
        "company_id": c.company_id,
        "id": c.id,
        "subject": c.subject or "",
        "snippet": c.snippet or "",
        "started_at": c.started_at,
        "last_message_at": c.last_message_at,
        "message_count": c.message_count or 0,
        "has_attachments": bool(c.has_attachments),
    }


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _candidate_keys(p: ParsedMessage) -> list[str]:
    keys = [f"hash:{p.content_hash}"]
    if p.message_id:
        keys.append(f"mid:{p.message_id}")
    return keys


def _same_message(stored: _Known, p: ParsedMessage) -> bool:
    """The same Message-ID from the same sender at the same time is the same message
    (copies in several folders or accounts differ only in trace headers)."""
    sender = p.from_.email if p.from_ else ""
    return stored.from_email == sender and _close(stored.sent_at, p.date)


def _close(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= dt.timedelta(minutes=5)


def _count_into(conversation: _Summary, message: dict) -> None:
    conversation.message_count = (conversation.message_count or 0) + 1
    conversation.has_attachments = bool(conversation.has_attachments) or message["has_attachments"]
    when = message["sent_at"]
    if conversation.message_count == 1 or (
        when and conversation.last_message_at and when >= conversation.last_message_at
    ):
        conversation.last_message_at = when or conversation.last_message_at
        conversation.snippet = message["snippet"]
    # The conversation is named after its first message (sync fetches newest first).
    if conversation.message_count == 1 or (when and conversation.started_at and when < conversation.started_at):
        conversation.started_at, conversation.subject = when, message["subject"]


def _absorb(survivor: _Summary, other: _Summary) -> None:
    survivor.message_count = (survivor.message_count or 0) + (other.message_count or 0)
    survivor.has_attachments = bool(survivor.has_attachments or other.has_attachments)
    if other.last_message_at and (survivor.last_message_at is None or other.last_message_at > survivor.last_message_at):
        survivor.last_message_at, survivor.snippet = other.last_message_at, other.snippet
    if other.started_at and (survivor.started_at is None or other.started_at < survivor.started_at):
        survivor.started_at, survivor.subject = other.started_at, other.subject


def _document(company_id: uuid.UUID, message_id: uuid.UUID, p: ParsedMessage) -> SearchDocument:
    people = [*([p.from_] if p.from_ else []), *p.to, *p.cc]
    return SearchDocument(
        company_id=company_id,
        message_id=message_id,
        subject=p.subject,
        body=p.text,
        participants=" ".join(f"{a.name} {a.email}" for a in people),
        attachments=" ".join(a.filename for a in p.attachments),
    )
