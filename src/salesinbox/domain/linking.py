"""The linking rules: which deal, lead or project a conversation belongs to, and why.

Written down in docs/linking.md; every verdict carries its reason, so the
conversation can say why it is or is not linked. The rules, in order:

1. Only people's mail counts. Messages marked bulk or automated (List-Id,
   List-Unsubscribe, Precedence: bulk/list/junk, Auto-Submitted) are left out;
   a conversation of nothing else is "bulk" and never linked automatically.
   An out-of-office reply inside a real conversation therefore changes nothing.
2. External participants are the From / To / Cc addresses of the counted
   messages whose domain is not one of the company's own domains (the domains
   of its users' and connected accounts' addresses). None left: "internal".
3. The blocklist (the company's, and that of each owner of an account that
   holds the conversation) removes an address, or every address of a domain.
   Mixed recipients: the blocked ones are ignored and the others still count.
   Every external participant blocked: "blocked".
4. A person matches when one of their addresses is an external participant.
   An organization matches when one of its domains is an external
   participant's domain, unless that domain is a free-mail one (gmail.com ...):
   a free-mail address matches only the person who has it.
5. Candidates of a kind (deal, lead, project) are its OPEN items whose person or
   organization matches. A won or lost deal collects no new mail.
6. For each kind on its own: a conversation that already has a link of that
   kind keeps it (links are never removed automatically); else exactly one
   candidate is linked, with its reason; several candidates are never guessed
   between: the conversation "needs linking" and the user picks. An item the
   user unlinked is never linked again automatically.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

#: Domains anyone can get an address on: they say nothing about an organization.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "ymail.com",
        "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.de", "hotmail.fr", "live.com", "msn.com",
        "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "pm.me", "zoho.com",
        "gmx.com", "gmx.de", "gmx.net", "web.de", "t-online.de", "mail.com", "yandex.ru", "yandex.com",
        "mail.ru", "wp.pl", "o2.pl", "onet.pl", "interia.pl", "op.pl", "tlen.pl", "fastmail.com",
        "hey.com", "tutanota.com", "qq.com", "163.com", "126.com", "laposte.net", "orange.fr", "free.fr",
        "libero.it", "virgilio.it", "seznam.cz", "rediffmail.com",
    }
)

KINDS = ("deal", "lead", "project")


class Outcome(StrEnum):
    LINKED = "linked"  # at least one link, automatic or by hand
    NEEDS_LINKING = "needs_linking"  # several candidates of a kind: the user picks
    NO_MATCH = "no_match"  # no open item of any matching person or organization
    INTERNAL = "internal"  # every participant is on the company's own domains
    BULK = "bulk"  # only bulk or automated mail
    BLOCKED = "blocked"  # every external participant is on a blocklist


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower() if "@" in address else ""


def is_free_mail(domain: str) -> bool:
    return domain.lower() in FREE_MAIL_DOMAINS


@dataclass(frozen=True)
class Candidate:
    """An open item of a matching person or organization, and how it matched."""

    kind: str  # deal | lead | project
    item_id: object
    title: str
    via: str  # "person" | "organization"
    via_name: str  # the person's or organization's name
    via_value: str  # the matching address or domain

    def reason(self) -> dict[str, str]:
        return {"rule": f"{self.via}_{'email' if self.via == 'person' else 'domain'}",
                "name": self.via_name, "value": self.via_value, "kind": self.kind}


@dataclass(frozen=True)
class Facts:
    """What the rules look at, gathered by the service."""

    participants: frozenset[str]  # addresses on the counted (not bulk) messages
    any_message: bool  # the conversation has at least one message
    own_domains: frozenset[str]
    blocked: frozenset[str] = frozenset()  # addresses and domains

    def is_blocked(self, address: str) -> bool:
        return address in self.blocked or domain_of(address) in self.blocked


@dataclass(frozen=True)
class Matching:
    """External participants after the blocklist, and the verdict when none are left."""

    external: frozenset[str]
    outcome: Outcome | None  # None: go on and look for candidates


def match_participants(facts: Facts) -> Matching:
    if facts.any_message and not facts.participants:
        return Matching(frozenset(), Outcome.BULK)
    external = frozenset(a for a in facts.participants if domain_of(a) and domain_of(a) not in facts.own_domains)
    if not external:
        return Matching(external, Outcome.INTERNAL)
    allowed = frozenset(a for a in external if not facts.is_blocked(a))
    if not allowed:
        return Matching(allowed, Outcome.BLOCKED)
    return Matching(allowed, None)


def matching_domains(external: Iterable[str]) -> frozenset[str]:
    """The domains an organization may match on: never free-mail ones."""
    return frozenset(d for d in (domain_of(a) for a in external) if d and not is_free_mail(d))


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    new_links: tuple[Candidate, ...] = ()
    ambiguous: dict[str, tuple[Candidate, ...]] = field(default_factory=dict)  # kind -> candidates


def decide(
    matching: Matching,
    candidates: Iterable[Candidate],
    linked_kinds: frozenset[str],
    dismissed: frozenset[tuple[str, object]],
) -> Verdict:
    """Apply rules 5 and 6. ``linked_kinds``: kinds the conversation already has an active link of."""
    if matching.outcome is not None:
        return Verdict(Outcome.LINKED if linked_kinds else matching.outcome)
    by_kind: dict[str, dict[object, Candidate]] = {}
    for c in sorted(candidates, key=lambda c: (c.via != "person", c.via_value, str(c.item_id))):
        if (c.kind, c.item_id) in dismissed:
            continue
        by_kind.setdefault(c.kind, {}).setdefault(c.item_id, c)  # a person's match wins over a domain's
    new_links: list[Candidate] = []
    ambiguous: dict[str, tuple[Candidate, ...]] = {}
    for kind in KINDS:
        found = by_kind.get(kind, {})
        if kind in linked_kinds or not found:
            continue
        if len(found) == 1:
            new_links.append(next(iter(found.values())))
        else:
            ambiguous[kind] = tuple(found.values())
    if ambiguous:
        outcome = Outcome.NEEDS_LINKING
    elif new_links or linked_kinds:
        outcome = Outcome.LINKED
    else:
        outcome = Outcome.NO_MATCH
    return Verdict(outcome, tuple(new_links), ambiguous)
