"""Why an email account could not connect, in categories and in plain words.

"Test connection" logs in to an account's IMAP and SMTP servers once; when it
fails, the probe (adapters/mail/probe.py) reports a ``ProbeFailure``: a
``FailureKind``, the protocol, and the server's own words as ``detail``.
``explain`` turns a failure into a sentence that says what went wrong and
what to do, using the provider preset for provider-specific advice.

Explanations never repeat ``detail``: a broken server may echo the command it
refused, password included. The UI shows ``detail`` separately, as technical
details; the probe scrubs the password from it before it gets here.

``classify_login_error`` maps a refused login to a kind, recognising the
texts the big providers are known to send:

- Gmail, IMAP: "[ALERT] Application-specific password required",
  "[ALERT] Your account is not enabled for IMAP use",
  "[AUTHENTICATIONFAILED] Invalid credentials (Failure)";
  SMTP: "534-5.7.9 Application-specific password required",
  "534-5.7.14 Please log in via your web browser",
  "535-5.7.8 Username and Password not accepted".
- Microsoft, IMAP: "User is authenticated but not connected" (IMAP off for
  the mailbox), "LOGIN failed."; SMTP: "5.7.139 Authentication unsuccessful,
  SmtpClientAuthentication is disabled for the Tenant", "... basic
  authentication is disabled", "... security defaults policy blocks legacy
  authentication" (all: sending from other apps is off), and "5.7.139
  Authentication unsuccessful, the user credentials were incorrect".
- RFC 5530 (IMAP response codes): [AUTHENTICATIONFAILED] and
  [PRIVACYREQUIRED] (log in only after TLS); RFC 4954 (SMTP AUTH): 535
  (credentials invalid), 534 (mechanism too weak: a provider policy), 538
  (encryption required); RFC 3207: 530 "Must issue a STARTTLS command first".
- Yahoo, iCloud and Fastmail answer a normal account password with a plain
  authentication failure, because they accept only app passwords from other
  mail apps; for them such a failure means APP_PASSWORD_REQUIRED.

Pure Python, stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from salesinbox.domain.providers import ProviderPreset, requires_app_password
from salesinbox.domain.text import Text

Protocol = Literal["imap", "smtp"]


class FailureKind(StrEnum):
    """What kind of thing went wrong; each has its own advice."""

    WRONG_PASSWORD = "wrong_password"
    APP_PASSWORD_REQUIRED = "app_password_required"
    HOST_UNREACHABLE = "host_unreachable"
    TLS_MISMATCH = "tls_mismatch"
    UNTRUSTED_CERTIFICATE = "untrusted_certificate"
    # The password was fine but the protocol is switched off for the account
    # (IMAP access, or SMTP AUTH for sending from other apps).
    IMAP_DISABLED = "imap_disabled"
    TIMEOUT = "timeout"
    PROTOCOL_ERROR = "protocol_error"


@dataclass(frozen=True)
class ProbeFailure:
    """One failed connection test: the kind, the protocol, the server's words."""

    kind: FailureKind
    protocol: Protocol
    # What the server (or the TLS library) said, for the technical details.
    # Never contains the password.
    detail: str


# Checked in this order: the first match wins, so the specific texts come
# before the generic "authentication failed" they often also contain.
_TLS_REQUIRED = (
    "[privacyrequired]",
    "must issue a starttls command first",
    "encryption required",
    "plaintext authentication disallowed",
)
_APP_PASSWORD = ("application-specific password required", "please log in via your web browser", "web login required")
_DISABLED = (
    "not enabled for imap",
    "user is authenticated but not connected",
    "imap access is disabled",
    "imap is disabled",
    "smtpclientauthentication is disabled",
    "basic authentication is disabled",
    "blocks legacy authentication",
)
_WRONG_PASSWORD = (
    "[authenticationfailed]",
    "invalid credentials",
    "authentication failed",
    "authentication unsuccessful",
    "login failed",
    "username and password not accepted",
    "credentials invalid",
    "bad credentials",
)

_SMTP_CODE_KINDS = {
    "535": FailureKind.WRONG_PASSWORD,
    "530": FailureKind.TLS_MISMATCH,  # RFC 3207: STARTTLS first (auth-required 530s are caught as text)
    "538": FailureKind.TLS_MISMATCH,
    "534": FailureKind.APP_PASSWORD_REQUIRED,
}
_SMTP_CODE = re.compile(r"^\s*(\d{3})\b")


def classify_login_error(protocol: Protocol, server_text: str, preset_key: str) -> FailureKind:
    """The kind of a refused login, from the server's reply text.

    ``server_text`` is the tagged IMAP reply (e.g. "NO [AUTHENTICATIONFAILED]
    Authentication failed.") or the SMTP reply with its code (e.g. "535 5.7.8
    Authentication credentials invalid").
    """
    kind = _kind_from_text(server_text.lower())
    if kind is None and protocol == "smtp":
        kind = _kind_from_smtp_code(server_text)
    if kind is None:
        return FailureKind.PROTOCOL_ERROR
    if kind is FailureKind.WRONG_PASSWORD and requires_app_password(preset_key):
        return FailureKind.APP_PASSWORD_REQUIRED
    return kind


def _kind_from_text(text: str) -> FailureKind | None:
    for needles, kind in (
        (_TLS_REQUIRED, FailureKind.TLS_MISMATCH),
        (_APP_PASSWORD, FailureKind.APP_PASSWORD_REQUIRED),
        (_DISABLED, FailureKind.IMAP_DISABLED),
        (_WRONG_PASSWORD, FailureKind.WRONG_PASSWORD),
    ):
        if any(needle in text for needle in needles):
            return kind
    return None


