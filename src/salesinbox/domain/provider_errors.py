"""What a mail provider's error text means for an account's sync, in plain words.

IMAP servers explain a refusal in free text after NO, BAD or BYE, sometimes
with an RFC 5530 response code in brackets. The big providers send texts of
their own, and some of them say how long to wait. ``read_server_trouble`` turns
such a text into a ``ServerTrouble``: a ``TroubleKind``, a sentence for the
account's health (what happened, what the app does, what the person can do)
and ``retry_after``: the least number of seconds before the next attempt, or
None when the usual backoff is right.

Texts recognised (matched case-insensitively, as substrings, because client
libraries wrap them: ``b'[ALERT] ...'``, ``FETCH failed: ...``):

- Gmail: "[OVERQUOTA] Account exceeded command or bandwidth limits"
  (a daily bandwidth / command allowance); "[ALERT] Too many simultaneous
  connections. (Failure)" (more than 15 IMAP connections to one account);
  "[UNAVAILABLE] Temporary System Error"; "[AUTHENTICATIONFAILED] Invalid
  credentials (Failure)"; "Web login required" and "[ALERT] Please log in via
  your web browser" (Google wants the person to sign in on the web first).
- Microsoft 365 / Exchange: "Request is throttled. Suggested Backoff Time:
  N milliseconds" (sent as BAD, then BYE); "User is authenticated but not
  connected" (IMAP switched off for the mailbox, or the mailbox is being
  moved); "AUTHENTICATE failed." / "LOGIN failed."; "Server Unavailable. 15".
- Yahoo: "[LIMIT] ... Rate limit hit."; "[UNAVAILABLE] UID FETCH Server
  error - Please try again later"; "[SERVERBUG] ... Server error".
- RFC 5530 codes for everyone else: [UNAVAILABLE], [INUSE], [LIMIT],
  [OVERQUOTA], [AUTHENTICATIONFAILED], [AUTHORIZATIONFAILED], [EXPIRED],
  [CONTACTADMIN], [PRIVACYREQUIRED], [SERVERBUG].

The words never repeat the server's text (it may echo a command); callers
keep it separately. Pure Python, stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class TroubleKind(StrEnum):
    """What kind of trouble; decides the words and the least wait."""

    AUTH = "auth"  # the server refused the login: a person must fix the password
    WEB_LOGIN = "web_login"  # the provider wants the person to sign in on its website first
    IMAP_DISABLED = "imap_disabled"  # logged in, but IMAP is off for this mailbox
    QUOTA = "quota"  # a daily allowance of commands or bandwidth is used up
    THROTTLED = "throttled"  # the provider slows this account down for a while
    TOO_MANY_CONNECTIONS = "too_many_connections"  # other apps hold the account's connections
    UNAVAILABLE = "unavailable"  # the provider's own temporary fault
    TRANSIENT = "transient"  # anything else: the connection dropped, an unknown refusal


@dataclass(frozen=True)
class ServerTrouble:
    kind: TroubleKind
    words: str  # for the account's health; never contains the server's text
    retry_after: float | None  # seconds to wait at least; None: the usual backoff


# Least waits where the server names none. Gmail's bandwidth allowance is
# daily and its lockout lasts hours: retrying sooner than half an hour only
# burns more of it. A refused password is not retried every few seconds either:
# providers lock accounts after repeated failed logins (the supervisor's
# backoff reaches 10 minutes anyway).
QUOTA_WAIT = 30 * 60.0
AUTH_WAIT = 10 * 60.0
CONNECTIONS_WAIT = 60.0
UNAVAILABLE_WAIT = 30.0
THROTTLE_WAIT = 5 * 60.0  # Microsoft's suggested times are up to about 300 s
DISABLED_WAIT = 15 * 60.0

_BACKOFF = re.compile(r"suggested\s+backoff\s+time:\s*(\d+)\s*(milliseconds|ms|seconds|s)\b", re.IGNORECASE)

# Checked in this order: the first match wins, so specific texts come before the
# generic codes they also carry ("[ALERT] Please log in via your web browser"
# before "[ALERT]"; Gmail's "[OVERQUOTA] Account exceeded ..." before RFC 5530's
# storage-quota meaning of [OVERQUOTA]).
_RULES: tuple[tuple[TroubleKind, tuple[str, ...]], ...] = (
    (TroubleKind.THROTTLED, ("request is throttled", "suggested backoff time", "[throttled]")),
    (
        TroubleKind.TOO_MANY_CONNECTIONS,
        ("too many simultaneous connections", "too many connections", "maximum number of connections", "[inuse]"),
    ),
    (
        TroubleKind.QUOTA,
        ("account exceeded command or bandwidth limits", "bandwidth limit", "rate limit hit", "[limit]", "[overquota]"),
    ),
    (TroubleKind.WEB_LOGIN, ("web login required", "please log in via your web browser")),
    (
        TroubleKind.IMAP_DISABLED,
        (
            "user is authenticated but not connected",
            "not enabled for imap",
            "imap access is disabled",
            "imap is disabled",
        ),
    ),
    (
        TroubleKind.AUTH,
        (
            "application-specific password required",
            "[authenticationfailed]",
            "[authorizationfailed]",
            "[expired]",
            "invalid credentials",
            "authenticate failed",
            "login failed",
            "authentication failed",
            "authentication unsuccessful",
            "[contactadmin]",
            "[privacyrequired]",
        ),
    ),
    (
        TroubleKind.UNAVAILABLE,
        (
            "[unavailable]",
            "temporary system error",
            "server unavailable",
            "please try again later",
            "temporarily not available",
            "[serverbug]",
            "server error",
        ),
    ),
)

_WAITS = {
    TroubleKind.AUTH: AUTH_WAIT,
    TroubleKind.WEB_LOGIN: AUTH_WAIT,
    TroubleKind.IMAP_DISABLED: DISABLED_WAIT,
    TroubleKind.QUOTA: QUOTA_WAIT,
    TroubleKind.THROTTLED: THROTTLE_WAIT,
    TroubleKind.TOO_MANY_CONNECTIONS: CONNECTIONS_WAIT,
    TroubleKind.UNAVAILABLE: UNAVAILABLE_WAIT,
    TroubleKind.TRANSIENT: None,
}


def read_server_trouble(server_text: str, provider_name: str = "the mail server") -> ServerTrouble:
    """The kind, the plain words and the least wait for a server's error text.

    ``provider_name`` names the provider in the words ("Gmail", "Microsoft
    365"); a suggested backoff time in the text wins over the default wait.
    """
    kind = kind_of(server_text)
    suggested = suggested_wait(server_text)
    wait = suggested if suggested is not None else _WAITS[kind]
    return ServerTrouble(kind, _words(kind, provider_name, wait), wait)


def _capitalised(name: str) -> str:
    """ "the mail server" opens a sentence as "The mail server"; brand names keep their spelling ("iCloud")."""
    return "T" + name[1:] if name.startswith("the ") else name


def kind_of(server_text: str) -> TroubleKind:
    text = server_text.lower()
    for kind, needles in _RULES:
        if any(needle in text for needle in needles):
            return kind
    return TroubleKind.TRANSIENT


def suggested_wait(server_text: str) -> float | None:
    """Seconds from "Suggested Backoff Time: N milliseconds" (Microsoft); None if the text names no time."""
    found = _BACKOFF.search(server_text)
    if found is None:
        return None
    amount = int(found[1])
    return amount / 1000.0 if found[2].lower() in ("milliseconds", "ms") else float(amount)


def _in_words(seconds: float | None) -> str:
    if seconds is None:
        return "shortly"
    if seconds < 90:
        return f"in about {max(1, round(seconds))} seconds"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"in about {minutes} minutes"
    return f"in about {round(minutes / 60)} hours"


def _words(kind: TroubleKind, name: str, wait: float | None) -> str:
    when, provider = _in_words(wait), _capitalised(name)
    return {
        TroubleKind.AUTH: (
            f"{provider} refused the password for this account. Open the account, enter the current "
            f"password (or an app password) and test the connection; sync tries again {when}."
        ),
        TroubleKind.WEB_LOGIN: (
            f"{provider} wants you to sign in on its website before other apps may connect. Sign in to "
            "your mail in a browser (confirm it is you if asked), or use an app password; sync tries "
            f"again {when}."
        ),
        TroubleKind.IMAP_DISABLED: (
            f"{provider} accepted the sign-in but does not let IMAP reach this mailbox: IMAP may be "
            "switched off for it, or the mailbox is being moved. Turn IMAP on in the mailbox settings or "
            f"ask your administrator; sync tries again {when}."
        ),
        TroubleKind.QUOTA: (
            f"{provider} says this account has used up its allowance of mail downloads or commands for "
            f"now. Nothing is lost: sync pauses and continues {when}. Other apps syncing the same "
            "account use the same allowance."
        ),
        TroubleKind.THROTTLED: (
            f"{provider} is slowing this account down for a while (throttling). Nothing is lost: "
            f"sync waits as asked and continues {when}."
        ),
        TroubleKind.TOO_MANY_CONNECTIONS: (
            f"{provider} refused a connection because too many apps or devices are connected to this "
            "account at once. Close mail apps you no longer use; sync tries again "
            f"{when}."
        ),
        TroubleKind.UNAVAILABLE: (
            f"{provider} had a temporary problem of its own. Nothing is lost: sync tries again {when}."
        ),
        TroubleKind.TRANSIENT: f"The connection to {name} was interrupted. Sync tries again {when}.",
    }[kind]
