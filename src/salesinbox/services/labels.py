"""Labels: company-wide, several per conversation, kept on the mail server as IMAP keywords.

The database holds the truth the inbox shows: ``labels`` (name, and the
keyword chosen once when the label is made, see ``domain/labels.py``) and
``conversation_labels``. The mail server holds a copy where it can:

- **Writing** (``set_labels``, ``label_many``): on the server first, per
  folder of the conversation's messages in the actor's accounts. The folder
  is opened read-write and its UIDVALIDITY compared with the stored one; a
  renumbered folder is left alone (never a UID of a stale numbering) and
  reported; ``set_labels`` stores the whole chosen set again each time, so
  saving the labels after the next pass puts them on the server. Where
  ``PERMANENTFLAGS`` lacks ``\\*`` the keyword cannot be added: the label is
  kept here only and the folder reported. Then, in one transaction, the
  stored flags of the written locations and the
  conversation's label rows follow.
- **Reading** (``follow_keywords``, called by the sync as it stores flags,
  initial, incremental, CONDSTORE or QRESYNC alike): a keyword that appears
  on a message puts its label on the conversation (a keyword no label has,
  set by another mail client, makes a new label unless it is a system
  keyword such as ``$Forwarded`` or ``NonJunk``); a keyword that disappears
  takes the label off once no location of the conversation carries it any
  more. Only changes count, so a label kept here only (a server without
  keywords) is never taken off by a sync pass.
- **Renaming** changes the name only: the keyword stays, so no message is
  rewritten. **Deleting** takes the label off every conversation and keeps
  a tombstone, so the keyword still on messages is not made a label again;
  the keywords themselves are left on the server.

No database transaction is held across an IMAP call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesinbox.adapters.db.ids import new_id
from salesinbox.adapters.db.tables import (
    ConversationLabel,
    EmailAccount,
    Label,
    MailFolder,
    Message,
    MessageLocation,
)
from salesinbox.adapters.db.upsert import insert_missing
from salesinbox.domain import labels as rules
from salesinbox.domain.errors import Conflict, NotFound, ValidationFailed
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.services.accounts import imap_login, require_email_sync
from salesinbox.services.actions import MOST_AT_ONCE, places_of
from salesinbox.services.unit_of_work import Deps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelView:
    id: uuid.UUID
    name: str
    keyword: str  # the IMAP keyword it is stored as on the mail server


@dataclass(frozen=True)
class LabelReport:
    labels: list[str]  # the labels on the (last) conversation afterwards, by name
    changed: int  # messages changed on the mail server
    skipped_folders: list[str]  # renumbered by the server since the last sync: not written
    folders_without_keywords: list[str]  # the server keeps no keywords there: the label is kept here only


def _view(label: Label) -> LabelView:
    return LabelView(label.id, label.name, label.keyword)


# ---- the company's labels ---------------------------------------------------------------


async def list_labels(deps: Deps, actor: Actor) -> list[LabelView]:
    require_email_sync(actor)
    async with deps.reading() as db:
        return [_view(label) for label in await _live(db, actor.company_id)]


async def _live(db: AsyncSession, company_id: uuid.UUID) -> list[Label]:
    rows = await db.scalars(
        select(Label).where(Label.company_id == company_id, Label.deleted_at.is_(None)).order_by(Label.name_key)
    )
    return list(rows)


async def create_label(deps: Deps, actor: Actor, name: str) -> LabelView:
    """A new label (a deleted one of the same name comes back, with its keyword); Conflict if it exists."""
    require_email_sync(actor)
    async with deps.writing() as db:
        label, created = await _find_or_make(db, actor.company_id, name)
        if not created and label.deleted_at is None:
            raise Conflict(Text("There is a label “%(name)s” already.", name=label.name))
        label.deleted_at = None
        return _view(label)


async def _find_or_make(db: AsyncSession, company_id: uuid.UUID, name: str) -> tuple[Label, bool]:
    name = rules.normalize_name(name)
    found = await db.scalar(
        select(Label).where(Label.company_id == company_id, Label.name_key == rules.name_key(name))
    )
    if found is not None:
        return found, False
    taken = set(await db.scalars(select(Label.keyword_key).where(Label.company_id == company_id)))
    keyword = rules.keyword_for(name, taken)
    label = Label(
        company_id=company_id, id=new_id(), name=name, name_key=rules.name_key(name),
        keyword=keyword, keyword_key=rules.keyword_key(keyword),
    )
    db.add(label)
    await db.flush()
    return label, True


async def rename_label(deps: Deps, actor: Actor, label_id: uuid.UUID, name: str) -> LabelView:
    """A new name; the keyword on the server stays as it is (nothing is rewritten).

    Gmail knows a label by its name, so there the label is renamed too (``_rename_in_gmail``); else the
    next change read from Gmail would bring the old name back as a label of its own.
    """
    require_email_sync(actor)
    name = rules.normalize_name(name)
    async with deps.writing() as db:
        label = await _get_live(db, actor.company_id, label_id)
        before = label.name
        view = await _rename(db, actor, label, label_id, name)
    if before != name:
        await _rename_in_gmail(deps, actor.company_id, before, name)
    return view


async def _rename(db: AsyncSession, actor: Actor, label: Label, label_id: uuid.UUID, name: str) -> LabelView:
    other = await db.scalar(
        select(Label).where(
            Label.company_id == actor.company_id, Label.name_key == rules.name_key(name), Label.id != label_id
        )
    )
    if other is not None and other.deleted_at is None:
        raise Conflict(Text("There is a label “%(name)s” already.", name=other.name))
    if other is not None:  # a tombstone held the name: it keeps its keyword under another name
        other.name = other.name_key = f"~{other.id.hex}"
        await db.flush()
    label.name, label.name_key = name, rules.name_key(name)
    return _view(label)


async def _rename_in_gmail(deps: Deps, company_id: uuid.UUID, before: str, after: str) -> None:
    """RENAME the label in every Gmail account of the company that has it (an account with an All Mail
    folder is a Gmail account). An account that cannot be reached keeps the old name: its mail then
    brings that name back as a label of its own, which a person can merge by renaming; nothing is lost."""
    async with deps.reading() as db:
        gmail = list(await db.scalars(
            select(EmailAccount).where(
                EmailAccount.company_id == company_id,
                EmailAccount.id.in_(select(MailFolder.account_id).where(
                    MailFolder.company_id == company_id, MailFolder.role == "all")),
            )
        ))
    for account in gmail:
        try:
            login = await imap_login(deps, account)

            def run(login=login) -> None:
                session = deps.open_mailbox(login).connect()
                try:
                    if session.profile.gmail_extensions:
                        session.rename_label(before, after)
                finally:
                    session.close()

            await asyncio.to_thread(run)
        except Exception:  # one account out of reach must not undo the rename for the others
            log.warning("could not rename a Gmail label in account %s", account.id, exc_info=True)


async def delete_label(deps: Deps, actor: Actor, label_id: uuid.UUID) -> None:
    """Off every conversation; a tombstone stays so the keyword on the server is not made a label again."""
    require_email_sync(actor)
    async with deps.writing() as db:
        label = await _get_live(db, actor.company_id, label_id)
        await db.execute(
            delete(ConversationLabel).where(
                ConversationLabel.company_id == actor.company_id, ConversationLabel.label_id == label_id
            )
        )
        label.deleted_at = dt.datetime.now(dt.UTC)


async def _get_live(db: AsyncSession, company_id: uuid.UUID, label_id: uuid.UUID) -> Label:
    label = await db.get(Label, (company_id, label_id))
    if label is None or label.deleted_at is not None:
        raise NotFound(Text("No such label."))
    return label


# ---- labels on conversations ------------------------------------------------------------


async def labels_of(db: AsyncSession, company_id: uuid.UUID, conversation_ids) -> dict[uuid.UUID, list[str]]:
    """Label names per conversation, by name."""
    ids = list(conversation_ids)
    found: dict[uuid.UUID, list[str]] = defaultdict(list)
    if not ids:
        return found
    rows = await db.execute(
        select(ConversationLabel.conversation_id, Label.name)
        .join(Label, (Label.company_id == ConversationLabel.company_id) & (Label.id == ConversationLabel.label_id))
        .where(ConversationLabel.company_id == company_id, ConversationLabel.conversation_id.in_(ids))
        .order_by(Label.name_key)
    )
    for conversation_id, name in rows:
        found[conversation_id].append(name)
    return found


def labelled(company_id: uuid.UUID, name: str):
    """SQL: the ids of the conversations with the label of this name (none if there is no such label)."""
    return (
        select(ConversationLabel.conversation_id)
        .join(Label, (Label.company_id == ConversationLabel.company_id) & (Label.id == ConversationLabel.label_id))
        .where(ConversationLabel.company_id == company_id, Label.name_key == _key_or_nothing(name))
    )


def _key_or_nothing(name: str) -> str:
    try:
        return rules.name_key(name)
    except ValidationFailed:
        return ""


async def set_labels(deps: Deps, actor: Actor, conversation_id: uuid.UUID, names: list[str]) -> LabelReport:
    """Exactly these labels on the conversation; a name no label has yet makes a new company-wide label."""
    require_email_sync(actor)
    wanted = {rules.name_key(n): rules.normalize_name(n) for n in names}
    places = await places_of(deps, actor, [conversation_id])  # NotFound unless it is in the actor's inbox
    async with deps.writing() as db:
        chosen = [(await _find_or_make(db, actor.company_id, name))[0] for name in wanted.values()]
        for label in chosen:
            label.deleted_at = None
        current = await _current(db, actor.company_id, [conversation_id])
    # Every chosen keyword is stored again (STORE is idempotent): a label kept here only because its folder
    # was renumbered, or because the connection dropped mid-way, reaches the server when the set is saved again.
    add = chosen
    keep = {label.id for label in chosen}
    remove = [label for label in current.values() if label.id not in keep]
    return await _relabel(deps, actor, [conversation_id], places, add, remove)


async def label_many(
    deps: Deps, actor: Actor, conversation_ids: list[uuid.UUID], label_id: uuid.UUID, *, add: bool
) -> LabelReport:
    """One label on (or off) several conversations; one id not in the actor's inbox and nothing is done."""
    require_email_sync(actor)
    ids = list(dict.fromkeys(conversation_ids))
    if not ids or len(ids) > MOST_AT_ONCE:
        raise ValidationFailed({"ids": Text("Choose between 1 and %(most)s conversations.", most=MOST_AT_ONCE)})
    async with deps.reading() as db:
        label = await _get_live(db, actor.company_id, label_id)
    places = await places_of(deps, actor, ids)
    return await _relabel(deps, actor, ids, places, [label] if add else [], [] if add else [label])


