"""Connecting mail accounts against a real Dovecot and SMTP server, on SQLite and PostgreSQL."""

import uuid

import pytest
from sqlalchemy import select

from salesinbox.adapters.db.tables import EmailAccount
from salesinbox.domain.accounts import AccountKind, Security
from salesinbox.domain.errors import Conflict, NotFound, PermissionDenied, PlanRequired, ValidationFailed
from salesinbox.services import accounts, workspace
from salesinbox.services.accounts import AccountInput, ConnectionFailed
from tests.conftest import create_tenant


def account_input(mailbox, *, password=None, **overrides) -> AccountInput:
    values = dict(
        address=mailbox.address, login=mailbox.login, password=password or mailbox.password,
        imap_host=mailbox.imap_host, imap_port=mailbox.imap_port, imap_security=Security.NONE,
        smtp_host=mailbox.smtp_host, smtp_port=mailbox.smtp_port, smtp_security=Security.NONE,
    )
    values.update(overrides)
    return AccountInput(**values)


async def _count_accounts(deps, company_id) -> int:
    async with deps.reading() as db:
        return len((await db.scalars(select(EmailAccount.id).where(EmailAccount.company_id == company_id))).all())


async def test_connecting_with_the_right_password_tests_then_saves_the_account(deps, tenant, mailbox):
    view = await accounts.connect_account(deps, tenant.admin, account_input(mailbox))
    assert view.address == mailbox.address and view.kind is AccountKind.PRIVATE
    assert view.last_test_at is not None and view.last_test_error is None
    assert view.default_visibility == "private"
    assert (await accounts.test_account(deps, tenant.admin, view.id)).ok


async def test_a_wrong_password_is_explained_in_plain_words_and_nothing_is_saved(deps, tenant, mailbox):
    with pytest.raises(ConnectionFailed) as caught:
        await accounts.connect_account(deps, tenant.admin, account_input(mailbox, password="wrong-password"))
    report = caught.value.report
    assert report.imap_error and "password" in report.imap_error.lower()
    assert report.smtp_error and "password" in report.smtp_error.lower()
    assert await _count_accounts(deps, tenant.company_id) == 0


async def test_an_unreachable_host_is_explained(deps, tenant, mailbox):
    report = await accounts.test_connection(deps, tenant.admin, account_input(mailbox, imap_port=1, smtp_port=1))
    assert not report.ok
    assert "reach" in report.imap_error.lower() or "unreachable" in report.imap_error.lower()


async def test_the_password_is_encrypted_at_rest(deps, tenant, mailbox):
    view = await accounts.connect_account(deps, tenant.admin, account_input(mailbox))
    async with deps.reading() as db:
        stored = await db.scalar(select(EmailAccount.secret).where(EmailAccount.id == view.id))
    assert mailbox.password not in stored and deps.secrets.decrypt(stored) == mailbox.password


async def test_a_saved_account_whose_password_changed_fails_its_test_and_records_why(deps, tenant, mailbox):
    view = await accounts.connect_account(deps, tenant.admin, account_input(mailbox, password="stale"), verify=False)
    report = await accounts.test_account(deps, tenant.admin, view.id)
    assert not report.ok
    again = await accounts.access_account(deps, tenant.admin, view.id)
    assert again.last_test_error and "password" in again.last_test_error.lower()
    assert "stale" not in again.last_test_error


async def test_an_address_is_connected_once_per_company(deps, tenant, mailbox):
    await accounts.connect_account(deps, tenant.admin, account_input(mailbox))
    with pytest.raises(Conflict):
        await accounts.connect_account(deps, tenant.admin, account_input(mailbox))


async def test_a_private_account_is_its_owners_alone_even_against_an_admin(deps, tenant, mailbox):
    rep = await workspace.add_user(deps, tenant.admin, email=f"rep-{mailbox.address}", password="Rep-pass-1!")
    rep_actor = await workspace.authenticate(deps, rep.email, "Rep-pass-1!")
    view = await accounts.connect_account(deps, rep_actor, account_input(mailbox))
    assert [a.id for a in await accounts.list_accounts(deps, rep_actor)] == [view.id]
    assert await accounts.list_accounts(deps, tenant.admin) == []
    with pytest.raises(NotFound):
        await accounts.access_account(deps, tenant.admin, view.id)
    with pytest.raises(NotFound):
        await accounts.test_account(deps, tenant.admin, view.id)


async def test_team_members_use_a_team_account_and_a_membership_change_applies_at_once(deps, tenant, mailbox):
    rep = await workspace.add_user(deps, tenant.admin, email=f"member-{mailbox.address}", password="Rep-pass-1!")
    rep_actor = await workspace.authenticate(deps, rep.email, "Rep-pass-1!")
    view = await accounts.connect_account(deps, tenant.admin, account_input(
        mailbox, kind=AccountKind.TEAM, member_ids=[rep.id]))
    assert set(view.member_ids) == {tenant.admin.user_id, rep.id} and view.default_visibility == "team_only"
    assert (await accounts.access_account(deps, rep_actor, view.id)).id == view.id
    with pytest.raises(PermissionDenied):
        await accounts.set_team_members(deps, rep_actor, view.id, [])
    await accounts.set_team_members(deps, tenant.admin, view.id, [])
    with pytest.raises(NotFound):
        await accounts.access_account(deps, rep_actor, view.id)


async def test_a_company_below_growth_cannot_connect_accounts(deps, mailbox):
    small = await create_tenant(deps, plan="advanced")
    with pytest.raises(PlanRequired) as caught:
        await accounts.connect_account(deps, small.admin, account_input(mailbox))
    assert "Growth" in str(caught.value)
    with pytest.raises(PlanRequired):
        await accounts.list_accounts(deps, small.admin)


async def test_presets_fill_servers_and_the_provider_limit(deps, tenant):
    report_input = AccountInput(address="x@gmail.com", password="pw", provider="gmail")
    resolved = accounts._resolve(report_input)
    assert (resolved.imap.host, resolved.imap.port, resolved.imap.security) == ("imap.gmail.com", 993, "tls")
    assert resolved.limit_bytes == 25 * 1024 * 1024
    with pytest.raises(ValidationFailed):
        accounts._resolve(AccountInput(address="x@corp.example", password="pw", provider="nope"))
    with pytest.raises(ValidationFailed) as caught:
        accounts._resolve(AccountInput(address="x@corp.example", password="pw"))
    assert "imap_host" in caught.value.errors


async def test_tls_against_a_server_with_an_untrusted_certificate_is_refused_in_plain_words(deps, tenant, dovecot_tls):
    address = f"tls-{uuid.uuid4().hex[:12]}@example.test"
    dovecot_tls.add_user(address, "tls-pass-1")
    data = AccountInput(address=address, password="tls-pass-1", imap_host="localhost",
                        imap_port=dovecot_tls.imaps_port, imap_security=Security.TLS, smtp_host="localhost",
                        smtp_port=dovecot_tls.submissions_port, smtp_security=Security.TLS)
    report = await accounts.test_connection(deps, tenant.admin, data)
    assert not report.ok and "certificate" in report.imap_error.lower()
