"""OAuth token sets of mail accounts: store, refresh before expiry, one refresher per account.

The token set lives in ``account_oauth_tokens`` (both tokens MultiFernet
encrypted). ``fresh_access_token`` is the only way a login gets its access
token:

1. Read the row. ``needs_reauth`` set: raise ``ReauthorisationNeeded`` at
   once; no refresh is tried until the owner signs in again.
2. More than ``REFRESH_MARGIN`` left: use the stored access token.
3. Otherwise claim the refresh with a conditional UPDATE (the version read,
   and no live claim): exactly one process or task wins, on SQLite (BEGIN
   IMMEDIATE) and PostgreSQL (row lock) alike. The others use the current
   token while it is still valid, or wait for the winner's new version.
4. The winner calls the token endpoint (no transaction open meanwhile),
   retrying transient failures (network, 5xx, 429) with backoff, then saves
   the new access token, the rotated refresh token (Microsoft rotates them;
   the old one stops working) and the expiry in ONE transaction, and only then
   hands the access token to the login. A crash before that commit loses at
   most the refresh that was under way; a crash after it loses nothing.
5. ``invalid_grant`` (or Microsoft's AADSTS700082 ...): ``needs_reauth`` is
   set and the account's sync is stopped through
   ``sync_state.mark_reauthorisation_needed`` with a plain-words reason.

A refused XOAUTH2 login (``forget_access_token``) only expires the stored
access token: the next login refreshes, which tells revoked from transient.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid

from sqlalchemy import or_, select, update

from salesinbox.adapters.db.tables import AccountOAuthToken, EmailAccount
from salesinbox.domain.errors import NotFound
from salesinbox.domain.oauth import (
    REAUTHORISE_WORDS,
    OAuthTokenError,
    ReauthorisationNeeded,
    TokenGrant,
    backoff_delays,
    expiry_from,
    needs_refresh,
)
from salesinbox.domain.providers import get_preset
from salesinbox.domain.text import Text
from salesinbox.services import sync_state
from salesinbox.services.process_claims import this_process
from salesinbox.services.unit_of_work import Deps

log = logging.getLogger(__name__)

CLAIM_FOR = dt.timedelta(seconds=150)  # longer than every try of one refresh together
REFRESH_ATTEMPTS = 4
WAIT_FOR_OTHER = 40.0  # seconds a login waits for another process's refresh
_POLL = 0.05


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_token_row(
    deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID, provider: str, grant: TokenGrant
) -> AccountOAuthToken:
    """The token set of a freshly signed-in account (to add in the caller's transaction)."""
    return AccountOAuthToken(
        company_id=company_id,
        account_id=account_id,
        provider=provider,
        access_token=deps.secrets.encrypt(grant.access_token),
        refresh_token=deps.secrets.encrypt(grant.refresh_token or ""),
        expires_at=expiry_from(_now(), grant.expires_in),
        version=1,
        needs_reauth=False,
    )


def replace_tokens(deps: Deps, row: AccountOAuthToken, grant: TokenGrant) -> None:
    """After the owner signed in again: a new token set, the refusal forgotten (caller's transaction)."""
    row.access_token = deps.secrets.encrypt(grant.access_token)
    if grant.refresh_token:
        row.refresh_token = deps.secrets.encrypt(grant.refresh_token)
    row.expires_at = expiry_from(_now(), grant.expires_in)
    row.version += 1
    row.needs_reauth, row.last_error = False, None
    row.refresh_claimed_until = row.refresh_claimed_by = None


async def _read(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID) -> AccountOAuthToken:
    async with deps.reading() as db:
        row = await db.get(AccountOAuthToken, (company_id, account_id))
    if row is None:
        raise NotFound(Text("This account has no OAuth sign-in."))
    return row


async def fresh_access_token(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID) -> str:
    """An access token valid for at least a few minutes, refreshed (once, by one process) if needed."""
    deadline = time.monotonic() + WAIT_FOR_OTHER
    while True:
        row = await _read(deps, company_id, account_id)
        if row.needs_reauth:
            raise ReauthorisationNeeded(row.last_error or "Re-authorisation needed.")
        now = _now()
        if not needs_refresh(row.expires_at, now):
            return deps.secrets.decrypt(row.access_token)
        if await _claim(deps, row, now):
            return await _refresh_claimed(deps, row)
        if row.expires_at > now:
            return deps.secrets.decrypt(row.access_token)  # still valid: another process renews it
        if time.monotonic() > deadline:
            raise OAuthTokenError("transient", "Another process is renewing the sign-in; it did not finish in time.")
        await asyncio.sleep(_POLL)


async def _claim(deps: Deps, row: AccountOAuthToken, now: dt.datetime) -> bool:
    async with deps.writing() as db:
        won = await db.execute(
            update(AccountOAuthToken)
            .where(
                AccountOAuthToken.company_id == row.company_id,
                AccountOAuthToken.account_id == row.account_id,
                AccountOAuthToken.version == row.version,
                AccountOAuthToken.needs_reauth.is_(False),
                or_(AccountOAuthToken.refresh_claimed_until.is_(None), AccountOAuthToken.refresh_claimed_until < now),
            )
            .values(refresh_claimed_until=now + CLAIM_FOR, refresh_claimed_by=this_process())
        )
        return won.rowcount == 1


async def _refresh_claimed(deps: Deps, row: AccountOAuthToken) -> str:
    if deps.oauth is None or not deps.oauth.configured(row.provider):
        reason = f"Signing in with {get_preset(row.provider).name} is no longer set up on this server."
        await _release(deps, row, reason)
        raise OAuthTokenError("refused", reason)
    refresh_token = deps.secrets.decrypt(row.refresh_token)
    delays = backoff_delays(REFRESH_ATTEMPTS)
    for attempt in range(REFRESH_ATTEMPTS):
        try:
            grant = await deps.oauth.refresh(row.provider, refresh_token)
            break
        except OAuthTokenError as failed:
            if failed.kind == "revoked":
                log.warning("account %s: the provider refused the refresh token (%s)", row.account_id, failed.detail)
                raise ReauthorisationNeeded(await _mark_revoked(deps, row)) from None
            if failed.kind == "refused" or attempt == len(delays):
                await _release(deps, row, failed.detail)
                raise
            wait = max(delays[attempt], min(failed.retry_after or 0.0, 30.0))
            log.info(
                "token refresh for account %s failed (%s); retrying in %.1f s", row.account_id, failed.detail, wait
            )
            await asyncio.sleep(wait)
    await _save(deps, row, grant)
    return grant.access_token


async def _save(deps: Deps, row: AccountOAuthToken, grant: TokenGrant) -> None:
    """The new access token and the rotated refresh token, in one transaction, before either is used."""
    values = {
        "access_token": deps.secrets.encrypt(grant.access_token),
        "expires_at": expiry_from(_now(), grant.expires_in),
        "version": row.version + 1,
        "refresh_claimed_until": None,
        "refresh_claimed_by": None,
        "last_error": None,
    }
    if grant.refresh_token:
        values["refresh_token"] = deps.secrets.encrypt(grant.refresh_token)
    async with deps.writing() as db:
        saved = await db.execute(
            update(AccountOAuthToken)
            .where(
                AccountOAuthToken.company_id == row.company_id,
                AccountOAuthToken.account_id == row.account_id,
                AccountOAuthToken.version == row.version,
            )
            .values(**values)
        )
    if saved.rowcount != 1:  # the owner signed in again meanwhile: theirs is newer
        log.warning("token refresh for account %s finished after a newer sign-in; kept the newer", row.account_id)


async def _release(deps: Deps, row: AccountOAuthToken, reason: str) -> None:
    async with deps.writing() as db:
        await db.execute(
            update(AccountOAuthToken)
            .where(
                AccountOAuthToken.company_id == row.company_id,
                AccountOAuthToken.account_id == row.account_id,
                AccountOAuthToken.version == row.version,
            )
            .values(refresh_claimed_until=None, refresh_claimed_by=None, last_error=reason)
        )


async def _mark_revoked(deps: Deps, row: AccountOAuthToken) -> str:
    async with deps.reading() as db:
        account = await db.get(EmailAccount, (row.company_id, row.account_id))
    words = REAUTHORISE_WORDS.format(
        provider=get_preset(row.provider).name, address=account.address if account else "this account"
    )
    async with deps.writing() as db:
        await db.execute(
            update(AccountOAuthToken)
            .where(
                AccountOAuthToken.company_id == row.company_id,
                AccountOAuthToken.account_id == row.account_id,
                AccountOAuthToken.version == row.version,
            )
            .values(needs_reauth=True, last_error=words, refresh_claimed_until=None, refresh_claimed_by=None)
        )
    await sync_state.mark_reauthorisation_needed(deps, row.company_id, row.account_id, words)
    return words


async def forget_access_token(deps: Deps, company_id: uuid.UUID, account_id: uuid.UUID) -> None:
    """The server refused the access token: expire it, so the next login refreshes (and learns why)."""
    async with deps.writing() as db:
        await db.execute(
            update(AccountOAuthToken)
            .where(AccountOAuthToken.company_id == company_id, AccountOAuthToken.account_id == account_id)
            .values(expires_at=_now())
        )


async def needs_reauthorisation(deps: Deps, company_id: uuid.UUID, account_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these accounts wait for their owner to sign in again."""
    if not account_ids:
        return set()
    async with deps.reading() as db:
        return set(
            await db.scalars(
                select(AccountOAuthToken.account_id).where(
                    AccountOAuthToken.company_id == company_id,
                    AccountOAuthToken.account_id.in_(account_ids),
                    AccountOAuthToken.needs_reauth.is_(True),
                )
            )
        )


async def rotate_token_secrets(deps: Deps) -> int:
    """Re-encrypt every stored token with the newest key (``salesinbox keys rotate``)."""
    async with deps.writing() as db:
        rows = (await db.scalars(select(AccountOAuthToken))).all()
        for row in rows:
            row.access_token = deps.secrets.rotate(row.access_token)
            row.refresh_token = deps.secrets.rotate(row.refresh_token)
        return len(rows)