async def _current(db: AsyncSession, company_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, Label]:
    rows = await db.scalars(
        select(Label)
        .join(ConversationLabel,
              (ConversationLabel.company_id == Label.company_id) & (ConversationLabel.label_id == Label.id))
        .where(ConversationLabel.company_id == company_id, ConversationLabel.conversation_id.in_(ids))
    )
    return {label.id: label for label in rows}


async def _relabel(deps, actor: Actor, ids: list[uuid.UUID], places, add: list[Label], remove: list[Label]):
    plus, minus = [label.keyword for label in add], [label.keyword for label in remove]
    names = ([label.name for label in add], [label.name for label in remove])
    done = await _on_server(deps, places, plus, minus, names) if plus or minus else _Written()
    async with deps.writing() as db:
        for place, keywords in done.places:
            await _store_flags(db, place, plus if keywords else [], minus)
        await insert_missing(
            db,
            ConversationLabel.__table__,
            [{"company_id": actor.company_id, "conversation_id": c, "label_id": lb.id} for c in ids for lb in add],
        )
        if remove:
            await db.execute(
                delete(ConversationLabel).where(
                    ConversationLabel.company_id == actor.company_id,
                    ConversationLabel.conversation_id.in_(ids),
                    ConversationLabel.label_id.in_([label.id for label in remove]),
                )
            )
        names = (await labels_of(db, actor.company_id, ids[-1:])).get(ids[-1], [])
    return LabelReport(names, done.changed, sorted(set(done.stale)), sorted(set(done.bare)))


