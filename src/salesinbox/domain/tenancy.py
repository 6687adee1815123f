"""Companies, plans, roles and the actor every use case runs as."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Plan(StrEnum):
    ESSENTIAL = "essential"
    ADVANCED = "advanced"
    GROWTH = "growth"
    PREMIUM = "premium"
    ULTIMATE = "ultimate"

    @property
    def rank(self) -> int:
        return list(Plan).index(self)


#: Email sync (accounts, Sales Inbox) is sold from Growth up.
EMAIL_SYNC_MINIMUM_PLAN = Plan.GROWTH


def has_email_sync(plan: Plan) -> bool:
    return plan.rank >= EMAIL_SYNC_MINIMUM_PLAN.rank


class Role(StrEnum):
    ADMIN = "admin"
    REGULAR = "regular"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a request or command acts as; every use case is scoped by it."""

    company_id: uuid.UUID
    user_id: uuid.UUID
    role: Role
    plan: Plan

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def can_sync_email(self) -> bool:
        return has_email_sync(self.plan)
