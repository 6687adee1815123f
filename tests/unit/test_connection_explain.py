"""Connection failures: classifying the providers' login replies, explaining in plain words."""

from __future__ import annotations

import itertools

import pytest

from salesinbox.domain.connection import FailureKind, ProbeFailure, classify_login_error, explain
from salesinbox.domain.providers import ProviderPreset, all_presets, get_preset

K = FailureKind

# Replies as the providers send them (long ones, so kept out of the table).
GMAIL_IMAP_APP_PASSWORD = (
    "NO [ALERT] Application-specific password required: https://support.google.com/accounts/answer/185833 (Failure)"
)
GMAIL_SMTP_APP_PASSWORD = (
    "534 5.7.9 Application-specific password required. "
    "Learn more at https://support.google.com/mail/?p=InvalidSecondFactor"
)
GMAIL_SMTP_WEB_LOGIN = (
    "534 5.7.14 <https://accounts.google.com/signin/continue> Please log in via your web browser and then try again."
)
GMAIL_IMAP_DISABLED = (
    "NO [ALERT] Your account is not enabled for IMAP use. "
    "Please visit your Gmail settings page and enable your account for IMAP access. (Failure)"
)
GMAIL_SMTP_BAD_CREDENTIALS = (
    "535 5.7.8 Username and Password not accepted. "
    "For more information, go to https://support.google.com/mail/?p=BadCredentials"
)
MICROSOFT_SMTP_AUTH_DISABLED = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. "
    "Visit https://aka.ms/smtp_auth_disabled for more information."
)
MICROSOFT_SECURITY_DEFAULTS = (
    "535 5.7.139 Authentication unsuccessful, security defaults policy blocks legacy authentication."
)
DOVECOT_PRIVACY_REQUIRED = (
    "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
)


@pytest.mark.parametrize(
    ("protocol", "server_text", "preset_key", "kind"),
    [
        # Gmail
        ("imap", GMAIL_IMAP_APP_PASSWORD, "gmail", K.APP_PASSWORD_REQUIRED),
        ("smtp", GMAIL_SMTP_APP_PASSWORD, "gmail", K.APP_PASSWORD_REQUIRED),
        ("smtp", GMAIL_SMTP_WEB_LOGIN, "gmail", K.APP_PASSWORD_REQUIRED),
        ("imap", GMAIL_IMAP_DISABLED, "gmail", K.IMAP_DISABLED),
        ("imap", "NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)", "gmail", K.WRONG_PASSWORD),
        ("smtp", GMAIL_SMTP_BAD_CREDENTIALS, "gmail", K.WRONG_PASSWORD),
        # Microsoft
        ("imap", "NO User is authenticated but not connected.", "microsoft", K.IMAP_DISABLED),
        ("smtp", MICROSOFT_SMTP_AUTH_DISABLED, "microsoft", K.IMAP_DISABLED),
        (
            "smtp",
            "535 5.7.139 Authentication unsuccessful, basic authentication is disabled.",
            "microsoft",
            K.IMAP_DISABLED,
        ),
        ("smtp", MICROSOFT_SECURITY_DEFAULTS, "microsoft", K.IMAP_DISABLED),
        (
            "smtp",
            "535 5.7.139 Authentication unsuccessful, the user credentials were incorrect.",
            "microsoft",
            K.WRONG_PASSWORD,
        ),
        ("imap", "NO LOGIN failed.", "microsoft", K.WRONG_PASSWORD),
        # Providers that accept only app passwords from other mail apps
        ("imap", "NO [AUTHENTICATIONFAILED] LOGIN Invalid credentials", "yahoo", K.APP_PASSWORD_REQUIRED),
        ("imap", "NO [AUTHENTICATIONFAILED] Authentication failed.", "icloud", K.APP_PASSWORD_REQUIRED),
        ("smtp", "535 5.7.8 Error: authentication failed: authentication failure", "fastmail", K.APP_PASSWORD_REQUIRED),
        # Standard texts and codes
        ("imap", "NO [AUTHENTICATIONFAILED] Authentication failed.", "other", K.WRONG_PASSWORD),
        ("smtp", "535 Incorrect authentication data", "other", K.WRONG_PASSWORD),
        ("imap", DOVECOT_PRIVACY_REQUIRED, "other", K.TLS_MISMATCH),
        ("smtp", "530 5.7.0 Must issue a STARTTLS command first.", "other", K.TLS_MISMATCH),
        ("smtp", "538 5.7.11 Encryption required for requested authentication mechanism", "other", K.TLS_MISMATCH),
        ("smtp", "534 5.7.9 Authentication mechanism is too weak", "other", K.APP_PASSWORD_REQUIRED),
        ("imap", "NO [UNAVAILABLE] Temporary authentication failure.", "other", K.PROTOCOL_ERROR),
        ("smtp", "454 4.7.0 Temporary authentication failure", "other", K.PROTOCOL_ERROR),
        ("imap", "BAD 535 is not an IMAP reply code", "other", K.PROTOCOL_ERROR),
    ],
)
def test_classify_login_error_recognises_the_known_replies(
    protocol: str, server_text: str, preset_key: str, kind: FailureKind
) -> None:
    assert classify_login_error(protocol, server_text, preset_key) is kind


