"""Provider presets: the IMAP/SMTP settings a user would otherwise look up.

A preset fills in hosts, ports and security when someone connects an email
account, and carries the provider-specific facts that "Test connection" needs
to explain a failure in plain words (where to create an app password) and that
sending needs (the attachment limit, whether the server files its own copy of
sent mail in Sent).

Security is one of ``"tls"`` (TLS from the first byte, RFC 8314: ports 993 and
465), ``"starttls"`` (plain connection upgraded with STARTTLS: ports 143 and
587) or ``"none"``.

Host names and ports are the providers' published ones. Limits are stored in
binary megabytes (``n * MiB``), as the providers' "25 MB" and "20 MB" figures
are usually applied; they count the attachments, and base64 encoding makes
the message on the wire about a third larger.

Pure Python, stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from salesinbox.domain.text import Text

Security = Literal["tls", "starttls", "none"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class ProviderPreset:
    """The connection settings and quirks of one email provider."""

    key: str
    name: str
    imap_host: str
    imap_port: int
    imap_security: Security
    smtp_host: str
    smtp_port: int
    smtp_security: Security
    attachment_limit_bytes: int
    app_password_hint: str  # a Text: the connect form and the connection test show it translated
    # True when the provider files a copy of mail sent over SMTP in Sent by
    # itself; the client must then not APPEND one, or Sent shows it twice.
    saves_sent_copy: bool


_PRESETS: dict[str, ProviderPreset] = {
    preset.key: preset
    for preset in (
        ProviderPreset(
            key="gmail",
            name="Gmail / Google Workspace",
            imap_host="imap.gmail.com",
            imap_port=993,
            imap_security="tls",
            smtp_host="smtp.gmail.com",
            smtp_port=465,
            smtp_security="tls",
            attachment_limit_bytes=25 * MiB,  # Gmail documents 25 MB
            app_password_hint=Text(
                "Turn on 2-Step Verification in your Google Account, then create an app password "
                "at myaccount.google.com/apppasswords (a Workspace administrator can disable this)."
            ),
            saves_sent_copy=True,
        ),
        ProviderPreset(
            key="microsoft",
            name="Microsoft 365 / Outlook.com",
            imap_host="outlook.office365.com",
            imap_port=993,
            imap_security="tls",
            smtp_host="smtp.office365.com",
            smtp_port=587,
            smtp_security="starttls",
            attachment_limit_bytes=20 * MiB,  # Outlook documents 20 MB
            # Microsoft switched off password ("basic") sign-in for IMAP in
            # Microsoft 365 (2022) and Outlook.com (2024); app passwords are
            # basic sign-in too, so there is nowhere to create a working one.
            app_password_hint=Text(
                "Microsoft 365 and Outlook.com no longer accept passwords or app passwords from "
                "other mail apps for IMAP: sign in with your Microsoft account (OAuth) instead, "
                "or ask your administrator."
            ),
            saves_sent_copy=True,
        ),
        ProviderPreset(
            key="yahoo",
            name="Yahoo Mail",
            imap_host="imap.mail.yahoo.com",
            imap_port=993,
            imap_security="tls",
            smtp_host="smtp.mail.yahoo.com",
            smtp_port=465,
            smtp_security="tls",
            attachment_limit_bytes=25 * MiB,  # Yahoo documents 25 MB
            app_password_hint=Text(
                "Yahoo needs an app password for other mail apps: open Account info, then "
                "Account security, and choose 'Generate app password'."
            ),
            # Not verified against Yahoo: assume no server-side copy, so the
            # Sent copy is never missing (at worst it is duplicated).
            saves_sent_copy=False,
        ),
        ProviderPreset(
            key="icloud",
            name="iCloud Mail",
            imap_host="imap.mail.me.com",
            imap_port=993,
            imap_security="tls",
            smtp_host="smtp.mail.me.com",
            smtp_port=587,
            smtp_security="starttls",
            attachment_limit_bytes=20 * MiB,  # iCloud Mail documents 20 MB per message
            app_password_hint=Text(
                "iCloud needs an app-specific password for other mail apps: sign in at "
                "account.apple.com, open Sign-In and Security, then App-Specific Passwords."
            ),
            saves_sent_copy=False,
        ),
        ProviderPreset(
            key="zoho",
            name="Zoho Mail",
            # Organisation (custom-domain) accounts use imappro / smtppro, and
            # accounts in other data centres use zoho.eu, zoho.in ...
            imap_host="imap.zoho.com",
            imap_port=993,
            imap_security="tls",
            smtp_host="smtp.zoho.com",
            smtp_port=465,
            smtp_security="tls",
            attachment_limit_bytes=20 * MiB,  # plan-dependent: the conservative figure
            app_password_hint=Text(
                "With two-factor authentication on, Zoho needs an application-specific password: "
                "create one in Zoho Accounts under Security, App Passwords, and check that IMAP "
                "access is on in Zoho Mail's Mail Accounts settings."
            ),
            # Zoho only keeps a copy when "Save copy of sent emails" is on.
            saves_sent_copy=False,
        ),
        ProviderPreset(
            key="fastmail",
            name="Fastmail",
            imap_host="imap.fastmail.com",
            imap_port=993,
            imap_security="tls",
            smtp_host="smtp.fastmail.com",
            smtp_port=465,
            smtp_security="tls",
            attachment_limit_bytes=25 * MiB,  # conservative; Fastmail allows more
            app_password_hint=Text(
                "Fastmail needs an app password for other mail apps: create one in Settings, "
                "Privacy & Security, under App passwords, with IMAP and SMTP access."
            ),
            saves_sent_copy=False,
        ),
        ProviderPreset(
            key="other",
            name="Other (IMAP / SMTP)",
            imap_host="",
            imap_port=993,
            imap_security="tls",
            smtp_host="",
            smtp_port=587,
            smtp_security="starttls",
            # A default only: an account can carry its own limit, e.g. with
            # dataclasses.replace(preset, attachment_limit_bytes=...).
            attachment_limit_bytes=25 * MiB,
            app_password_hint=Text(
                "If your provider offers app passwords (often in its account security settings, "
                "once two-factor authentication is on), create one and use it here."
            ),
            saves_sent_copy=False,
        ),
    )
}

# Providers that refuse an account's normal password over IMAP and SMTP: a
# failed login there almost always means "use an app password".
_APP_PASSWORD_ONLY = frozenset({"yahoo", "icloud", "fastmail"})

# Consumer domains only: a company domain hosted by Google or Microsoft looks
# like any other domain without an MX lookup, so it guesses "other".
_DOMAINS = {
    "gmail.com": "gmail",
    "googlemail.com": "gmail",
    "icloud.com": "icloud",
    "me.com": "icloud",
    "mac.com": "icloud",
    "ymail.com": "yahoo",
    "rocketmail.com": "yahoo",
    "zohomail.com": "zoho",
    "msn.com": "microsoft",
}

# First labels of provider domains that exist under many country suffixes
# (yahoo.co.uk, hotmail.fr, zoho.eu, fastmail.fm ...).
_BRANDS = {
    "yahoo": "yahoo",
    "outlook": "microsoft",
    "hotmail": "microsoft",
    "live": "microsoft",
    "zoho": "zoho",
    "fastmail": "fastmail",
}


def get_preset(key: str) -> ProviderPreset:
    """The preset for ``key``; ValueError naming the known keys otherwise."""
    try:
        return _PRESETS[key]
    except KeyError:
        known = ", ".join(_PRESETS)
        words = Text("unknown provider %(key)s; known providers: %(known)s", key=repr(key), known=known)
        raise ValueError(words) from None


def all_presets() -> tuple[ProviderPreset, ...]:
    """Every preset, in the order a provider picker shows them ("other" last)."""
    return tuple(_PRESETS.values())


def requires_app_password(key: str) -> bool:
    """Whether the provider accepts only app passwords from other mail apps."""
    return key in _APP_PASSWORD_ONLY


def guess_provider(address: str) -> str:
    """The preset key for an email address, judged by its domain; "other" if unsure."""
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    if domain in _DOMAINS:
        return _DOMAINS[domain]
    brand, _, suffix = domain.partition(".")
    if brand in _BRANDS and _is_public_suffix_like(suffix):
        return _BRANDS[brand]
    return "other"


def _is_public_suffix_like(suffix: str) -> bool:
    """True for "com", "fr", "co.uk", "com.br"; False for "example.com".

    A cheap stand-in for the public suffix list: one or two short labels.
    Good enough to tell yahoo.co.uk from yahoo.example.com.
    """
    labels = suffix.split(".")
    return 1 <= len(labels) <= 2 and all(0 < len(label) <= 3 for label in labels)


# ---- OAuth 2.0 (authorization code + PKCE) ---------------------------------------------
# Kept apart from the presets: only Google and Microsoft offer OAuth for IMAP and
# SMTP. The endpoints are the providers' published ones; a self-hoster (or a test)
# may point them at another identity provider through settings.


@dataclass(frozen=True)
class OAuthEndpoints:
    """Where a provider's users sign in and where tokens are fetched and refreshed."""

    preset_key: str  # the ProviderPreset this sign-in is for
    settings_name: str  # "google" -> SALESINBOX_OAUTH_GOOGLE_CLIENT_ID ...
    label: str  # the button: "Sign in with Google"
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    # Google hands out a refresh token only with access_type=offline, and again
    # on a later consent only with prompt=consent; Microsoft needs offline_access.
    authorize_params: tuple[tuple[str, str], ...] = ()


OAUTH_ENDPOINTS: dict[str, OAuthEndpoints] = {
    "gmail": OAuthEndpoints(
        preset_key="gmail",
        settings_name="google",
        label="Google",
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        scopes=("https://mail.google.com/", "openid", "email"),
        authorize_params=(("access_type", "offline"), ("prompt", "consent")),
    ),
    "microsoft": OAuthEndpoints(
        preset_key="microsoft",
        settings_name="microsoft",
        label="Microsoft",
        authorize_url="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_url="https://login.microsoftonline.com/common/oauth2/v2.0/token",
        scopes=(
            "https://outlook.office.com/IMAP.AccessAsUser.All",
            "https://outlook.office.com/SMTP.Send",
            "offline_access",
            "openid",
            "email",
        ),
    ),
}


def oauth_endpoints(preset_key: str) -> OAuthEndpoints | None:
    """The OAuth sign-in of a provider, or None where it has none (passwords only)."""
    return OAUTH_ENDPOINTS.get(preset_key)
