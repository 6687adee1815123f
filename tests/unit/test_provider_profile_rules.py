"""Provider profiles come from what the server says about itself; host names are only hints."""

from __future__ import annotations

import pytest

from salesinbox.domain.provider_profiles import (
    GENERIC,
    GMAIL,
    ICLOUD,
    MICROSOFT,
    YAHOO,
    detect_profile,
    files_sent_copy_itself,
    gmail_user_labels,
    hinted_profile,
    may_use_changedsince,
)

GMAIL_CAPS = (
    "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS COMPRESS=DEFLATE "
    "ENABLE MOVE CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE"
).split()
MICROSOFT_CAPS = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE".split()
EXCHANGE_ON_PREMISES = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=NTLM AUTH=GSSAPI UIDPLUS MOVE ID CHILDREN IDLE".split()
YAHOO_CAPS = (
    "IMAP4rev1 ID MOVE NAMESPACE XYMHIGHESTMODSEQ UIDPLUS LITERAL+ CHILDREN X-MSG-EXT UNSELECT "
    "OBJECTID IDLE ENABLE SPECIAL-USE"
).split()
ICLOUD_CAPS = "XAPPLEPUSHSERVICE IMAP4 IMAP4rev1 SASL-IR AUTH=ATOKEN AUTH=PLAIN".split()
ICLOUD_AFTER_LOGIN = (
    "XAPPLEPUSHSERVICE IMAP4 IMAP4rev1 CONDSTORE ENABLE QRESYNC QUOTA NAMESPACE UIDPLUS CHILDREN "
    "BINARY UNSELECT SORT ESEARCH IDLE LIST-STATUS"
).split()
DOVECOT_CAPS = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE CONDSTORE QRESYNC SPECIAL-USE MOVE UIDPLUS".split()


@pytest.mark.parametrize(
    ("caps", "greeting", "host", "expected"),
    [
        (GMAIL_CAPS, "Gimap ready for requests from 192.0.2.1 z12mb", "imap.gmail.com", GMAIL),
        (GMAIL_CAPS, "", "mail.company.example", GMAIL),  # a Workspace domain behind its own name
        (
            MICROSOFT_CAPS,
            "The Microsoft Exchange IMAP4 service is ready. [TQBOADIAUABSADAA]",
            "outlook.office365.com",
            MICROSOFT,
        ),
        (MICROSOFT_CAPS, "The Microsoft Exchange IMAP4 service is ready.", "127.0.0.1", MICROSOFT),
        (EXCHANGE_ON_PREMISES, "", "exchange.company.example", MICROSOFT),
        (YAHOO_CAPS, "IMAP4rev1 Hello", "imap.mail.yahoo.com", YAHOO),
        (YAHOO_CAPS, "", "127.0.0.1", YAHOO),
        (ICLOUD_CAPS, "iSCREAM ready to rumble mr11p00im-iscream004", "imap.mail.me.com", ICLOUD),
        (ICLOUD_AFTER_LOGIN, "(2109B29-d3afe4d5aba6) pv33p00im-iscream021.me.com", "127.0.0.1", ICLOUD),
        (DOVECOT_CAPS, "Dovecot ready.", "mail.example.test", GENERIC),
        ([b"IMAP4REV1", b"X-GM-EXT-1"], b"* OK Gimap ready", "", GMAIL),  # bytes, as imapclient gives them
    ],
)
def test_the_profile_follows_capability_and_greeting(caps, greeting, host, expected):
    assert detect_profile(caps, greeting, host) is expected


def test_the_host_name_decides_only_when_the_server_says_nothing_telling():
    assert detect_profile(DOVECOT_CAPS, "Dovecot ready.", "imap.gmail.com") is GMAIL
    assert detect_profile(GMAIL_CAPS, "", "imap.mail.yahoo.com") is GMAIL  # the server's word wins
    assert hinted_profile("OUTLOOK.office365.com.") is MICROSOFT
    assert hinted_profile("imap.mail.me.com") is ICLOUD
    assert hinted_profile("imap.aol.com") is YAHOO
    assert hinted_profile("yahoo.com.example") is GENERIC


def test_xapplepushservice_alone_is_not_icloud():
    assert detect_profile(["IMAP4rev1", "XAPPLEPUSHSERVICE", "IDLE"], "Dovecot ready.") is GENERIC


def test_yahoo_never_gets_changedsince_without_condstore():
    assert not may_use_changedsince(YAHOO_CAPS)  # XYMHIGHESTMODSEQ is not CONDSTORE
    assert not may_use_changedsince(MICROSOFT_CAPS)
    assert may_use_changedsince(GMAIL_CAPS)
    assert may_use_changedsince(["IMAP4rev1", "QRESYNC"])
    assert may_use_changedsince([b"condstore"])


def test_gmail_and_microsoft_file_sent_mail_themselves_others_follow_the_preset():
    assert files_sent_copy_itself(GMAIL, preset_saves_sent_copy=False)  # "other" preset, Google behind it
    assert files_sent_copy_itself(MICROSOFT, preset_saves_sent_copy=False)
    assert not files_sent_copy_itself(GENERIC, preset_saves_sent_copy=False)
    assert files_sent_copy_itself(GENERIC, preset_saves_sent_copy=True)
    assert not files_sent_copy_itself(YAHOO, preset_saves_sent_copy=False)
    assert not files_sent_copy_itself(ICLOUD, preset_saves_sent_copy=False)


def test_connection_caps_stay_below_what_the_providers_allow():
    assert GMAIL.max_connections < 15  # Gmail refuses the 16th connection to an account
    assert GENERIC.max_connections < 10  # Dovecot's mail_max_userip_connections default
    assert all(p.max_connections >= 2 for p in (GMAIL, MICROSOFT, YAHOO, ICLOUD, GENERIC))  # a pass and IDLE


def test_gmail_system_labels_are_not_labels():
    found = gmail_user_labels(["\\Inbox", "\\Important", "\\Starred", "\\Sent", "Customer Acme", " ", "Квартал 4"])
    assert found == ["Customer Acme", "Квартал 4"]