@dataclass
class _Written:
    places: list = field(default_factory=list)  # (place, whether keywords could be added there)
    changed: int = 0
    stale: list[str] = field(default_factory=list)
    bare: list[str] = field(default_factory=list)


async def _on_server(
    deps: Deps, places, plus: list[str], minus: list[str], names: tuple[list[str], list[str]] = ([], [])
) -> _Written:
    """STORE +FLAGS / -FLAGS per folder, where the folder's numbering is the one stored.

    A folder that takes no new keywords gets only the removals (harmless
    where the keyword was never there) and is reported. On Gmail the label
    itself is set too (STORE +X-GM-LABELS by name), so it shows in Gmail.
    """
    by_account = defaultdict(list)
    for place in places:
        by_account[place.account.id].append(place)
    done = _Written()
    for account_places in by_account.values():
        login = await imap_login(deps, account_places[0].account)

        def run(account_places=account_places, login=login) -> None:
            session = deps.open_mailbox(login).connect()
            try:
                for place in account_places:
                    uidvalidity, keywords = session.open_for_keywords(place.folder.name)
                    if uidvalidity != place.folder.uidvalidity:
                        done.stale.append(place.folder.name)  # never write with UIDs of another numbering
                        continue
                    if plus and keywords:
                        session.set_flags(place.uids, plus, add=True)
                    elif plus:
                        done.bare.append(place.folder.name)
                    if minus:
                        session.set_flags(place.uids, minus, add=False)
                    if session.profile.gmail_extensions:
                        session.set_gmail_labels(place.uids, names[0], add=True)
                        session.set_gmail_labels(place.uids, names[1], add=False)
                    done.places.append((place, keywords))
                    done.changed += len(place.uids) if keywords or minus else 0
            finally:
                session.close()

        await asyncio.to_thread(run)
    return done


