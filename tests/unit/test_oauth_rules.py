"""The OAuth rules without I/O: what a token endpoint's refusal means, when to refresh, whose address."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from salesinbox.domain.oauth import (
    backoff_delays,
    classify_token_error,
    email_from_id_token,
    expiry_from,
    needs_refresh,
)
from salesinbox.domain.providers import OAUTH_ENDPOINTS, get_preset, oauth_endpoints
from salesinbox.logs import redact_text

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("status", "error", "description", "kind"),
    [
        (400, "invalid_grant", "Token has been expired or revoked.", "revoked"),  # Google
        (400, "invalid_grant", "AADSTS700082: The refresh token has expired due to inactivity.", "revoked"),
        (
            400,
            "interaction_required",
            "AADSTS50173: The provided grant has expired due to it being revoked.",
            "revoked",
        ),
        (None, "", "", "transient"),  # no answer at all
        (503, "", "", "transient"),
        (429, "", "", "transient"),
        (400, "temporarily_unavailable", "", "transient"),
        (401, "invalid_client", "The OAuth client was not found.", "refused"),
        (400, "unauthorized_client", "", "refused"),
    ],
)
def test_a_token_endpoint_refusal_is_classified(status, error, description, kind):
    assert classify_token_error(status, error, description) == kind


def test_a_token_is_refreshed_within_five_minutes_of_its_expiry():
    assert not needs_refresh(NOW + dt.timedelta(minutes=6), NOW)
    assert needs_refresh(NOW + dt.timedelta(minutes=4), NOW)
    assert needs_refresh(NOW - dt.timedelta(seconds=1), NOW)
    assert needs_refresh(None, NOW)
    assert expiry_from(NOW, 3599) == NOW + dt.timedelta(seconds=3599)
    assert expiry_from(NOW, None) == NOW + dt.timedelta(hours=1)


def _jwt(claims) -> str:
    def part(data) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_the_address_comes_from_the_id_token():
    assert email_from_id_token(_jwt({"email": "Ada@Example.com"})) == "ada@example.com"
    assert email_from_id_token(_jwt({"preferred_username": "bo@contoso.com"})) == "bo@contoso.com"  # Microsoft
    assert email_from_id_token(_jwt({"sub": "123"})) is None
    assert email_from_id_token("not a token") is None
    assert email_from_id_token(None) is None
    assert email_from_id_token("a.%%%.c") is None


def test_backoff_doubles_and_is_capped():
    assert backoff_delays(4) == [0.5, 1.0, 2.0]
    assert backoff_delays(10)[-1] == 8.0
    assert backoff_delays(1) == []


def test_google_and_microsoft_have_sign_in_endpoints_with_the_mail_scopes():
    google, microsoft = oauth_endpoints("gmail"), oauth_endpoints("microsoft")
    assert "https://mail.google.com/" in google.scopes and dict(google.authorize_params)["access_type"] == "offline"
    assert {
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    } <= set(microsoft.scopes)
    assert oauth_endpoints("yahoo") is None
    for key in OAUTH_ENDPOINTS:
        get_preset(key)  # every sign-in belongs to a preset


def test_an_authorisation_code_in_a_logged_url_is_redacted():
    line = '127.0.0.1:5 - "GET /accounts/oauth/callback?state=s1&code=4/0AbC-xyz HTTP/1.1" 303'
    assert redact_text(line) == '127.0.0.1:5 - "GET /accounts/oauth/callback?state=s1&code=[redacted] HTTP/1.1" 303'
    assert redact_text("Authorization: Bearer ya29.a0Af") == "Authorization: Bearer [redacted]"
