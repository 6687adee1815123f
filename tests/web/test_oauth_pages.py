"""The OAuth parts of the account pages and API, on a server with no OAuth client configured:
a sign-in that cannot work is not offered, and the API says how each account signs in."""

from __future__ import annotations

from salesinbox.domain.accounts import Security
from salesinbox.services import accounts, tokens
from tests.support.http import api_client, has_testid, logged_in_session


async def test_without_a_configured_client_no_sign_in_button_is_offered(live_server, tenant):
    async with await logged_in_session(live_server.url, tenant.admin_email, tenant.admin_password) as session:
        for provider in ("gmail", "microsoft"):
            page = (await session.get("/accounts/new", params={"provider": provider})).text
            assert has_testid(page, "account-form") and not has_testid(page, f"sign-in-{provider}")
        started = await session.post("/accounts/oauth/start", {"provider": "gmail"})
        assert started.status_code == 303 and started.headers["location"] == "/accounts/new?provider=gmail"
        answered = await session.get("/accounts/oauth/callback", params={"state": "forged", "code": "stolen"})
        assert answered.status_code == 303 and answered.headers["location"] == "/accounts/new"


async def test_the_api_says_how_each_account_signs_in_and_its_sync_state(live_server, tenant, deps, mailbox):
    await accounts.connect_account(
        deps,
        tenant.admin,
        accounts.AccountInput(
            address=mailbox.address,
            password=mailbox.password,
            imap_host=mailbox.imap_host,
            imap_port=mailbox.imap_port,
            imap_security=Security.NONE,
            smtp_host=mailbox.smtp_host,
            smtp_port=mailbox.smtp_port,
            smtp_security=Security.NONE,
        ),
    )
    token = await tokens.create_token(deps, tenant.admin, "oauth pages")
    async with api_client(live_server.url, token.secret) as api:
        listed = (await api.get("/accounts")).json()
    assert [(a["auth_method"], a["needs_reauth"], a["sync_state"]) for a in listed] == [("password", False, "pending")]