async def _store_flags(db: AsyncSession, place, plus: list[str], minus: list[str]) -> None:
    """The stored flags follow what was written, so the next pass sees no change to act on."""
    gone = {rules.keyword_key(k) for k in minus}
    rows = await db.scalars(
        select(MessageLocation).where(
            MessageLocation.company_id == place.folder.company_id,
            MessageLocation.folder_id == place.folder.id,
            MessageLocation.uid.in_(place.uids),
        )
    )
    for location in rows:
        flags = [f for f in location.flags.split() if rules.keyword_key(f) not in gone]
        have = {rules.keyword_key(f) for f in flags}
        location.flags = " ".join([*flags, *(k for k in plus if rules.keyword_key(k) not in have)])


# ---- from the server: what the sync found -----------------------------------------------


@dataclass(frozen=True)
class FlagChange:
    """A location's flags as stored before ("" when new) and as the server has them now."""

    message_id: uuid.UUID
    before: str
    after: str


async def follow_keywords(db: AsyncSession, company_id: uuid.UUID, changes: list[FlagChange]) -> None:
    """Labels follow the keywords another mail client (or a server rule) set or removed; in the sync's transaction."""
    added: dict[uuid.UUID, set[str]] = defaultdict(set)
    removed: dict[uuid.UUID, set[str]] = defaultdict(set)
    spelled: dict[str, str] = {}
    for change in changes:
        before, after = rules.keywords_of(change.before), rules.keywords_of(change.after)
        for flag in change.after.split():
            spelled.setdefault(rules.keyword_key(flag), flag)
        if after - before:
            added[change.message_id] |= after - before
        if before - after:
            removed[change.message_id] |= before - after
    if not added and not removed:
        return
    conversation_of = await _conversations(db, company_id, {*added, *removed})
    known = await db.scalars(select(Label).where(Label.company_id == company_id))
    by_keyword = {label.keyword_key: label for label in known}
    new_keys = {k for keys in added.values() for k in keys if k not in by_keyword and not rules.is_system_keyword(k)}
    for key in sorted(new_keys):
        by_keyword[key] = await _label_from_keyword(db, company_id, spelled[key])
    on = {
        (conversation_of[m], by_keyword[k].id)
        for m, keys in added.items() if m in conversation_of
        for k in keys if k in by_keyword and by_keyword[k].deleted_at is None
    }
    await insert_missing(
        db, ConversationLabel.__table__,
        [{"company_id": company_id, "conversation_id": c, "label_id": label_id} for c, label_id in on],
    )
    off = {
        (conversation_of[m], k)
        for m, keys in removed.items() if m in conversation_of
        for k in keys if k in by_keyword and (conversation_of[m], by_keyword[k].id) not in on
    }
    await _take_off_where_gone(db, company_id, off, by_keyword)


