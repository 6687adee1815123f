"""Companies, users, roles, login and API tokens, on SQLite and PostgreSQL."""

import pytest

from salesinbox.domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from salesinbox.domain.tenancy import Plan, Role
from salesinbox.services import tokens, workspace
from tests.conftest import create_tenant


async def test_first_run_creates_the_company_and_an_admin_who_can_log_in(deps):
    tenant = await create_tenant(deps, name="Initech", plan="premium")
    assert tenant.admin.is_admin and tenant.admin.plan is Plan.PREMIUM
    company = await workspace.get_company(deps, tenant.admin)
    assert company.name == "Initech" and company.has_email_sync


async def test_a_wrong_password_or_unknown_email_does_not_log_in(deps, tenant):
    assert await workspace.authenticate(deps, tenant.admin_email, "not-the-password") is None
    assert await workspace.authenticate(deps, "nobody@acme.test", tenant.admin_password) is None


async def test_passwords_are_stored_as_argon2_hashes_only(deps, tenant):
    user = await workspace.add_user(deps, tenant.admin, email="rep1@acme.test", password="Rep-pass-1!")
    from sqlalchemy import select

    from salesinbox.adapters.db.tables import User

    async with deps.reading() as db:
        stored = await db.scalar(select(User.password_hash).where(User.id == user.id))
    assert stored.startswith("$argon2id$") and "Rep-pass-1!" not in stored


async def test_an_admin_adds_users_and_changes_roles_but_a_regular_user_cannot(deps, tenant):
    rep = await workspace.add_user(deps, tenant.admin, email=f"rep-{tenant.company_id}@acme.test",
                                   password="Rep-pass-1!")
    assert rep.role is Role.REGULAR
    rep_actor = await workspace.authenticate(deps, rep.email, "Rep-pass-1!")
    with pytest.raises(PermissionDenied):
        await workspace.add_user(deps, rep_actor, email="x@acme.test", password="Whatever-1!")
    promoted = await workspace.change_role(deps, tenant.admin, rep.id, "admin")
    assert promoted.role is Role.ADMIN
    assert (await workspace.actor_for(deps, tenant.company_id, rep.id)).is_admin  # applies at once


async def test_the_last_admin_cannot_be_demoted(deps, tenant):
    with pytest.raises(Conflict):
        await workspace.change_role(deps, tenant.admin, tenant.admin.user_id, "regular")


async def test_a_login_email_is_unique_and_validated(deps, tenant):
    with pytest.raises(Conflict):
        await workspace.add_user(deps, tenant.admin, email=tenant.admin_email.upper(), password="Another-pw-1")
    with pytest.raises(ValidationFailed) as caught:
        await workspace.add_user(deps, tenant.admin, email="not an email", password="Another-pw-1")
    assert "email" in caught.value.errors
    with pytest.raises(ValidationFailed) as caught:
        await workspace.add_user(deps, tenant.admin, email="short@acme.test", password="short")
    assert "password" in caught.value.errors


async def test_an_api_token_acts_as_its_user_until_revoked(deps, tenant):
    new = await tokens.create_token(deps, tenant.admin, "ci")
    assert new.secret.startswith("si_") and len(new.secret) > 40
    assert await tokens.actor_for_token(deps, new.secret) == tenant.admin
    assert await tokens.actor_for_token(deps, new.secret + "x") is None
    await tokens.revoke_token(deps, tenant.admin, new.token.id)
    assert await tokens.actor_for_token(deps, new.secret) is None
    with pytest.raises(NotFound):
        await tokens.revoke_token(deps, tenant.admin, new.token.id)


async def test_another_companys_user_is_not_found(deps, tenant):
    other = await create_tenant(deps, name="Other Co")
    with pytest.raises(NotFound):
        await workspace.get_user(deps, tenant.admin, other.admin.user_id)
    with pytest.raises(NotFound):
        await workspace.change_role(deps, tenant.admin, other.admin.user_id, "regular")
