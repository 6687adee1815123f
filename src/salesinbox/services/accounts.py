"""Connected mail accounts: connect (test first, save nothing on failure), test,
edit members, disconnect. Passwords are encrypted before they reach the database
and never leave this module in clear except to log in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from salesinbox.adapters.db.tables import AccountOAuthToken, EmailAccount, EmailAccountMember, User
from salesinbox.adapters.imap.session import ImapAuthError, ImapError
from salesinbox.domain.accounts import (
    AccountKind,
    ContactPolicy,
    Security,
    SyncStart,
    can_use_account,
    default_visibility_for,
    visibilities_for,
)
from salesinbox.domain.connection import explain
from salesinbox.domain.errors import Conflict, DomainError, NotFound, PermissionDenied, PlanRequired, ValidationFailed
from salesinbox.domain.oauth import OAuthTokenError, ReauthorisationNeeded, TokenGrant
from salesinbox.domain.providers import ProviderPreset, get_preset
from salesinbox.domain.tenancy import EMAIL_SYNC_MINIMUM_PLAN, Actor
from salesinbox.domain.text import Text
from salesinbox.services import oauth, sync_state
from salesinbox.services.ports import ServerLogin
from salesinbox.services.unit_of_work import Deps
from salesinbox.services.workspace import check_login_email

MAX_ATTACHMENT_LIMIT_MB = 150


@dataclass
class AccountInput:
    address: str
    login: str = ""
    password: str = ""
    provider: str = "other"
    kind: AccountKind = AccountKind.PRIVATE
    display_name: str = ""
    imap_host: str = ""
    imap_port: int | None = None
    imap_security: Security | None = None
    smtp_host: str = ""
    smtp_port: int | None = None
    smtp_security: Security | None = None
    attachment_limit_mb: int | None = None
    sync_start: SyncStart = SyncStart.ONE_MONTH
    default_visibility: str | None = None
    contact_policy: ContactPolicy = ContactPolicy.FROM_SENT
    member_ids: list[uuid.UUID] = field(default_factory=list)

    def __repr__(self) -> str:  # the password must never reach a log line
        return f"AccountInput({self.address!r}, provider={self.provider!r}, kind={self.kind!r})"


@dataclass(frozen=True)
class ConnectionReport:
    """The outcome of "Test connection", in plain words; None means it logged in."""

    imap_error: str | None
    smtp_error: str | None

    @property
    def ok(self) -> bool:
        return self.imap_error is None and self.smtp_error is None

    @property
    def messages(self) -> list[str]:
        return [m for m in (self.imap_error, self.smtp_error) if m]


class ConnectionFailed(DomainError):
    def __init__(self, report: ConnectionReport) -> None:
        super().__init__(" ".join(report.messages))
        self.report = report


@dataclass(frozen=True)
class AccountView:
    id: uuid.UUID
    kind: AccountKind
    address: str
    display_name: str
    provider: str
    provider_name: str
    owner_id: uuid.UUID
    owner_name: str
    member_ids: list[uuid.UUID]
    login: str
    imap_host: str
    imap_port: int
    imap_security: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    attachment_limit_bytes: int
    sync_start: str
    default_visibility: str
    contact_policy: str
    last_test_at: dt.datetime | None
    last_test_error: str | None
    created_at: dt.datetime
    auth_method: str = "password"  # or "oauth2" (Sign in with Google / Microsoft)
    needs_reauth: bool = False  # OAuth: the provider refused the sign-in; the owner must sign in again
    sync_state: str = "pending"  # pending, syncing, idle, failed, stopped (services/sync_state.py)
    sync_error: str | None = None  # why, in plain words, when failed or stopped


def require_email_sync(actor: Actor) -> None:
    if not actor.can_sync_email:
        raise PlanRequired(Text("Email sync"), EMAIL_SYNC_MINIMUM_PLAN.value)


# ---- settings from input + preset ---------------------------------------------

@dataclass(frozen=True)
class _Resolved:
    preset: ProviderPreset
    address: str
    login: str
    imap: ServerLogin
    smtp: ServerLogin
    limit_bytes: int
    visibility: str


def _preset(key: str) -> ProviderPreset:
    try:
        return get_preset(key or "other")
    except ValueError as exc:
        raise ValidationFailed({"provider": exc.args[0]}) from exc  # a Text (domain/providers.py)


def _server(prefix: str, host: str, port: int | None, security: Security | None,
            preset_host: str, preset_port: int, preset_security: str, login: str, password: str,
            mechanism: str = "password") -> ServerLogin:
    host = (host or preset_host or "").strip()
    if not host:
        raise ValidationFailed({f"{prefix}_host": Text("Enter the server's host name.")})
    port = port or preset_port
    if not port or not 0 < int(port) < 65536:
        raise ValidationFailed({f"{prefix}_port": Text("Enter a port between 1 and 65535.")})
    chosen = Security(security or preset_security or Security.TLS)
    return ServerLogin(host, int(port), chosen.value, login, password, mechanism)


def _resolve(data: AccountInput, *, access_token: str | None = None) -> _Resolved:
    """The settings to log in with: the password, or (OAuth) an access token over XOAUTH2."""
    preset = _preset(data.provider)
    address = check_login_email(data.address, field="address")
    login = (data.login or "").strip() or address
    if access_token is None and not data.password:
        raise ValidationFailed({"password": Text("Enter the password or app password.")})
    secret, mechanism = (access_token, "xoauth2") if access_token is not None else (data.password, "password")
    imap = _server("imap", data.imap_host, data.imap_port, data.imap_security,
                   preset.imap_host, preset.imap_port, preset.imap_security, login, secret, mechanism)
    smtp = _server("smtp", data.smtp_host, data.smtp_port, data.smtp_security,
                   preset.smtp_host, preset.smtp_port, preset.smtp_security, login, secret, mechanism)
    return _Resolved(preset, address, login, imap, smtp, _limit_bytes(preset, data), _visibility(data))


def _limit_bytes(preset: ProviderPreset, data: AccountInput) -> int:
    # Gmail's and Microsoft's limits are theirs, not ours to raise.
    if preset.key != "other" or not data.attachment_limit_mb:
        return preset.attachment_limit_bytes
    if not 1 <= data.attachment_limit_mb <= MAX_ATTACHMENT_LIMIT_MB:
        raise ValidationFailed({"attachment_limit_mb": Text("Use 1 to %(max)s MB.", max=MAX_ATTACHMENT_LIMIT_MB)})
    return data.attachment_limit_mb * 1024 * 1024


def _visibility(data: AccountInput) -> str:
    kind = AccountKind(data.kind)
    if not data.default_visibility:
        return default_visibility_for(kind).value
    allowed = [v.value for v in visibilities_for(kind)]
    if data.default_visibility not in allowed:
        raise ValidationFailed({"default_visibility": Text("Choose one of: %(choices)s.", choices=", ".join(allowed))})
    return data.default_visibility


# ---- testing --------------------------------------------------------------------

async def _probe(deps: Deps, preset: ProviderPreset, imap: ServerLogin, smtp: ServerLogin) -> ConnectionReport:
    imap_failure, smtp_failure = await asyncio.gather(
        deps.probe.probe_imap(imap, preset.key), deps.probe.probe_smtp(smtp, preset.key))
    return ConnectionReport(
        explain(imap_failure, preset) if imap_failure else None,
        explain(smtp_failure, preset) if smtp_failure else None,
    )


async def test_connection(deps: Deps, actor: Actor, data: AccountInput) -> ConnectionReport:
    """Log in to IMAP and SMTP with unsaved settings; nothing is stored."""
    require_email_sync(actor)
    resolved = _resolve(data)
    return await _probe(deps, resolved.preset, resolved.imap, resolved.smtp)


async def test_account(deps: Deps, actor: Actor, account_id: uuid.UUID) -> ConnectionReport:
    require_email_sync(actor)
    async with deps.reading() as db:
        account = await _load_usable(db, actor, account_id)
    try:
        imap, smtp = await oauth_aware_imap_login(deps, account), await smtp_login(deps, account)
    except (ReauthorisationNeeded, OAuthTokenError) as exc:
        report = ConnectionReport(str(exc), None)
    else:
        report = await _probe(deps, _preset(account.provider), imap, smtp)
    async with deps.writing() as db:
        row = await db.get(EmailAccount, (actor.company_id, account_id))
        if row is not None:
            row.last_test_at = dt.datetime.now(dt.UTC)
            row.last_test_error = " ".join(report.messages) or None
    return report


# ---- connecting and editing -------------------------------------------------------

async def connect_account(deps: Deps, actor: Actor, data: AccountInput, *, verify: bool = True) -> AccountView:
    """Save a new account. With ``verify``, log in first and save nothing unless both logins work."""
    require_email_sync(actor)
    resolved = _resolve(data)
    async with deps.reading() as db:
        await _check_new_account(db, actor, resolved.address, data)
    tested_at = None
    if verify:
        report = await _probe(deps, resolved.preset, resolved.imap, resolved.smtp)
        if not report.ok:
            raise ConnectionFailed(report)
        tested_at = dt.datetime.now(dt.UTC)
    async with deps.writing() as db:
        await _check_new_account(db, actor, resolved.address, data)
        row = _new_row(deps, actor, data, resolved, tested_at)
        db.add(row)
        await db.flush()
        await _set_members(db, actor, row, data)
        return await _view(db, row)


async def _check_new_account(db: AsyncSession, actor: Actor, address: str, data: AccountInput) -> None:
    if await db.scalar(select(EmailAccount.id).where(
            EmailAccount.company_id == actor.company_id, EmailAccount.address == address)):
        raise Conflict(Text("%(address)s is already connected in this company.", address=address))
    await _check_members_exist(db, actor, data.member_ids)


async def connect_oauth_account(deps: Deps, actor: Actor, data: AccountInput, grant: TokenGrant) -> AccountView:
    """Save a new account that signs in with OAuth (``grant`` from the provider), after XOAUTH2 logins work."""
    require_email_sync(actor)
    resolved = _resolve(data, access_token=grant.access_token)
    async with deps.reading() as db:
        await _check_new_account(db, actor, resolved.address, data)
    report = await _probe(deps, resolved.preset, resolved.imap, resolved.smtp)
    if not report.ok:
        raise ConnectionFailed(report)
    async with deps.writing() as db:
        await _check_new_account(db, actor, resolved.address, data)
        data.password = ""  # no password: the secret column holds an encrypted empty string
        row = _new_row(deps, actor, data, resolved, dt.datetime.now(dt.UTC))
        row.auth_method = "oauth2"
        db.add(row)
        await db.flush()
        db.add(oauth.new_token_row(deps, actor.company_id, row.id, resolved.preset.key, grant))
        await _set_members(db, actor, row, data)
        await db.flush()
        return await _view(db, row)


async def reauthorise_account(deps: Deps, actor: Actor, account_id: uuid.UUID, address: str | None,
                              grant: TokenGrant) -> AccountView:
    """The owner signed in again: new tokens, the refusal forgotten, sync resumes."""
    require_email_sync(actor)
    async with deps.writing() as db:
        row = await _load_usable(db, actor, account_id)
        if row.owner_id != actor.user_id:
            raise PermissionDenied(Text("Only the account's owner can sign in for it."))
        if row.auth_method != "oauth2":
            raise ValidationFailed({"account": Text("This account signs in with a password.")})
        if address and address.lower() not in {row.address.lower(), row.login.lower()}:
            raise ValidationFailed({"account": Text(
                "You signed in as %(signed_in)s, but this account is %(address)s.",
                signed_in=address, address=row.address,
            )})
        tokens = await db.get(AccountOAuthToken, (actor.company_id, account_id))
        if tokens is None:
            db.add(oauth.new_token_row(deps, actor.company_id, account_id, row.provider, grant))
        else:
            oauth.replace_tokens(deps, tokens, grant)
        row.last_test_error = None
    await sync_state.mark_reauthorised(deps, actor.company_id, account_id)
    return await access_account(deps, actor, account_id)


def _new_row(deps: Deps, actor: Actor, data: AccountInput, r: _Resolved, tested_at) -> EmailAccount:
    return EmailAccount(
        company_id=actor.company_id, kind=AccountKind(data.kind).value, owner_id=actor.user_id,
        address=r.address, display_name=(data.display_name or "").strip()[:200], provider=r.preset.key,
        imap_host=r.imap.host, imap_port=r.imap.port, imap_security=r.imap.security,
        smtp_host=r.smtp.host, smtp_port=r.smtp.port, smtp_security=r.smtp.security,
        login=r.login, secret=deps.secrets.encrypt(data.password), attachment_limit_bytes=r.limit_bytes,
        sync_start=SyncStart(data.sync_start).value, default_visibility=r.visibility,
        contact_policy=ContactPolicy(data.contact_policy).value, last_test_at=tested_at,
    )


async def _set_members(db: AsyncSession, actor: Actor, row: EmailAccount, data: AccountInput) -> None:
    await db.execute(delete(EmailAccountMember).where(
        EmailAccountMember.company_id == actor.company_id, EmailAccountMember.account_id == row.id))
    if row.kind != AccountKind.TEAM.value:
        return
    for user_id in {row.owner_id, *data.member_ids}:
        db.add(EmailAccountMember(company_id=actor.company_id, account_id=row.id, user_id=user_id))
    await db.flush()


async def set_team_members(deps: Deps, actor: Actor, account_id: uuid.UUID, member_ids: list[uuid.UUID]) -> AccountView:
    require_email_sync(actor)
    async with deps.writing() as db:
        row = await _load_usable(db, actor, account_id)
        if row.kind != AccountKind.TEAM.value:
            raise ValidationFailed({"member_ids": Text("Only a team account has members.")})
        if row.owner_id != actor.user_id and not actor.is_admin:
            raise PermissionDenied(Text("Only the account's owner or an admin can change its members."))
        data = AccountInput(address=row.address, member_ids=member_ids)
        await _check_members_exist(db, actor, member_ids)
        await _set_members(db, actor, row, data)
        return await _view(db, row)


async def _check_members_exist(db: AsyncSession, actor: Actor, member_ids: list[uuid.UUID]) -> None:
    for member_id in member_ids:
        if await db.get(User, (actor.company_id, member_id)) is None:
            raise ValidationFailed({"member_ids": Text("A chosen member is not a user of this company.")})


async def disconnect_account(deps: Deps, actor: Actor, account_id: uuid.UUID) -> None:
    require_email_sync(actor)
    async with deps.writing() as db:
        row = await _load_usable(db, actor, account_id)
        if row.owner_id != actor.user_id:
            raise PermissionDenied(Text("Only the account's owner can disconnect it."))
        await db.delete(row)


# ---- reading ------------------------------------------------------------------------

async def _member_ids(db: AsyncSession, row: EmailAccount) -> list[uuid.UUID]:
    return list((await db.scalars(select(EmailAccountMember.user_id).where(
        EmailAccountMember.company_id == row.company_id, EmailAccountMember.account_id == row.id))).all())


async def _view(db: AsyncSession, row: EmailAccount) -> AccountView:
    owner = await db.scalar(select(User.name).where(User.company_id == row.company_id, User.id == row.owner_id))
    return AccountView(
        id=row.id, kind=AccountKind(row.kind), address=row.address, display_name=row.display_name,
        provider=row.provider, provider_name=_preset(row.provider).name, owner_id=row.owner_id,
        owner_name=owner or "", member_ids=await _member_ids(db, row), login=row.login,
        imap_host=row.imap_host, imap_port=row.imap_port, imap_security=row.imap_security,
        smtp_host=row.smtp_host, smtp_port=row.smtp_port, smtp_security=row.smtp_security,
        attachment_limit_bytes=row.attachment_limit_bytes, sync_start=row.sync_start,
        default_visibility=row.default_visibility, contact_policy=row.contact_policy,
        last_test_at=row.last_test_at, last_test_error=row.last_test_error, created_at=row.created_at,
        auth_method=row.auth_method,
        sync_state=row.sync_state, sync_error=row.sync_error,
        needs_reauth=row.auth_method == "oauth2" and bool(await db.scalar(select(AccountOAuthToken.needs_reauth).where(
            AccountOAuthToken.company_id == row.company_id, AccountOAuthToken.account_id == row.id))),
    )


async def _load_usable(db: AsyncSession, actor: Actor, account_id: uuid.UUID) -> EmailAccount:
    """The account, if the actor may use it; otherwise NotFound (never "exists but hidden")."""
    row = await db.get(EmailAccount, (actor.company_id, account_id))
    if row is None:
        raise NotFound(Text("No such email account."))
    members = frozenset(await _member_ids(db, row))
    if not can_use_account(AccountKind(row.kind), row.owner_id, members, actor.user_id):
        raise NotFound(Text("No such email account."))
    return row


async def access_account(deps: Deps, actor: Actor, account_id: uuid.UUID) -> AccountView:
    require_email_sync(actor)
    async with deps.reading() as db:
        return await _view(db, await _load_usable(db, actor, account_id))


async def list_accounts(deps: Deps, actor: Actor) -> list[AccountView]:
    """The accounts the actor owns or is a team member of."""
    require_email_sync(actor)
    member_of = select(EmailAccountMember.account_id).where(
        EmailAccountMember.company_id == actor.company_id, EmailAccountMember.user_id == actor.user_id)
    async with deps.reading() as db:
        rows = (await db.scalars(select(EmailAccount).where(
            EmailAccount.company_id == actor.company_id,
            or_(EmailAccount.owner_id == actor.user_id, EmailAccount.id.in_(member_of)),
        ).order_by(EmailAccount.address))).all()
        return [await _view(db, r) for r in rows]


# ---- operator ------------------------------------------------------------------------

async def rotate_account_secrets(deps: Deps) -> int:
    """Re-encrypt every stored secret with the newest key; returns how many."""
    async with deps.writing() as db:
        rows = (await db.scalars(select(EmailAccount))).all()
        for row in rows:
            row.secret = deps.secrets.rotate(row.secret)
    return len(rows) + await oauth.rotate_token_secrets(deps)


async def _secret(deps: Deps, account: EmailAccount) -> tuple[str, str]:
    """(password or access token, mechanism): decrypted only here; an OAuth token refreshed if due.

    Raises ``domain.oauth.ReauthorisationNeeded`` or ``OAuthTokenError`` for an OAuth account.
    """
    if account.auth_method == "oauth2":
        return await oauth.fresh_access_token(deps, account.company_id, account.id), "xoauth2"
    return deps.secrets.decrypt(account.secret), "password"


async def oauth_aware_imap_login(deps: Deps, account: EmailAccount) -> ServerLogin:
    """How to log in to a stored account's IMAP server; OAuth failures raised as such (for the sync)."""
    secret, mechanism = await _secret(deps, account)
    return ServerLogin(account.imap_host, account.imap_port, account.imap_security, account.login, secret, mechanism)


async def imap_login(deps: Deps, account: EmailAccount) -> ServerLogin:
    """How to log in to a stored account's IMAP server.

    An OAuth sign-in that cannot be renewed raises what a refused login would:
    ``ImapAuthError`` (re-authorisation needed) or ``ImapError`` (try again later).
    """
    try:
        return await oauth_aware_imap_login(deps, account)
    except ReauthorisationNeeded as exc:
        raise ImapAuthError(str(exc)) from exc
    except OAuthTokenError as exc:
        raise ImapError(exc.detail) from exc


async def smtp_login(deps: Deps, account: EmailAccount) -> ServerLogin:
    """How to log in to a stored account's SMTP server; OAuth failures raised as such."""
    secret, mechanism = await _secret(deps, account)
    return ServerLogin(account.smtp_host, account.smtp_port, account.smtp_security, account.login, secret, mechanism)


async def owner_of_account(deps: Deps, account_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """(company_id, owner user id) of an account: for the operator's CLI only."""
    async with deps.reading() as db:
        row = (await db.execute(select(EmailAccount.company_id, EmailAccount.owner_id)
                                .where(EmailAccount.id == account_id))).first()
    if row is None:
        raise NotFound(Text("No such email account."))
    return row.company_id, row.owner_id