async def follow_provider_labels(
    db: AsyncSession, company_id: uuid.UUID, labelled: dict[uuid.UUID, list[str]], *, by: str = "message"
) -> None:
    """Labels a provider keeps itself (Gmail's X-GM-LABELS, by name) go on the messages' conversations
    (``labelled`` by message id, or ``by="conversation"``).

    In the sync's transaction. A name this app has no label for becomes one; a
    deleted label (a tombstone) is not put on again; a name the label rules
    refuse (longer than 50 characters) is left out.
    """
    names = sorted({name for found in labelled.values() for name in found})
    if not names:
        return
    if by == "conversation":
        conversation_of = {c: c for c in labelled}
    else:
        conversation_of = await _conversations(db, company_id, set(labelled))
    by_name: dict[str, Label] = {}
    for name in names:
        try:
            by_name[name] = (await _find_or_make(db, company_id, name))[0]
        except ValidationFailed:
            continue
    on = {
        (conversation_of[m], by_name[n].id)
        for m, found in labelled.items() if m in conversation_of
        for n in found if n in by_name and by_name[n].deleted_at is None
    }
    await insert_missing(
        db, ConversationLabel.__table__,
        [{"company_id": company_id, "conversation_id": c, "label_id": label_id} for c, label_id in on],
    )


async def follow_gmail_labels(
    db: AsyncSession, company_id: uuid.UUID, account_id: uuid.UUID, truth: dict[uuid.UUID, set[str]]
) -> None:
    """Gmail: labels set or taken off in Gmail on mail stored earlier; in the sync's transaction.

    ``truth``: for each conversation, the user labels its messages carry in this Gmail account now (read
    from All Mail after Gmail reported a change). A name missing here goes on; a label whose name none of
    them carries any more comes off, unless a message of the conversation in another account still carries
    the label's keyword (that account's mail client set it, and it is that account's to take off).
    """
    if not truth:
        return
    await follow_provider_labels(db, company_id, {c: sorted(found) for c, found in truth.items()}, by="conversation")
    conversations = sorted(truth)
    current = (await db.execute(
        select(ConversationLabel.conversation_id, Label)
        .join(Label, (Label.company_id == ConversationLabel.company_id) & (Label.id == ConversationLabel.label_id))
        .where(ConversationLabel.company_id == company_id, ConversationLabel.conversation_id.in_(conversations))
    )).all()
    wanted = {c: {_name_key_or_none(n) for n in found} for c, found in truth.items()}
    off = [(c, label) for c, label in current if label.name_key not in wanted[c]]
    if not off:
        return
    elsewhere: dict[uuid.UUID, set[str]] = defaultdict(set)
    for conversation_id, flags in await db.execute(
        select(Message.conversation_id, MessageLocation.flags)
        .join(MessageLocation,
              (MessageLocation.company_id == Message.company_id) & (MessageLocation.message_id == Message.id))
        .where(Message.company_id == company_id, Message.conversation_id.in_({c for c, _ in off}),
               MessageLocation.account_id != account_id)
    ):
        elsewhere[conversation_id] |= rules.keywords_of(flags)
    for conversation_id, label in off:
        if label.keyword_key not in elsewhere[conversation_id]:
            await db.execute(delete(ConversationLabel).where(
                ConversationLabel.company_id == company_id,
                ConversationLabel.conversation_id == conversation_id,
                ConversationLabel.label_id == label.id,
            ))


