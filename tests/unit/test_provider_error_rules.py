"""Provider error texts become plain words, a kind and the least wait before retrying."""

from __future__ import annotations

import pytest

from salesinbox.domain.provider_errors import (
    AUTH_WAIT,
    CONNECTIONS_WAIT,
    QUOTA_WAIT,
    UNAVAILABLE_WAIT,
    TroubleKind,
    read_server_trouble,
    suggested_wait,
)

# (server text as a client library hands it over, kind, least wait in seconds)
KNOWN = [
    # Gmail
    ("[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)", TroubleKind.QUOTA, QUOTA_WAIT),
    ("FETCH failed: [OVERQUOTA] Account exceeded command or bandwidth limits", TroubleKind.QUOTA, QUOTA_WAIT),
    ("b'[ALERT] Too many simultaneous connections. (Failure)'", TroubleKind.TOO_MANY_CONNECTIONS, CONNECTIONS_WAIT),
    ("Too many simultaneous connections. (Failure)", TroubleKind.TOO_MANY_CONNECTIONS, CONNECTIONS_WAIT),
    ("[UNAVAILABLE] Temporary System Error", TroubleKind.UNAVAILABLE, UNAVAILABLE_WAIT),
    ("b'[AUTHENTICATIONFAILED] Invalid credentials (Failure)'", TroubleKind.AUTH, AUTH_WAIT),
    (
        "[ALERT] Application-specific password required: https://support.google.com/accounts/answer/185833",
        TroubleKind.AUTH,
        AUTH_WAIT,
    ),
    (
        "[ALERT] Please log in via your web browser: https://support.google.com/mail/accounts/answer/78754 (Failure)",
        TroubleKind.WEB_LOGIN,
        AUTH_WAIT,
    ),
    ("Web login required: https://support.google.com/mail/answer/78754", TroubleKind.WEB_LOGIN, AUTH_WAIT),
    # Microsoft
    ("BAD Request is throttled. Suggested Backoff Time: 89117 milliseconds", TroubleKind.THROTTLED, 89.117),
    ("Request is throttled. Suggested Backoff Time: 299961 milliseconds", TroubleKind.THROTTLED, 299.961),
    ("User is authenticated but not connected.", TroubleKind.IMAP_DISABLED, 15 * 60.0),
    ("b'AUTHENTICATE failed.'", TroubleKind.AUTH, AUTH_WAIT),
    ("b'LOGIN failed.'", TroubleKind.AUTH, AUTH_WAIT),
    ("NO Server Unavailable. 15", TroubleKind.UNAVAILABLE, UNAVAILABLE_WAIT),
    # Yahoo
    ("[LIMIT] CAPABILITY Rate limit hit.", TroubleKind.QUOTA, QUOTA_WAIT),
    ("[UNAVAILABLE] UID FETCH Server error - Please try again later", TroubleKind.UNAVAILABLE, UNAVAILABLE_WAIT),
    ("[SERVERBUG] UID SEARCH Server error", TroubleKind.UNAVAILABLE, UNAVAILABLE_WAIT),
    ("[UNAVAILABLE] UID FETCH Service is temporarily not available", TroubleKind.UNAVAILABLE, UNAVAILABLE_WAIT),
    # iCloud, Dovecot and RFC 5530 codes
    ("[AUTHENTICATIONFAILED] Authentication failed", TroubleKind.AUTH, AUTH_WAIT),
    ("[INUSE] Mailbox is locked by another process", TroubleKind.TOO_MANY_CONNECTIONS, CONNECTIONS_WAIT),
    ("[EXPIRED] Password expired", TroubleKind.AUTH, AUTH_WAIT),
    ("[PRIVACYREQUIRED] Plaintext authentication disallowed", TroubleKind.AUTH, AUTH_WAIT),
    (
        "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)",
        TroubleKind.TOO_MANY_CONNECTIONS,
        CONNECTIONS_WAIT,
    ),
    # anything else
    ("socket error: EOF", TroubleKind.TRANSIENT, None),
    ("", TroubleKind.TRANSIENT, None),
]


@pytest.mark.parametrize(("text", "kind", "wait"), KNOWN)
def test_each_known_provider_text_has_its_kind_and_least_wait(text, kind, wait):
    trouble = read_server_trouble(text, "Gmail")
    assert trouble.kind is kind
    assert trouble.retry_after == (pytest.approx(wait) if wait is not None else None)


@pytest.mark.parametrize(("text", "kind", "wait"), KNOWN)
def test_the_words_are_plain_and_never_repeat_the_server_text(text, kind, wait):
    words = read_server_trouble(text, "Gmail").words
    assert words.endswith(".") and words[0].isupper()
    for jargon in ("[", "]", "ALERT", "OVERQUOTA", "Backoff", "Failure", "IMAP4", "b'"):
        assert jargon not in words
    if wait is not None:
        assert "about" in words  # says when it tries again


def test_the_suggested_backoff_time_wins_and_is_read_in_any_unit():
    assert suggested_wait("Request is throttled. Suggested Backoff Time: 1500 milliseconds") == 1.5
    assert suggested_wait("suggested backoff time: 2 seconds") == 2.0
    assert suggested_wait("Request is throttled.") is None
    assert read_server_trouble("Request is throttled.").retry_after == 5 * 60.0


def test_the_words_name_the_provider_and_say_when_sync_continues():
    words = read_server_trouble(
        "Request is throttled. Suggested Backoff Time: 299961 milliseconds", "Microsoft 365"
    ).words
    assert words.startswith("Microsoft 365 is slowing this account down")
    assert "in about 5 minutes" in words
    assert (
        "in about 30 minutes"
        in read_server_trouble("[OVERQUOTA] Account exceeded command or bandwidth limits", "Gmail").words
    )
    assert read_server_trouble("[UNAVAILABLE] x").words.startswith("The mail server had a temporary problem")
    assert "in about 2 hours" in read_server_trouble("Suggested Backoff Time: 7200 seconds").words


def test_brand_names_keep_their_spelling_at_the_start_of_a_sentence():
    assert read_server_trouble("[UNAVAILABLE] x", "iCloud Mail").words.startswith("iCloud Mail had")
    assert read_server_trouble("socket error: EOF").words.startswith("The connection to the mail server")


def test_specific_texts_win_over_the_codes_they_carry():
    # Gmail's login-in-browser alert also says "(Failure)" and may come with [ALERT] only
    assert read_server_trouble("[ALERT] Please log in via your web browser").kind is TroubleKind.WEB_LOGIN
    # Microsoft sends the throttling text as BAD and may add "Server Unavailable" when it closes
    assert (
        read_server_trouble(
            "Request is throttled. Suggested Backoff Time: 1000 milliseconds; Server Unavailable. 15"
        ).kind
        is TroubleKind.THROTTLED
    )


def test_the_server_text_is_unwrapped_from_the_client_library_and_the_password_scrubbed():
    from salesinbox.adapters.imap.session import server_words

    assert server_words(Exception("b'[ALERT] Too many simultaneous connections. (Failure)'")) == (
        "[ALERT] Too many simultaneous connections. (Failure)"
    )
    assert server_words(
        Exception("FETCH command error: BAD [b'Request is throttled. Suggested Backoff Time: 5 ms']")
    ) == ("Request is throttled. Suggested Backoff Time: 5 ms")
    assert server_words(Exception("fetch failed: [OVERQUOTA] Account exceeded")) == "[OVERQUOTA] Account exceeded"
    assert server_words(Exception("b'LOGIN hunter22 refused'"), "hunter22") == "LOGIN *** refused"
    assert server_words(Exception("Web login required")) == "Web login required"
