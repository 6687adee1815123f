"""Connected mail accounts: kinds, the choices made at connect time, and who may use one."""

from __future__ import annotations

import uuid
from enum import StrEnum


class AccountKind(StrEnum):
    PRIVATE = "private"  # one owner's own mailbox
    TEAM = "team"  # a shared address (sales@) read and sent from by chosen members


class Security(StrEnum):
    TLS = "tls"  # implicit TLS (IMAPS 993, SMTPS 465)
    STARTTLS = "starttls"
    NONE = "none"  # only for servers on a trusted network


class SyncStart(StrEnum):
    """How far back history is imported when an account is connected."""

    THREE_DAYS = "3d"
    ONE_MONTH = "1m"
    THREE_MONTHS = "3m"
    ONE_YEAR = "1y"
    EVERYTHING = "all"


SYNC_START_DAYS: dict[SyncStart, int | None] = {
    SyncStart.THREE_DAYS: 3,
    SyncStart.ONE_MONTH: 30,
    SyncStart.THREE_MONTHS: 91,
    SyncStart.ONE_YEAR: 365,
    SyncStart.EVERYTHING: None,
}


class Visibility(StrEnum):
    SHARED = "shared"
    PRIVATE = "private"  # private accounts only
    TEAM_ONLY = "team_only"  # team accounts only


class ContactPolicy(StrEnum):
    """Whether persons are created from new correspondents."""

    NEVER = "never"
    FROM_SENT = "sent"
    FROM_SENT_AND_RECEIVED = "sent_received"


def visibilities_for(kind: AccountKind) -> tuple[Visibility, ...]:
    if kind is AccountKind.TEAM:
        return (Visibility.SHARED, Visibility.TEAM_ONLY)
    return (Visibility.SHARED, Visibility.PRIVATE)


def default_visibility_for(kind: AccountKind) -> Visibility:
    return Visibility.TEAM_ONLY if kind is AccountKind.TEAM else Visibility.PRIVATE


def can_use_account(
    kind: AccountKind, owner_id: uuid.UUID, member_ids: frozenset[uuid.UUID], user_id: uuid.UUID
) -> bool:
    """Read and send from the account: its owner, and for a team account its members.

    Admins get no exception: a user's mailbox is private even from admins.
    """
    if user_id == owner_id:
        return True
    return kind is AccountKind.TEAM and user_id in member_ids
