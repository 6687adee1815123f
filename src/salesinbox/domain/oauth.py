"""OAuth 2.0 for mail accounts: the rules, without the I/O.

An OAuth account (``auth_method = "oauth2"``) logs in to IMAP and SMTP with
XOAUTH2 and a short-lived access token. Its token set (access token, refresh
token, expiry, a version number) is stored encrypted; the services refresh it
before it expires. The rules here:

- ``needs_refresh``: refresh when less than ``REFRESH_MARGIN`` is left, so a
  token never expires in the middle of a login or a long IDLE.
- ``classify_token_error``: what a token endpoint's refusal means. ``revoked``
  (``invalid_grant``: the user revoked access, changed the password, or the
  refresh token expired; Microsoft says AADSTS700082 / AADSTS50173 ...) needs
  the person to sign in again and no refresh is tried until then;
  ``transient`` (network, 5xx, 429, ``temporarily_unavailable``) is retried
  with backoff; anything else (a misconfigured client) is ``refused``.
- ``email_from_id_token``: the address the person signed in as. The ID token
  comes straight from the token endpoint over TLS, which OpenID Connect Core
  3.1.3.7 (6) accepts in place of checking its signature.

Pure Python, stdlib only.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Literal

REFRESH_MARGIN = dt.timedelta(minutes=5)
# Microsoft's codes for a refresh token that can no longer be used, sometimes
# sent with an error other than invalid_grant (AADSTS700082: expired through
# inactivity; AADSTS50173: the grant was revoked after a password change;
# AADSTS700084: a single-page-app token past its lifetime).
_MICROSOFT_REVOKED = ("AADSTS700082", "AADSTS50173", "AADSTS700084", "AADSTS70000", "AADSTS70008")

TokenErrorKind = Literal["revoked", "transient", "refused"]

REAUTHORISE_WORDS = (
    "Re-authorisation needed: {provider} no longer accepts this app's access to {address} "
    "(access was revoked, the password changed, or the sign-in expired). Sync is paused until "
    "you sign in again: open the account and choose Re-authorise."
)


@dataclass(frozen=True)
class TokenGrant:
    """What a token endpoint answered: a new access token, maybe a new (rotated) refresh token."""

    access_token: str
    refresh_token: str | None
    expires_in: int | None
    id_token: str | None = None

    def __repr__(self) -> str:  # tokens never reach a log line
        return f"TokenGrant(expires_in={self.expires_in})"


class OAuthTokenError(Exception):
    """A token endpoint refused or could not be reached; ``kind`` says what follows."""

    def __init__(self, kind: TokenErrorKind, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


def classify_token_error(status: int | None, error: str = "", description: str = "") -> TokenErrorKind:
    """``status`` None means no HTTP answer at all (network)."""
    text = f"{error} {description}"
    if error == "invalid_grant" or any(code in text for code in _MICROSOFT_REVOKED):
        return "revoked"
    if status is None or status >= 500 or status == 429 or error in ("temporarily_unavailable", "server_error"):
        return "transient"
    return "refused"


def expiry_from(now: dt.datetime, expires_in: int | None) -> dt.datetime:
    """When a token answered at ``now`` expires; one hour if the endpoint did not say (both providers' default)."""
    return now + dt.timedelta(seconds=expires_in if expires_in and expires_in > 0 else 3600)


def needs_refresh(expires_at: dt.datetime | None, now: dt.datetime, margin: dt.timedelta = REFRESH_MARGIN) -> bool:
    return expires_at is None or expires_at - now < margin


def email_from_id_token(id_token: str | None) -> str | None:
    """The ``email`` claim (Microsoft: else ``preferred_username``) of an ID token; None if absent or unreadable."""
    if not id_token or id_token.count(".") != 2:
        return None
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict):
        return None
    for name in ("email", "preferred_username", "upn"):
        value = claims.get(name)
        if isinstance(value, str) and "@" in value:
            return value.strip().lower()
    return None


def backoff_delays(attempts: int, first: float = 0.5, cap: float = 8.0) -> list[float]:
    """Waits between tries of a transient failure: 0.5, 1, 2 ... seconds, capped."""
    return [min(cap, first * 2**i) for i in range(max(attempts - 1, 0))]


class ReauthorisationNeeded(Exception):
    """The account's sign-in was refused for good: its owner must sign in again (nothing is retried)."""
