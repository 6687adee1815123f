"""Linking conversations to deals, leads and projects: automatically, retroactively, by hand.

The rules are ``domain.linking``; this module gathers their facts in a few
set-based queries per batch (the sync calls ``refresh`` for every batch it
stores) and writes the verdicts: new links with their reasons, and one
``ConversationLinkState`` per conversation saying why it is or is not linked.

Retroactive linking: when a person's addresses, an organization's domains,
an item, or a blocklist changes, ``refresh_matching`` re-runs the rules on
the conversations those addresses and domains take part in.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from salesinbox.adapters.db.ids import new_id
from salesinbox.adapters.db.tables import (
    BlockedAddress,
    ConversationLink,
    ConversationLinkState,
    ConversationParticipant,
    Deal,
    EmailAccount,
    Lead,
    Message,
    MessageLocation,
    Organization,
    OrganizationDomain,
    Person,
    PersonEmail,
    Project,
    User,
)
from salesinbox.adapters.db.upsert import insert_rows
from salesinbox.domain.linking import (
    Candidate,
    Facts,
    Outcome,
    decide,
    domain_of,
    match_participants,
    matching_domains,
)

ITEM_TABLES = {"deal": Deal, "lead": Lead, "project": Project}
_OPEN = "open"
_BATCH = 400


@dataclass
class _Conversation:
    participants: set[str]  # every address, bulk messages included: for person and organization views
    counted: set[str]  # addresses on messages that are not bulk
    any_message: bool = False
    owners: set[uuid.UUID] | None = None


async def own_domains(db: AsyncSession, company_id: uuid.UUID) -> frozenset[str]:
    """The company's own domains: of its users' and its connected accounts' addresses."""
    users = await db.scalars(select(User.email).where(User.company_id == company_id))
    accounts = await db.scalars(select(EmailAccount.address).where(EmailAccount.company_id == company_id))
    return frozenset(domain_of(a) for a in [*users, *accounts] if "@" in a)


async def mark_stale(db: AsyncSession, company_id: uuid.UUID, conversation_ids: Iterable[uuid.UUID]) -> None:
    """New mail in these conversations: drop their verdicts, so that ``refresh_pending`` looks at them again."""
    ids = sorted(set(conversation_ids))
    for start in range(0, len(ids), 500):
        await db.execute(
            delete(ConversationLinkState).where(
                ConversationLinkState.company_id == company_id,
                ConversationLinkState.conversation_id.in_(ids[start : start + 500]),
            )
        )


async def refresh(db: AsyncSession, company_id: uuid.UUID, conversation_ids: Iterable[uuid.UUID]) -> None:
    """Re-run the rules on these conversations, inside the caller's write transaction."""
    from salesinbox.adapters.db.tables import Conversation

    wanted = sorted(set(conversation_ids))
    ids: list[uuid.UUID] = []
    for start in range(0, len(wanted), 500):  # a thread merge may have removed some meanwhile
        ids += await db.scalars(
            select(Conversation.id).where(
                Conversation.company_id == company_id, Conversation.id.in_(wanted[start : start + 500])
            )
        )
    ids.sort()
    if not ids:
        return
    own = await own_domains(db, company_id)
    company_blocked = frozenset(
        await db.scalars(
            select(BlockedAddress.value).where(
                BlockedAddress.company_id == company_id, BlockedAddress.user_id.is_(None)
            )
        )
    )
    personal = await _personal_blocklists(db, company_id)
    for start in range(0, len(ids), _BATCH):
        await _refresh_batch(db, company_id, ids[start : start + _BATCH], own, company_blocked, personal)