def test_classification_ignores_case() -> None:
    assert classify_login_error("imap", "no [authenticationfailed] whatever", "other") is K.WRONG_PASSWORD


@pytest.mark.parametrize("protocol", ["imap", "smtp"])
def test_a_wrong_password_explanation_says_password_and_what_to_check(protocol: str) -> None:
    text = explain(ProbeFailure(K.WRONG_PASSWORD, protocol, "NO [AUTHENTICATIONFAILED]"), get_preset("other"))

    assert text.startswith(f"{protocol.upper()} ") and "login failed" in text
    assert "Check the password" in text


def test_the_imap_wrong_password_explanation_reads_as_a_full_sentence() -> None:
    text = explain(ProbeFailure(K.WRONG_PASSWORD, "imap", ""), get_preset("other"))

    assert text.startswith(
        "IMAP (receiving) login failed: the server rejected the user name or password. Check the password"
    )


@pytest.mark.parametrize("preset", all_presets(), ids=lambda preset: preset.key)
def test_an_app_password_explanation_carries_the_providers_hint(preset: ProviderPreset) -> None:
    text = explain(ProbeFailure(K.APP_PASSWORD_REQUIRED, "imap", ""), preset)

    assert preset.app_password_hint in text
    assert preset.name in text


def test_the_microsoft_hint_points_to_signing_in_with_microsoft_not_a_password() -> None:
    text = explain(ProbeFailure(K.WRONG_PASSWORD, "imap", ""), get_preset("microsoft"))

    assert "OAuth" in text


def test_smtp_auth_switched_off_is_explained_as_such() -> None:
    text = explain(ProbeFailure(K.IMAP_DISABLED, "smtp", "5.7.139 ..."), get_preset("microsoft"))

    assert "SMTP AUTH" in text and "disabled" in text and "administrator" in text


def test_imap_switched_off_is_explained_with_where_to_switch_it_on() -> None:
    text = explain(ProbeFailure(K.IMAP_DISABLED, "imap", ""), get_preset("zoho"))

    assert "IMAP access is switched off" in text and "IMAP Access" in text


def test_an_unreachable_host_explanation_names_the_providers_server() -> None:
    gmail = get_preset("gmail")

    assert "imap.gmail.com, port 993 with TLS" in explain(ProbeFailure(K.HOST_UNREACHABLE, "imap", ""), gmail)
    assert "smtp.gmail.com, port 465 with TLS" in explain(ProbeFailure(K.HOST_UNREACHABLE, "smtp", ""), gmail)


def test_without_a_known_server_the_explanation_suggests_none() -> None:
    text = explain(ProbeFailure(K.HOST_UNREACHABLE, "imap", ""), get_preset("other"))

    assert " uses " not in text and "check the server name and port." in text


def test_a_tls_mismatch_explanation_says_which_ports_use_which_security() -> None:
    text = explain(ProbeFailure(K.TLS_MISMATCH, "smtp", ""), get_preset("microsoft"))

    assert "993 and 465" in text and "STARTTLS" in text and "smtp.office365.com, port 587 with STARTTLS" in text


def test_an_untrusted_certificate_explanation_mentions_the_certificate() -> None:
    assert "certificate is not trusted" in explain(
        ProbeFailure(K.UNTRUSTED_CERTIFICATE, "imap", ""), get_preset("other")
    )


@pytest.mark.parametrize(
    ("kind", "protocol", "preset"),
    list(itertools.product(FailureKind, ["imap", "smtp"], all_presets())),
    ids=lambda value: getattr(value, "key", str(value)),
)
def test_no_explanation_repeats_the_servers_words_or_a_password_in_them(
    kind: FailureKind, protocol: str, preset: ProviderPreset
) -> None:
    # A broken server may echo the refused command, password and all.
    failure = ProbeFailure(kind, protocol, 'BAD LOGIN "ann@example.test" "Hunter2-Secret"')

    text = explain(failure, preset)

    assert "Hunter2-Secret" not in text and "ann@example.test" not in text
    assert text.endswith(".") and len(text) > 40


def test_failure_kinds_are_plain_strings_for_storage() -> None:
    assert K.WRONG_PASSWORD == "wrong_password"
    assert {str(kind) for kind in FailureKind} == {kind.value for kind in FailureKind}
