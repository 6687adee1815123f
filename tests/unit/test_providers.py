"""Provider presets: published settings, lookups, and guessing from an address."""

from __future__ import annotations

import dataclasses

import pytest

from salesinbox.domain.providers import (
    MiB,
    ProviderPreset,
    all_presets,
    get_preset,
    guess_provider,
    requires_app_password,
)

KEYS = ["gmail", "microsoft", "yahoo", "icloud", "zoho", "fastmail", "other"]


def test_every_expected_provider_has_a_preset_and_other_comes_last() -> None:
    assert [preset.key for preset in all_presets()] == KEYS


def test_gmail_uses_implicit_tls_for_both_and_files_its_own_sent_copy() -> None:
    gmail = get_preset("gmail")

    assert (gmail.imap_host, gmail.imap_port, gmail.imap_security) == ("imap.gmail.com", 993, "tls")
    assert (gmail.smtp_host, gmail.smtp_port, gmail.smtp_security) == ("smtp.gmail.com", 465, "tls")
    assert gmail.attachment_limit_bytes == 25 * 1024 * 1024
    assert gmail.saves_sent_copy is True


def test_microsoft_sends_over_starttls_with_a_20_mb_limit() -> None:
    microsoft = get_preset("microsoft")

    assert (microsoft.imap_host, microsoft.imap_port, microsoft.imap_security) == ("outlook.office365.com", 993, "tls")
    assert (microsoft.smtp_host, microsoft.smtp_port, microsoft.smtp_security) == (
        "smtp.office365.com",
        587,
        "starttls",
    )
    assert microsoft.attachment_limit_bytes == 20 * MiB
    assert microsoft.saves_sent_copy is True


def test_icloud_uses_the_me_com_hosts_with_starttls_for_sending() -> None:
    icloud = get_preset("icloud")

    assert (icloud.imap_host, icloud.smtp_host, icloud.smtp_port) == ("imap.mail.me.com", "smtp.mail.me.com", 587)


@pytest.mark.parametrize("preset", all_presets(), ids=lambda preset: preset.key)
def test_every_preset_is_consistent(preset: ProviderPreset) -> None:
    assert {preset.imap_security, preset.smtp_security} <= {"tls", "starttls", "none"}
    assert preset.attachment_limit_bytes > 0
    assert preset.app_password_hint.endswith(".") and "password" in preset.app_password_hint
    # The conventional port pairs (RFC 8314): TLS on 993 / 465, STARTTLS on 587.
    assert (preset.imap_port, preset.imap_security) == (993, "tls")
    assert (preset.smtp_port, preset.smtp_security) in {(465, "tls"), (587, "starttls")}


def test_only_other_has_no_hosts() -> None:
    without_hosts = [preset.key for preset in all_presets() if not (preset.imap_host and preset.smtp_host)]

    assert without_hosts == ["other"]


def test_presets_are_frozen_but_can_be_copied_with_another_limit() -> None:
    other = get_preset("other")

    with pytest.raises(dataclasses.FrozenInstanceError):
        other.attachment_limit_bytes = 1
    assert dataclasses.replace(other, attachment_limit_bytes=10 * MiB).attachment_limit_bytes == 10 * MiB


def test_an_unknown_key_raises_value_error_listing_the_known_keys() -> None:
    with pytest.raises(ValueError, match="unknown provider 'aol'") as error:
        get_preset("aol")

    assert all(key in str(error.value) for key in KEYS)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("ann@gmail.com", "gmail"),
        ("ann@googlemail.com", "gmail"),
        ("Ann@GMail.COM", "gmail"),
        ("ann@outlook.com", "microsoft"),
        ("ann@hotmail.com", "microsoft"),
        ("ann@hotmail.co.uk", "microsoft"),
        ("ann@live.com", "microsoft"),
        ("ann@msn.com", "microsoft"),
        ("ann@yahoo.com", "yahoo"),
        ("ann@yahoo.co.uk", "yahoo"),
        ("ann@yahoo.com.br", "yahoo"),
        ("ann@icloud.com", "icloud"),
        ("ann@me.com", "icloud"),
        ("ann@mac.com", "icloud"),
        ("ann@zoho.com", "zoho"),
        ("ann@zoho.eu", "zoho"),
        ("ann@fastmail.com", "fastmail"),
        ("ann@fastmail.fm", "fastmail"),
        ("ann@acme.example", "other"),
        ("ann@yahoo.example.com", "other"),
        ("ann@mail.gmail.com.evil.test", "other"),
        ("not an address", "other"),
    ],
)
def test_guess_provider_goes_by_the_domain(address: str, key: str) -> None:
    assert guess_provider(address) == key


def test_only_yahoo_icloud_and_fastmail_insist_on_app_passwords() -> None:
    assert [key for key in KEYS if requires_app_password(key)] == ["yahoo", "icloud", "fastmail"]