async def _refresh_batch(
    db: AsyncSession,
    company_id: uuid.UUID,
    ids: list[uuid.UUID],
    own: frozenset[str],
    company_blocked: frozenset[str],
    personal: dict[uuid.UUID, frozenset[str]],
) -> None:
    conversations = await _gather(db, company_id, ids, set(personal))
    await _write_participants(db, company_id, ids, conversations)

    matchings = {}
    for cid, c in conversations.items():
        blocked = company_blocked.union(*(personal.get(o, frozenset()) for o in c.owners or ()))
        matchings[cid] = match_participants(Facts(frozenset(c.counted), c.any_message, own, blocked))
    external = {a for m in matchings.values() if m.outcome is None for a in m.external}
    candidates = await _candidates(db, company_id, external)

    links = await db.execute(
        select(
            ConversationLink.conversation_id,
            ConversationLink.item_type,
            ConversationLink.item_id,
            ConversationLink.removed_at,
        ).where(ConversationLink.company_id == company_id, ConversationLink.conversation_id.in_(ids))
    )
    linked: dict[uuid.UUID, set[str]] = defaultdict(set)
    dismissed: dict[uuid.UUID, set[tuple[str, object]]] = defaultdict(set)
    for cid, kind, item_id, removed_at in links:
        (dismissed[cid].add((kind, item_id)) if removed_at else linked[cid].add(kind))

    new_links, states = [], []
    now = dt.datetime.now(dt.UTC)
    for cid in ids:
        matching = matchings[cid]
        mine = [c for a in matching.external for c in candidates.get(a, ())]
        mine += [c for d in matching_domains(matching.external) for c in candidates.get(d, ())]
        verdict = decide(matching, mine, frozenset(linked[cid]), frozenset(dismissed[cid]))
        for c in verdict.new_links:
            new_links.append(
                {
                    "company_id": company_id,
                    "id": new_id(),
                    "conversation_id": cid,
                    "item_type": c.kind,
                    "item_id": c.item_id,
                    "origin": "auto",
                    "reason": json.dumps(c.reason()),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        detail = {kind: [_candidate_json(c) for c in found] for kind, found in verdict.ambiguous.items()}
        states.append(
            {
                "company_id": company_id,
                "conversation_id": cid,
                "outcome": verdict.outcome.value,
                "detail": json.dumps({"candidates": detail}),
                "evaluated_at": now,
            }
        )
    await db.execute(
        delete(ConversationLinkState).where(
            ConversationLinkState.company_id == company_id, ConversationLinkState.conversation_id.in_(ids)
        )
    )
    await insert_rows(db, ConversationLinkState.__table__, states)
    if new_links:
        await db.execute(insert(ConversationLink.__table__), new_links)


def _candidate_json(c: Candidate) -> dict:
    return {"item_type": c.kind, "item_id": str(c.item_id), "title": c.title, **c.reason()}


async def _gather(
    db: AsyncSession, company_id: uuid.UUID, ids: list[uuid.UUID], blocking: set[uuid.UUID]
) -> dict[uuid.UUID, _Conversation]:
    """Participants of each conversation, and its owners among ``blocking`` (users with a blocklist of their own:
    the only owners the rules look at)."""
    found = {cid: _Conversation(set(), set(), owners=set()) for cid in ids}
    m, place = Message.__table__.c, MessageLocation.__table__.c  # Core: no ORM loading per row
    rows = await db.execute(
        select(m.id, m.conversation_id, m.participants, m.is_bulk).where(
            m.company_id == company_id, m.conversation_id.in_(ids)
        )
    )
    conversation_of: dict[uuid.UUID, uuid.UUID] = {}
    for mid, cid, participants, is_bulk in rows:
        conversation_of[mid] = cid
        c = found[cid]
        c.any_message = True
        addresses = {a.lower() for a in participants.split() if "@" in a}
        c.participants |= addresses
        if not is_bulk:
            c.counted |= addresses
    if not blocking:  # nobody has a blocklist of their own: owners change nothing (a sync's usual case)
        return found
    # The accounts holding those messages, by message id: a join from the conversations' side
    # let SQLite's planner start from every location of the company instead (quadratic in a sync).
    accounts = await db.execute(
        select(EmailAccount.id, EmailAccount.owner_id).where(
            EmailAccount.company_id == company_id, EmailAccount.owner_id.in_(blocking)
        )
    )
    owner_of = dict(accounts.all())
    if not owner_of:
        return found
    for chunk in _chunks(list(conversation_of)):
        places = await db.execute(
            select(place.message_id, place.account_id)
            .where(place.company_id == company_id, place.message_id.in_(chunk), place.account_id.in_(list(owner_of)))
            .distinct()
        )
        for mid, account_id in places:
            if account_id in owner_of:
                found[conversation_of[mid]].owners.add(owner_of[account_id])
    return found


async def _personal_blocklists(db: AsyncSession, company_id: uuid.UUID) -> dict[uuid.UUID, frozenset[str]]:
    """Every user's own blocklist in the company (few users have one, of a few entries each)."""
    rows = await db.execute(
        select(BlockedAddress.user_id, BlockedAddress.value).where(
            BlockedAddress.company_id == company_id, BlockedAddress.user_id.is_not(None)
        )
    )
    lists: dict[uuid.UUID, set[str]] = defaultdict(set)
    for user_id, value in rows:
        lists[user_id].add(value)
    return {u: frozenset(v) for u, v in lists.items()}


async def _write_participants(db, company_id, ids, conversations: dict[uuid.UUID, _Conversation]) -> None:
    await db.execute(
        delete(ConversationParticipant).where(
            ConversationParticipant.company_id == company_id, ConversationParticipant.conversation_id.in_(ids)
        )
    )
    rows = [
        {"company_id": company_id, "conversation_id": cid, "email": a[:320], "domain": domain_of(a)[:253]}
        for cid, c in conversations.items()
        for a in sorted(c.participants)
    ]
    await insert_rows(db, ConversationParticipant.__table__, rows)


async def _candidates(db: AsyncSession, company_id: uuid.UUID, external: set[str]) -> dict[str, list[Candidate]]:
    """Open items of the persons and organizations matching these addresses, keyed by address or domain."""
    if not external:
        return {}
    persons: dict[uuid.UUID, list[tuple[str, str]]] = defaultdict(list)  # person -> (address, name)
    for chunk in _chunks(sorted(external)):
        for person_id, email, name in await db.execute(
            select(PersonEmail.person_id, PersonEmail.email, Person.name)
            .join(Person, (Person.company_id == PersonEmail.company_id) & (Person.id == PersonEmail.person_id))
            .where(PersonEmail.company_id == company_id, PersonEmail.email.in_(chunk))
        ):
            persons[person_id].append((email, name))
    orgs: dict[uuid.UUID, list[tuple[str, str]]] = defaultdict(list)  # organization -> (domain, name)
    domains = sorted(matching_domains(external))
    for chunk in _chunks(domains):
        for org_id, domain, name in await db.execute(
            select(OrganizationDomain.organization_id, OrganizationDomain.domain, Organization.name)
            .join(
                Organization,
                (Organization.company_id == OrganizationDomain.company_id)
                & (Organization.id == OrganizationDomain.organization_id),
            )
            .where(OrganizationDomain.company_id == company_id, OrganizationDomain.domain.in_(chunk))
        ):
            orgs[org_id].append((domain, name))
    found: dict[str, list[Candidate]] = defaultdict(list)
    if not persons and not orgs:
        return found
    for kind, table in ITEM_TABLES.items():
        conditions = []
        if persons:
            conditions.append(table.person_id.in_(list(persons)))
        if orgs:
            conditions.append(table.organization_id.in_(list(orgs)))
        rows = await db.execute(
            select(table.id, table.title, table.person_id, table.organization_id).where(
                table.company_id == company_id, table.status == _OPEN, or_(*conditions)
            )
        )
        for item_id, title, person_id, org_id in rows:
            for address, name in persons.get(person_id, ()):
                found[address].append(Candidate(kind, item_id, title, "person", name, address))
            for domain, name in orgs.get(org_id, ()):
                found[domain].append(Candidate(kind, item_id, title, "organization", name, domain))
    return found


def _chunks(values: list[str], size: int = 500):
    for start in range(0, len(values), size):
        yield values[start : start + size]


async def refresh_matching(
    db: AsyncSession, company_id: uuid.UUID, *, emails: Iterable[str] = (), domains: Iterable[str] = ()
) -> None:
    """Retroactive linking: re-run the rules on every conversation these addresses or domains take part in."""
    emails, domains = sorted({e.lower() for e in emails}), sorted({d.lower() for d in domains})
    ids: set[uuid.UUID] = set()
    for chunk in _chunks(emails):
        ids.update(
            await db.scalars(
                select(ConversationParticipant.conversation_id).where(
                    ConversationParticipant.company_id == company_id, ConversationParticipant.email.in_(chunk)
                )
            )
        )
    for chunk in _chunks(domains):
        ids.update(
            await db.scalars(
                select(ConversationParticipant.conversation_id).where(
                    ConversationParticipant.company_id == company_id, ConversationParticipant.domain.in_(chunk)
                )
            )
        )
    await refresh(db, company_id, ids)


async def contact_keys(
    db: AsyncSession, company_id: uuid.UUID, person_id: uuid.UUID | None, organization_id: uuid.UUID | None
) -> tuple[list[str], list[str]]:
    """The addresses of a person and the domains of an organization (and of the person's organization)."""
    emails: list[str] = []
    org_ids = {organization_id} - {None}
    if person_id:
        emails = list(
            await db.scalars(
                select(PersonEmail.email).where(
                    PersonEmail.company_id == company_id, PersonEmail.person_id == person_id
                )
            )
        )
    domains = (
        list(
            await db.scalars(
                select(OrganizationDomain.domain).where(
                    OrganizationDomain.company_id == company_id, OrganizationDomain.organization_id.in_(org_ids)
                )
            )
        )
        if org_ids
        else []
    )
    return emails, domains


async def refresh_for_contacts(
    db: AsyncSession, company_id: uuid.UUID, person_id: uuid.UUID | None, organization_id: uuid.UUID | None
) -> None:
    emails, domains = await contact_keys(db, company_id, person_id, organization_id)
    await refresh_matching(db, company_id, emails=emails, domains=domains)


async def refresh_pending(db: AsyncSession, company_id: uuid.UUID, *, limit: int = 2000) -> int:
    """Up to ``limit`` conversations without a verdict: new mail since, or stored before linking existed.

    The sync calls it at the end of a pass (every 30 s of a long one) and
    once before a pass, so an upgraded installation catches up. Returns how many it looked at.
    """
    from salesinbox.adapters.db.tables import Conversation

    evaluated = select(ConversationLinkState.conversation_id).where(ConversationLinkState.company_id == company_id)
    ids = list(
        await db.scalars(
            select(Conversation.id)
            .where(Conversation.company_id == company_id, Conversation.id.not_in(evaluated))
            .limit(limit)
        )
    )
    await refresh(db, company_id, ids)
    return len(ids)


OUTCOME_WORDS = {
    Outcome.LINKED: "Linked.",
    Outcome.NEEDS_LINKING: "Several open items match: pick the right one.",
    Outcome.NO_MATCH: "No open deal, lead or project of a matching person or organization.",
    Outcome.INTERNAL: "Not linked automatically: every participant is on the company's own domains.",
    Outcome.BULK: "Not linked automatically: bulk or automated mail.",
    Outcome.BLOCKED: "Not linked automatically: every outside participant is on a blocklist.",
}


def describe_reason(reason: dict) -> str:
    """A link's reason in plain words ("linked because ...")."""
    rule = reason.get("rule")
    if rule == "manual":
        return f"Linked by hand by {reason.get('name') or 'a user'}."
    if rule == "person_email":
        return (
            f"Linked because {reason.get('value')} is an email address of {reason.get('name')}, "
            f"the person on this {reason.get('kind')}."
        )
    if rule == "organization_domain":
        return (
            f"Linked because {reason.get('value')} is a domain of {reason.get('name')}, "
            f"the organization on this {reason.get('kind')}."
        )
    return "Linked."


async def merge_conversations(db: AsyncSession, company_id: uuid.UUID, merged: dict[uuid.UUID, uuid.UUID]) -> None:
    """Late parents merged threads: the links and visibility settings of each gone conversation
    (``merged``: gone -> survivor) move to its survivor.

    Where both have a link to the same item (or a setting for the same
    account), the survivor's row stays. Participants and the verdict are
    recomputed for the survivor by the caller's ``refresh``. A few set-based
    statements for the whole batch: an initial sync merges hundreds of threads.
    """
    from salesinbox.adapters.db.tables import ConversationVisibility

    gone = sorted(merged)
    for model, key in ((ConversationLink, ("item_type", "item_id")), (ConversationVisibility, ("account_id",))):
        moving = [
            row
            for chunk in _chunks(gone)
            for row in await db.scalars(
                select(model).where(model.company_id == company_id, model.conversation_id.in_(chunk))
            )
        ]
        if not moving:
            continue
        survivors = sorted({merged[row.conversation_id] for row in moving})
        columns = [getattr(model, name) for name in key]
        taken = {
            (cid, *rest)
            for chunk in _chunks(survivors)
            for cid, *rest in await db.execute(
                select(model.conversation_id, *columns).where(
                    model.company_id == company_id, model.conversation_id.in_(chunk)
                )
            )
        }
        for row in moving:
            place = (merged[row.conversation_id], *(getattr(row, name) for name in key))
            if place in taken:
                await db.delete(row)
            else:
                row.conversation_id = place[0]
                taken.add(place)
        await db.flush()
    for table in (ConversationLinkState, ConversationParticipant):
        for chunk in _chunks(gone):
            await db.execute(delete(table).where(table.company_id == company_id, table.conversation_id.in_(chunk)))


# ---- persons from correspondents -------------------------------------------------------------

#: Addresses that are never a person: robots and bounces.
_ROBOT_LOCAL_PARTS = frozenset({
    "noreply", "no-reply", "donotreply", "do-not-reply", "mailer-daemon", "postmaster", "bounce", "bounces",
    "notifications", "notification", "newsletter", "unsubscribe",
})


@dataclass(frozen=True)
class ContactRule:
    """An account's contact-creation policy, applied to the mail it syncs.

    "sent": the To / Cc / Bcc of mail the account sent (its Sent folder, or
    From its own address); "sent_received": also the senders of mail it
    received. Never from bulk or automated mail, the company's own domains,
    a blocklist, robot addresses, or an address a person already has.
    """

    policy: str  # never | sent | sent_received
    address: str  # the account's own address
    owner_id: uuid.UUID
    sent_folder: bool  # the batch comes from the Sent folder


def correspondents(rule: ContactRule, messages: Iterable) -> dict[str, str]:
    """Address -> display name of the people the rule would make persons of, from parsed messages."""
    if rule.policy not in ("sent", "sent_received"):
        return {}
    own = rule.address.lower()
    found: dict[str, str] = {}
    for p in messages:
        if p.is_bulk:
            continue
        sender = (p.from_.email.lower() if p.from_ and p.from_.email else "")
        if rule.sent_folder or sender == own:
            people = [*p.to, *p.cc, *p.bcc]
        elif rule.policy == "sent_received" and p.from_:
            people = [p.from_]
        else:
            people = []
        for a in people:
            email = (a.email or "").lower()
            if "@" in email and email != own and email.split("@", 1)[0] not in _ROBOT_LOCAL_PARTS:
                found.setdefault(email, (a.name or "").strip())
    return found


async def create_persons(db: AsyncSession, company_id: uuid.UUID, rule: ContactRule, people: dict[str, str]) -> int:
    """Create a person for each new correspondent (inside the caller's transaction); returns how many."""
    if not people:
        return 0
    own = await own_domains(db, company_id)
    blocked = set(
        await db.scalars(
            select(BlockedAddress.value).where(
                BlockedAddress.company_id == company_id,
                or_(BlockedAddress.user_id.is_(None), BlockedAddress.user_id == rule.owner_id),
            )
        )
    )
    wanted = {
        e: n for e, n in people.items()
        if domain_of(e) not in own and e not in blocked and domain_of(e) not in blocked and len(e) <= 320
    }
    for chunk in _chunks(sorted(wanted)):
        for taken in await db.scalars(
            select(PersonEmail.email).where(PersonEmail.company_id == company_id, PersonEmail.email.in_(chunk))
        ):
            wanted.pop(taken, None)
    if not wanted:
        return 0
    now = dt.datetime.now(dt.UTC)
    persons, emails = [], []
    for email, name in sorted(wanted.items()):
        person_id = new_id()
        persons.append({"company_id": company_id, "id": person_id, "name": (name or email)[:200], "phone": "",
                        "organization_id": None, "owner_id": rule.owner_id, "created_at": now, "updated_at": now})
        emails.append({"company_id": company_id, "id": new_id(), "person_id": person_id, "email": email,
                       "position": 0, "created_at": now, "updated_at": now})
    created = 0
    for start in range(0, len(persons), 500):
        created += await _insert_persons(db, persons[start : start + 500], emails[start : start + 500])
    return created


async def _insert_persons(db: AsyncSession, persons: list[dict], emails: list[dict]) -> int:
    """Insert in one go; if another process just gave one of the addresses to a person, one by one."""
    try:
        async with db.begin_nested():
            await db.execute(insert(Person.__table__), persons)
            await db.execute(insert(PersonEmail.__table__), emails)
        return len(persons)
    except IntegrityError:
        if len(persons) == 1:
            return 0
    created = 0
    for person, email in zip(persons, emails, strict=True):
        created += await _insert_persons(db, [person], [email])
    return created
