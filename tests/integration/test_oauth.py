"""OAuth 2.0 accounts end to end: a local identity provider (tests.rig.idp) speaking real OAuth over
HTTP, and a real Dovecot whose oauth2 passdb asks it about every XOAUTH2 token, on SQLite and PostgreSQL.

Sign-in with code + PKCE + state, XOAUTH2 for IMAP sync and SMTP submission, refresh before expiry with
the rotated refresh token saved before use, one refresher per account, invalid_grant -> re-authorisation
needed (sync stopped, nothing retried), transient failures retried."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import uuid
from email import policy
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import pytest
from imapclient import IMAPClient
from sqlalchemy import update

from salesinbox import bootstrap
from salesinbox.adapters.db.tables import AccountOAuthToken, EmailAccount
from salesinbox.adapters.oauth.client import AuthlibOAuthClient, OAuthApp
from salesinbox.domain.oauth import OAuthTokenError, ReauthorisationNeeded
from salesinbox.domain.providers import oauth_endpoints
from salesinbox.services import oauth, oauth_sign_in, outbox, sync
from salesinbox.services.oauth_sign_in import SignInRefused
from salesinbox.services.outbox import OutgoingMessage
from salesinbox.workers import sync_supervisor

REDIRECT = "http://127.0.0.1:9/accounts/oauth/callback"  # never opened: the test follows the redirect itself


def oauth_client(idp) -> AuthlibOAuthClient:
    endpoints = oauth_endpoints("gmail")
    return AuthlibOAuthClient(
        {"gmail": OAuthApp(endpoints, idp.client_id, idp.client_secret, idp.authorize_url, idp.token_url)}
    )


@pytest.fixture
def odeps(deps, idp):
    idp.access_lifetime, idp.rotate, idp.token_delay = 3600, True, 0.0
    return dataclasses.replace(deps, oauth=oauth_client(idp))


def choices(dovecot) -> dict:
    return {
        "provider": "gmail",
        "kind": "private",
        "imap_host": dovecot.host,
        "imap_port": str(dovecot.imap_port),
        "imap_security": "none",
        "smtp_host": dovecot.host,
        "smtp_port": str(dovecot.submission_port),
        "smtp_security": "none",
        "sync_start": "all",
    }


async def sign_in(deps, actor, idp, dovecot, address: str, *, account=None):
    url, pending = oauth_sign_in.begin(deps, actor, "gmail", REDIRECT, choices=choices(dovecot), account=account)
    back = parse_qs(urlsplit(await asyncio.to_thread(idp.sign_in, url, address)).query)
    return await oauth_sign_in.complete(
        deps, actor, pending, state=back["state"][0], code=back["code"][0], redirect_uri=REDIRECT
    )


def new_address() -> str:
    return f"o{uuid.uuid4().hex[:8]}@example.test"


def mail(to: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Customer <c@customer.test>", to, subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
    message.set_content("Hello over XOAUTH2.")
    return message.as_bytes()


async def tokens(deps, company_id, account_id) -> AccountOAuthToken:
    async with deps.reading() as db:
        return await db.get(AccountOAuthToken, (company_id, account_id))


async def expire_soon(deps, company_id, account_id, *, seconds: int = 60) -> None:
    async with deps.writing() as db:
        await db.execute(
            update(AccountOAuthToken)
            .where(AccountOAuthToken.company_id == company_id, AccountOAuthToken.account_id == account_id)
            .values(expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))
        )


async def account_row(deps, company_id, account_id) -> EmailAccount:
    async with deps.reading() as db:
        return await db.get(EmailAccount, (company_id, account_id))


async def test_sign_in_with_pkce_and_state_connects_an_account_that_syncs_and_sends_over_xoauth2(
    odeps, tenant, idp, dovecot_oauth
):
    me, customer = new_address(), new_address()
    dovecot_oauth.add_user(customer, "customer-pw")
    subject = f"Quote {uuid.uuid4().hex[:6]}"
    dovecot_oauth.deliver(me, mail(me, subject))

    view, new = await sign_in(odeps, tenant.admin, idp, dovecot_oauth, me)

    assert new and view.address == me and view.auth_method == "oauth2" and not view.needs_reauth
    stored = await tokens(odeps, tenant.company_id, view.id)
    assert stored.version == 1 and stored.access_token.startswith("gAAAAA")  # Fernet, never clear text
    assert odeps.secrets.decrypt(stored.refresh_token) in idp.live_refresh_tokens(me)
    report = await sync.sync_account_once(odeps, view.id)
    assert report.fetched == 1 and (await account_row(odeps, tenant.company_id, view.id)).sync_state == "idle"

    queued = await outbox.enqueue(
        odeps,
        tenant.admin,
        OutgoingMessage(view.id, to=[customer], subject="Re: " + subject, text="Sent with XOAUTH2."),
    )
    assert await outbox.deliver(odeps, tenant.company_id, queued.id) == "sent"
    with IMAPClient(dovecot_oauth.host, port=dovecot_oauth.imap_port, ssl=False, timeout=10) as client:
        client.login(customer, "customer-pw")
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(client.search(["ALL"]), [b"BODY.PEEK[]"])
    received = [email.message_from_bytes(d[b"BODY[]"], policy=policy.default) for d in fetched.values()]
    assert [m["Subject"] for m in received] == ["Re: " + subject] and received[0]["From"].addresses[0].addr_spec == me


async def test_an_answer_with_another_state_is_refused_and_uses_up_the_sign_in(odeps, tenant, idp, dovecot_oauth):
    url, pending = oauth_sign_in.begin(odeps, tenant.admin, "gmail", REDIRECT, choices=choices(dovecot_oauth))
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] == [pending.state]
    assert pending.code_verifier not in url  # only its SHA-256 travels through the browser
    back = parse_qs(urlsplit(await asyncio.to_thread(idp.sign_in, url, new_address())).query)
    calls = idp.calls["authorization_code"]

    with pytest.raises(SignInRefused):
        await oauth_sign_in.complete(
            odeps, tenant.admin, pending, state="forged-" + pending.state, code=back["code"][0], redirect_uri=REDIRECT
        )
    with pytest.raises(SignInRefused):  # the web app keeps none after the first answer
        await oauth_sign_in.complete(
            odeps, tenant.admin, None, state=back["state"][0], code=back["code"][0], redirect_uri=REDIRECT
        )
    assert idp.calls["authorization_code"] == calls  # the code was never spent

    other = dataclasses.replace(pending, code_verifier="x" * 64)  # a stolen code without its verifier
    with pytest.raises(SignInRefused, match="PKCE"):
        await oauth_sign_in.complete(
            odeps, tenant.admin, other, state=pending.state, code=back["code"][0], redirect_uri=REDIRECT
        )


async def test_the_token_is_refreshed_before_expiry_and_the_rotated_one_is_saved_before_use(
    odeps, settings, tenant, idp, dovecot_oauth
):
    me = new_address()
    view, _ = await sign_in(odeps, tenant.admin, idp, dovecot_oauth, me)
    first = await tokens(odeps, tenant.company_id, view.id)
    old_refresh = odeps.secrets.decrypt(first.refresh_token)
    assert await oauth.fresh_access_token(odeps, tenant.company_id, view.id) == odeps.secrets.decrypt(
        first.access_token
    )
    refreshes = idp.calls["refresh_token"]

    await expire_soon(odeps, tenant.company_id, view.id)  # valid one more minute: inside the margin
    seen = {}
    original_save = oauth._save

    async def save_then_look(deps, row, grant):
        await original_save(deps, row, grant)
        seen["stored"] = await tokens(deps, row.company_id, row.account_id)  # before the caller gets the token

    oauth._save = save_then_look
    try:
        access = await oauth.fresh_access_token(odeps, tenant.company_id, view.id)
    finally:
        oauth._save = original_save

    assert idp.calls["refresh_token"] == refreshes + 1
    stored = seen["stored"]
    assert stored.version == first.version + 1 and odeps.secrets.decrypt(stored.access_token) == access
    new_refresh = odeps.secrets.decrypt(stored.refresh_token)
    assert new_refresh != old_refresh and idp.live_refresh_tokens(me) == [new_refresh]  # the IdP rotated it

    # Another process (its own engine) starts from what is stored: the rotated token works, the old one is gone.
    other = bootstrap.build_runtime(settings)
    try:
        other_deps = dataclasses.replace(other.deps, oauth=oauth_client(idp))
        await expire_soon(odeps, tenant.company_id, view.id, seconds=-1)
        assert await oauth.fresh_access_token(other_deps, tenant.company_id, view.id) != access
    finally:
        await other.close()
    with pytest.raises(OAuthTokenError) as refused:
        await odeps.oauth.refresh("gmail", old_refresh)
    assert refused.value.kind == "revoked"
    await sync.sync_account_once(odeps, view.id)  # and XOAUTH2 works with the refreshed token


async def test_two_processes_refreshing_at_once_make_one_token_call(odeps, settings, tenant, idp, dovecot_oauth):
    view, _ = await sign_in(odeps, tenant.admin, idp, dovecot_oauth, new_address())
    await expire_soon(odeps, tenant.company_id, view.id, seconds=-5)  # expired: nobody may use the old one
    other = bootstrap.build_runtime(settings)
    refreshes = idp.calls["refresh_token"]
    idp.token_delay = 0.5  # the first refresh is still under way when the others ask
    try:
        other_deps = dataclasses.replace(other.deps, oauth=oauth_client(idp))
        got = await asyncio.gather(
            *[oauth.fresh_access_token(d, tenant.company_id, view.id) for d in (odeps, other_deps, odeps, other_deps)]
        )
    finally:
        await other.close()
    assert idp.calls["refresh_token"] == refreshes + 1
    assert len(set(got)) == 1 and (await tokens(odeps, tenant.company_id, view.id)).version == 2


async def test_a_revoked_grant_stops_the_account_until_its_owner_signs_in_again(odeps, tenant, idp, dovecot_oauth):
    me = new_address()
    view, _ = await sign_in(odeps, tenant.admin, idp, dovecot_oauth, me)
    await sync.sync_account_once(odeps, view.id)
    idp.revoke(me)  # the user removed the app's access at the provider
    refreshes = idp.calls["refresh_token"]

    with pytest.raises(sync.SyncFailed):  # Dovecot refuses the access token; the pass fails and forgets it
        await sync.sync_account_once(odeps, view.id)
    assert (await account_row(odeps, tenant.company_id, view.id)).sync_state == "failed"
    with pytest.raises(sync.SyncFailed):  # the next pass refreshes: invalid_grant
        await sync.sync_account_once(odeps, view.id)

    row = await account_row(odeps, tenant.company_id, view.id)
    assert row.sync_state == "stopped" and row.sync_error.startswith("Re-authorisation needed")
    assert idp.calls["refresh_token"] == refreshes + 1
    stop = asyncio.Event()
    await asyncio.wait_for(sync_supervisor.keep_in_sync(odeps, view.id, stop), timeout=30)  # returns: paused
    with pytest.raises(ReauthorisationNeeded):
        await oauth.fresh_access_token(odeps, tenant.company_id, view.id)
    assert idp.calls["refresh_token"] == refreshes + 1  # nothing more was tried
    assert (await oauth_sign_in.accounts.access_account(odeps, tenant.admin, view.id)).needs_reauth

    again, new = await sign_in(odeps, tenant.admin, idp, dovecot_oauth, me, account=view)
    assert not new and again.id == view.id and not again.needs_reauth
    assert (await account_row(odeps, tenant.company_id, view.id)).sync_state == "pending"
    dovecot_oauth.deliver(me, mail(me, "After re-authorisation"))
    assert (await sync.sync_account_once(odeps, view.id)).fetched == 1


async def test_microsofts_inactivity_code_also_means_re_authorisation(odeps, tenant, idp, dovecot_oauth):
    view, _ = await sign_in(odeps, tenant.admin, idp, dovecot_oauth, new_address())
    await expire_soon(odeps, tenant.company_id, view.id, seconds=-1)
    idp.refuse_next("interaction_required", "AADSTS700082: The refresh token has expired due to inactivity.")
    with pytest.raises(ReauthorisationNeeded):
        await oauth.fresh_access_token(odeps, tenant.company_id, view.id)
    assert (await account_row(odeps, tenant.company_id, view.id)).sync_state == "stopped"


async def test_signing_in_again_as_someone_else_is_refused(odeps, tenant, idp, dovecot_oauth):
    view, _ = await sign_in(odeps, tenant.admin, idp, dovecot_oauth, new_address())
    with pytest.raises(oauth_sign_in.ValidationFailed):
        await sign_in(odeps, tenant.admin, idp, dovecot_oauth, new_address(), account=view)


async def test_transient_failures_are_retried_with_backoff_and_never_mark_re_authorisation(
    odeps, tenant, idp, dovecot_oauth, monkeypatch
):
    view, _ = await sign_in(odeps, tenant.admin, idp, dovecot_oauth, new_address())
    await expire_soon(odeps, tenant.company_id, view.id, seconds=-1)
    refreshes = idp.calls["refresh_token"]
    idp.fail_next(1, 503)
    idp.fail_next(1, 429)
    assert await oauth.fresh_access_token(odeps, tenant.company_id, view.id)
    assert idp.calls["refresh_token"] == refreshes + 3

    await expire_soon(odeps, tenant.company_id, view.id, seconds=-1)
    monkeypatch.setattr(oauth, "REFRESH_ATTEMPTS", 2)
    idp.fail_next(2, 503)
    with pytest.raises(sync.SyncFailed):
        await sync.sync_account_once(odeps, view.id)
    row, stored = await account_row(odeps, tenant.company_id, view.id), await tokens(odeps, tenant.company_id, view.id)
    assert row.sync_state == "failed" and "503" in row.sync_error  # retried later by the supervisor's backoff
    assert not stored.needs_reauth and stored.refresh_claimed_until is None
    assert await oauth.fresh_access_token(odeps, tenant.company_id, view.id)  # the next try works


async def test_key_rotation_re_encrypts_the_tokens_too(odeps, tenant, idp, dovecot_oauth):
    view, _ = await sign_in(odeps, tenant.admin, idp, dovecot_oauth, new_address())
    before = await tokens(odeps, tenant.company_id, view.id)
    assert await oauth_sign_in.accounts.rotate_account_secrets(odeps) >= 2
    after = await tokens(odeps, tenant.company_id, view.id)
    assert (after.access_token, after.refresh_token) != (before.access_token, before.refresh_token)
    assert odeps.secrets.decrypt(after.refresh_token) == odeps.secrets.decrypt(before.refresh_token)
    await sync.sync_account_once(odeps, view.id)


async def test_a_server_whose_client_was_removed_says_so_and_asks_nobody_to_re_authorise(
    odeps, tenant, idp, dovecot_oauth
):
    view, _ = await sign_in(odeps, tenant.admin, idp, dovecot_oauth, new_address())
    await expire_soon(odeps, tenant.company_id, view.id, seconds=-1)
    with pytest.raises(OAuthTokenError, match="no longer set up") as failed:
        await oauth.fresh_access_token(dataclasses.replace(odeps, oauth=None), tenant.company_id, view.id)
    assert failed.value.kind == "refused"
    stored = await tokens(odeps, tenant.company_id, view.id)
    assert not stored.needs_reauth and stored.refresh_claimed_until is None