def _name_key_or_none(name: str) -> str | None:
    try:
        return rules.name_key(rules.normalize_name(name))
    except ValidationFailed:  # a name no label can have: it matches none
        return None


async def _conversations(db: AsyncSession, company_id: uuid.UUID, message_ids: set[uuid.UUID]) -> dict:
    found = {}
    ids = list(message_ids)
    for start in range(0, len(ids), 500):
        found.update(dict((await db.execute(
            select(Message.id, Message.conversation_id).where(
                Message.company_id == company_id, Message.id.in_(ids[start : start + 500]))
        )).all()))
    return found


async def _label_from_keyword(db: AsyncSession, company_id: uuid.UUID, keyword: str) -> Label:
    """A label for a keyword another mail client made: its decoded name (numbered if the name is taken)."""
    base = rules.name_for(keyword)
    taken = set(await db.scalars(select(Label.name_key).where(Label.company_id == company_id)))
    name, n = base, 1
    while rules.name_key(name) in taken:
        n += 1
        name = f"{base[: rules.MAX_NAME - 4]} ({n})"
    label = Label(
        company_id=company_id, id=new_id(), name=name, name_key=rules.name_key(name),
        keyword=keyword, keyword_key=rules.keyword_key(keyword),
    )
    db.add(label)
    await db.flush()
    return label


async def _take_off_where_gone(db: AsyncSession, company_id: uuid.UUID, off: set, by_keyword: dict) -> None:
    """A label comes off a conversation once none of its messages' locations carries the keyword."""
    if not off:
        return
    await db.flush()
    conversations = {c for c, _k in off}
    rows = await db.execute(
        select(Message.conversation_id, MessageLocation.flags)
        .join(MessageLocation,
              (MessageLocation.company_id == Message.company_id) & (MessageLocation.message_id == Message.id))
        .where(Message.company_id == company_id, Message.conversation_id.in_(conversations))
    )
    still: dict[uuid.UUID, set[str]] = defaultdict(set)
    for conversation_id, flags in rows:
        still[conversation_id] |= rules.keywords_of(flags)
    for conversation_id, key in off:
        if key not in still[conversation_id]:
            await db.execute(
                delete(ConversationLabel).where(
                    ConversationLabel.company_id == company_id,
                    ConversationLabel.conversation_id == conversation_id,
                    ConversationLabel.label_id == by_keyword[key].id,
                )
            )


async def merge_labels(db: AsyncSession, company_id: uuid.UUID, merged: dict[uuid.UUID, uuid.UUID]) -> None:
    """Threads became one (``merged``: gone -> survivor): the labels of each gone one are its survivor's too."""
    gone = sorted(merged)
    rows = []
    for start in range(0, len(gone), 500):
        rows += (
            await db.execute(
                select(ConversationLabel.conversation_id, ConversationLabel.label_id).where(
                    ConversationLabel.company_id == company_id,
                    ConversationLabel.conversation_id.in_(gone[start : start + 500]),
                )
            )
        ).all()
    await insert_missing(
        db,
        ConversationLabel.__table__,
        [{"company_id": company_id, "conversation_id": merged[cid], "label_id": label_id} for cid, label_id in rows],
    )