def _kind_from_smtp_code(server_text: str) -> FailureKind | None:
    match = _SMTP_CODE.match(server_text)
    return _SMTP_CODE_KINDS.get(match.group(1)) if match else None


# -- plain words ---------------------------------------------------------------
# Each sentence is one msgid; the protocol's name, the provider's advice and
# where it puts its servers are parameters, translated on their own.

_NAMES = {"imap": Text("IMAP (receiving)"), "smtp": Text("SMTP (sending)")}


def explain(failure: ProbeFailure, preset: ProviderPreset) -> Text:
    """A plain-words sentence or two: what went wrong and what to do about it."""
    name = _NAMES[failure.protocol]
    return _EXPLAINERS[failure.kind](name, failure.protocol, preset)


def _wrong_password(name: Text, protocol: Protocol, preset: ProviderPreset) -> Text:
    return Text(
        "%(name)s login failed: the server rejected the user name or password. "
        "Check the password and that the user name is the full email address. %(hint)s",
        name=name, hint=preset.app_password_hint,
    )


def _app_password_required(name: Text, protocol: Protocol, preset: ProviderPreset) -> Text:
    return Text(
        "%(name)s login failed: %(provider)s does not accept your normal account password "
        "from other mail apps, it wants an app password. %(hint)s",
        name=name, provider=preset.name, hint=preset.app_password_hint,
    )


def _disabled(name: Text, protocol: Protocol, preset: ProviderPreset) -> Text:
    if protocol == "smtp":
        return Text(
            "The password was accepted, but sending from other mail apps (SMTP AUTH) is disabled "
            "for this mailbox or organisation. An administrator must enable it; in Microsoft 365: "
            "admin center, Users, Active users, Mail, Manage email apps, Authenticated SMTP."
        )
    return Text(
        "The password was accepted, but IMAP access is switched off for this mailbox. "
        "Turn IMAP on in the account's mail settings, or ask your administrator to allow it.%(where)s",
        where=_where_imap(preset),
    )


def _where_imap(preset: ProviderPreset) -> str:
    if preset.key == "microsoft":
        return Text(" In Microsoft 365: admin center, Users, Active users, Mail, Manage email apps, IMAP.")
    if preset.key == "zoho":
        return Text(" In Zoho Mail: Settings, Mail Accounts, IMAP, IMAP Access.")
    return ""


def _host_unreachable(name: Text, protocol: Protocol, preset: ProviderPreset) -> Text:
    return Text(
        "Could not reach the %(name)s server: check the server name and port%(expected)s. "
        "If they are right, the server may be down or a firewall may be blocking the port.",
        name=name, expected=_expected(protocol, preset),
    )


def _tls_mismatch(name: Text, protocol: Protocol, preset: ProviderPreset) -> Text:
    return Text(
        "The %(name)s server and this app disagree about encryption on this port. Ports 993 and 465 "
        "use TLS from the start; ports 143 and 587 use STARTTLS. Choose the security setting "
        "that matches the port%(expected)s.",
        name=name, expected=_expected(protocol, preset),
    )


def _untrusted_certificate(name: Text, protocol: Protocol, preset: ProviderPreset) -> Text:
    return Text(
        "The %(name)s server's certificate is not trusted: it is self-signed, expired, or made out "
        "to another host name. Check the server name (use the host name on the provider's "
        "certificate, not your own domain); if your organisation runs the server, ask its "
        "administrator for a valid certificate.",
        name=name,
    )


def _timeout(name: Text, protocol: Protocol, preset: ProviderPreset) -> Text:
    return Text(
        "The %(name)s server did not answer in time. Check the server name and "
        "port%(expected)s, then try again; if it keeps happening, the server "
        "or your network may be blocking or slowing the connection.",
        name=name, expected=_expected(protocol, preset),
    )


def _protocol_error(name: Text, protocol: Protocol, preset: ProviderPreset) -> Text:
    return Text(
        "The %(name)s server answered in a way this app did not expect. Check that the server "
        "name and port are the ones for %(protocol)s%(expected)s; "
        "the server's own words are in the technical details.",
        name=name, protocol=protocol.upper(), expected=_expected(protocol, preset),
    )


def _expected(protocol: Protocol, preset: ProviderPreset) -> str:
    """Where the preset puts the server, e.g. ' (Gmail uses imap.gmail.com, port 993 with TLS)'.

    Empty for a preset without hosts ("other").
    """
    host, port, security = (
        (preset.imap_host, preset.imap_port, preset.imap_security)
        if protocol == "imap"
        else (preset.smtp_host, preset.smtp_port, preset.smtp_security)
    )
    if not host:
        return ""
    how = {"tls": Text("with TLS"), "starttls": Text("with STARTTLS"), "none": Text("without encryption")}[security]
    return Text(
        " (%(provider)s uses %(host)s, port %(port)s %(how)s)", provider=preset.name, host=host, port=port, how=how
    )


_EXPLAINERS = {
    FailureKind.WRONG_PASSWORD: _wrong_password,
    FailureKind.APP_PASSWORD_REQUIRED: _app_password_required,
    FailureKind.IMAP_DISABLED: _disabled,
    FailureKind.HOST_UNREACHABLE: _host_unreachable,
    FailureKind.TLS_MISMATCH: _tls_mismatch,
    FailureKind.UNTRUSTED_CERTIFICATE: _untrusted_certificate,
    FailureKind.TIMEOUT: _timeout,
    FailureKind.PROTOCOL_ERROR: _protocol_error,
}
