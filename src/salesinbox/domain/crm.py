"""CRM items that conversations link to: persons, organizations, deals, leads, projects.

Rules about addresses and domains live here because linking (step 5) matches
conversations to items by exactly these normalised forms.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from salesinbox.domain.errors import ValidationFailed
from salesinbox.domain.text import Text


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class LeadStatus(StrEnum):
    OPEN = "open"
    ARCHIVED = "archived"


class ProjectStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELED = "canceled"


#: The default pipeline's stages, in order.
DEFAULT_STAGES = (
    "Qualified",
    "Contact made",
    "Demo scheduled",
    "Proposal made",
    "Negotiations started",
)

#: "No such deal." and the like: one message a kind, because other languages inflect the noun.
NO_SUCH_ITEM = {
    "deal": Text("No such deal."),
    "lead": Text("No such lead."),
    "project": Text("No such project."),
    "person": Text("No such person."),
    "organization": Text("No such organization."),
}

# Deliberately simple: the full syntax check of typed addresses happens at the
# edge (email-validator); here we only need a stable key for matching.
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def normalize_email(address: str) -> str:
    """The matching key of an address: trimmed, lower-cased (RFC 5321 allows
    case-sensitive local parts, but no provider we meet uses them)."""
    key = address.strip().lower()
    if not _ADDRESS.match(key):
        raise ValidationFailed({"email": Text("“%(address)s” is not an email address.", address=address.strip())})
    return key


def email_domain(address: str) -> str:
    return normalize_email(address).rsplit("@", 1)[1]


def normalize_domain(domain: str) -> str:
    """A domain as typed (``@Acme.com``, ``https://www.acme.com/``) to its key."""
    key = domain.strip().lower()
    key = re.sub(r"^[a-z]+://", "", key).split("/", 1)[0].lstrip("@")
    key = key.removeprefix("www.").rstrip(".")
    try:
        key = key.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValidationFailed({"domains": Text("“%(domain)s” is not a domain.", domain=domain.strip())}) from exc
    if not _DOMAIN.match(key):
        raise ValidationFailed({"domains": Text("“%(domain)s” is not a domain.", domain=domain.strip())})
    return key


def parse_money(value: str | int | float | Decimal | None) -> Decimal:
    if value is None or value == "":
        return Decimal("0.00")  # the same two places as a stored amount, so a create answers as a read does
    try:
        amount = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation as exc:
        raise ValidationFailed({"value": Text("Enter a number, such as 1500 or 1500.50.")}) from exc
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e15"):
        raise ValidationFailed({"value": Text("Enter an amount between 0 and 999,999,999,999,999.")})
    return amount.quantize(Decimal("0.01"))


def normalize_currency(code: str) -> str:
    key = (code or "").strip().upper()
    if not _CURRENCY.match(key):
        raise ValidationFailed({"currency": Text("Use a three-letter ISO 4217 code, such as EUR or USD.")})
    return key


def require_text(field: str, value: str | None, *, max_length: int = 255) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationFailed({field: Text("This field is required.")})
    if len(text) > max_length:
        raise ValidationFailed({field: Text("Use at most %(max)s characters.", max=max_length)})
    return text


def unique_keys(values: list[str], normalize) -> list[str]:
    """Normalise each value and drop duplicates, keeping the first order."""
    seen: dict[str, None] = {}
    for value in values:
        if value and value.strip():
            seen.setdefault(normalize(value), None)
    return list(seen)
