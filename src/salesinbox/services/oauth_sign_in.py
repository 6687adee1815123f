"""Connecting (or re-authorising) an account by signing in with Google or Microsoft.

OAuth 2.0 authorization code flow with PKCE (RFC 6749 4.1, RFC 7636 S256)
and ``state`` (RFC 6749 10.12):

1. ``begin``: a random ``state`` and PKCE ``code_verifier``; the caller keeps
   them (the web app: in the server-side session, so they never reach the
   browser) with what the person chose on the connect form, and sends the
   browser to the provider's authorize URL.
2. The provider sends the browser back with ``code`` and ``state``.
3. ``complete``: a ``state`` other than the one kept is refused before
   anything else (a forged or replayed callback), and the kept one is used up
   either way. The code is exchanged with the verifier; the address comes
   from the ID token; then either a new account is saved (after XOAUTH2 logins
   to IMAP and SMTP work: nothing is saved otherwise) or the account that
   needed it gets its new tokens and resumes syncing.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import asdict, dataclass, field

from salesinbox.domain.accounts import AccountKind, ContactPolicy, Security, SyncStart
from salesinbox.domain.errors import DomainError, PermissionDenied, ValidationFailed
from salesinbox.domain.oauth import OAuthTokenError, email_from_id_token
from salesinbox.domain.providers import OAuthEndpoints, oauth_endpoints
from salesinbox.domain.tenancy import Actor
from salesinbox.domain.text import Text
from salesinbox.services import accounts
from salesinbox.services.accounts import AccountInput, AccountView
from salesinbox.services.unit_of_work import Deps

CALLBACK_PATH = "/accounts/oauth/callback"


class SignInRefused(DomainError):
    """The sign-in did not complete; the message says why in plain words."""


@dataclass
class PendingSignIn:
    """What is kept between sending the browser away and its return (never shown to the browser)."""

    provider: str
    state: str
    code_verifier: str
    user_id: str
    account_id: str | None = None  # re-authorise this account; None: connect a new one
    choices: dict = field(default_factory=dict)  # the connect form's other fields (kind, servers, sync ...)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> PendingSignIn | None:
        try:
            return cls(**data) if isinstance(data, dict) else None
        except TypeError:
            return None


def sign_in_providers(deps: Deps) -> list[OAuthEndpoints]:
    """The providers whose OAuth client the self-hoster configured: only these get a button."""
    if deps.oauth is None:
        return []
    return [e for key in ("gmail", "microsoft") if (e := oauth_endpoints(key)) and deps.oauth.configured(key)]


def begin(
    deps: Deps,
    actor: Actor,
    provider: str,
    redirect_uri: str,
    *,
    choices: dict | None = None,
    account: AccountView | None = None,
) -> tuple[str, PendingSignIn]:
    """The provider's authorize URL to send the browser to, and what to keep until it comes back."""
    accounts.require_email_sync(actor)
    if deps.oauth is None or not deps.oauth.configured(provider):
        raise ValidationFailed({"provider": Text("Signing in with this provider is not set up on this server.")})
    if account is not None and account.owner_id != actor.user_id:
        raise PermissionDenied(Text("Only the account's owner can sign in for it."))
    pending = PendingSignIn(
        provider=provider,
        state=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),  # 86 characters: within RFC 7636's 43..128
        user_id=str(actor.user_id),
        account_id=str(account.id) if account else None,
        choices={k: v for k, v in (choices or {}).items() if k != "password" and not k.startswith("_")},
    )
    hint = account.login if account else (choices or {}).get("address", "")
    return deps.oauth.authorization_url(provider, redirect_uri, pending.state, pending.code_verifier, hint), pending


async def complete(
    deps: Deps,
    actor: Actor,
    pending: PendingSignIn | None,
    *,
    state: str,
    code: str,
    error: str = "",
    redirect_uri: str,
) -> tuple[AccountView, bool]:
    """Finish the sign-in; (the account, True if it was newly connected)."""
    if (
        pending is None
        or not secrets.compare_digest(state or "", pending.state)
        or pending.user_id != str(actor.user_id)
    ):
        raise SignInRefused(Text(
            "This sign-in answer does not belong to a sign-in started here. Nothing was changed; "
            "start again from the account page."
        ))
    if error:
        raise SignInRefused(
            Text("The provider did not grant access (%(error)s). Nothing was changed.", error=error[:100])
        )
    if not code:
        raise SignInRefused(Text("The provider sent no authorisation code. Nothing was changed."))
    try:
        grant = await deps.oauth.exchange_code(pending.provider, code, redirect_uri, pending.code_verifier)
    except OAuthTokenError as exc:
        raise SignInRefused(Text("%(why)s Nothing was changed.", why=exc.detail)) from exc
    if not grant.refresh_token:
        raise SignInRefused(Text(
            "The provider gave no long-lived access (no refresh token). Remove this app's access "
            "in your provider account, then sign in again."
        ))
    address = email_from_id_token(grant.id_token)
    if pending.account_id:
        view = await accounts.reauthorise_account(deps, actor, uuid.UUID(pending.account_id), address, grant)
        return view, False
    choices = dict(pending.choices)
    choices["address"] = address or choices.get("address", "")
    choices["login"] = ""  # XOAUTH2 names the signed-in address
    data = _account_input(pending.provider, choices)
    return await accounts.connect_oauth_account(deps, actor, data, grant), True


def _account_input(provider: str, choices: dict) -> AccountInput:
    def number(key: str) -> int | None:
        raw = str(choices.get(key) or "").strip()
        return int(raw) if raw.isdigit() else None

    def pick(enum, key: str, default=None):
        try:
            return enum(choices[key]) if choices.get(key) else default
        except ValueError:
            return default

    return AccountInput(
        address=choices.get("address", ""),
        login=choices.get("login", ""),
        provider=provider,
        kind=pick(AccountKind, "kind", AccountKind.PRIVATE),
        display_name=choices.get("display_name", ""),
        imap_host=choices.get("imap_host", ""),
        imap_port=number("imap_port"),
        imap_security=pick(Security, "imap_security"),
        smtp_host=choices.get("smtp_host", ""),
        smtp_port=number("smtp_port"),
        smtp_security=pick(Security, "smtp_security"),
        sync_start=pick(SyncStart, "sync_start", SyncStart.ONE_MONTH),
        default_visibility=choices.get("default_visibility") or None,
        contact_policy=pick(ContactPolicy, "contact_policy", ContactPolicy.FROM_SENT),
        member_ids=[uuid.UUID(m) for m in choices.get("member_ids", []) if _is_uuid(m)],
    )


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
