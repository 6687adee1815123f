"""Plans, roles and who may use a mail account."""

import uuid

import pytest

from salesinbox.domain.accounts import (
    AccountKind,
    Visibility,
    can_use_account,
    default_visibility_for,
    visibilities_for,
)
from salesinbox.domain.tenancy import Actor, Plan, Role, has_email_sync


@pytest.mark.parametrize(("plan", "included"), [
    (Plan.ESSENTIAL, False), (Plan.ADVANCED, False), (Plan.GROWTH, True), (Plan.PREMIUM, True), (Plan.ULTIMATE, True),
])
def test_email_sync_is_sold_from_growth_up(plan, included):
    assert has_email_sync(plan) is included


def test_an_actor_knows_its_role_and_plan():
    actor = Actor(uuid.uuid4(), uuid.uuid4(), Role.ADMIN, Plan.ADVANCED)
    assert actor.is_admin and not actor.can_sync_email


OWNER, MEMBER, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def test_only_the_owner_uses_a_private_account_not_even_an_admin():
    assert can_use_account(AccountKind.PRIVATE, OWNER, frozenset(), OWNER)
    assert not can_use_account(AccountKind.PRIVATE, OWNER, frozenset({MEMBER}), MEMBER)
    assert not can_use_account(AccountKind.PRIVATE, OWNER, frozenset(), OTHER)


def test_team_members_use_a_team_account_and_nobody_else():
    members = frozenset({MEMBER})
    assert can_use_account(AccountKind.TEAM, OWNER, members, MEMBER)
    assert can_use_account(AccountKind.TEAM, OWNER, members, OWNER)
    assert not can_use_account(AccountKind.TEAM, OWNER, members, OTHER)


def test_private_accounts_are_shared_or_private_and_team_accounts_shared_or_team_only():
    assert visibilities_for(AccountKind.PRIVATE) == (Visibility.SHARED, Visibility.PRIVATE)
    assert visibilities_for(AccountKind.TEAM) == (Visibility.SHARED, Visibility.TEAM_ONLY)
    assert default_visibility_for(AccountKind.PRIVATE) is Visibility.PRIVATE
    assert default_visibility_for(AccountKind.TEAM) is Visibility.TEAM_ONLY
