"""Provider profiles: how to treat an IMAP server, judged by what it says about itself.

A profile is chosen from the server's CAPABILITY response and its greeting;
the host name is only a hint, used when the server says nothing telling (a
company domain hosted by Google answers like Gmail whatever its MX records
say, and a test server on 127.0.0.1 is whatever it claims to be).

Evidence, first match wins:

- Gmail / Google Workspace: ``X-GM-EXT-1`` (Google's extension: X-GM-MSGID,
  X-GM-THRID, X-GM-LABELS); greeting "Gimap ready for requests".
- Microsoft 365 / Outlook.com / Exchange: greeting "The Microsoft Exchange
  IMAP4 service is ready"; Exchange-only capabilities ``XPROXY3``,
  ``AUTH=NTLM`` with ``AUTH=GSSAPI``.
- Yahoo (and AOL, the same servers): ``XYMHIGHESTMODSEQ``, ``X-MSG-EXT``,
  ``AUTH=XYMCOOKIE``.
- iCloud: ``AUTH=ATOKEN`` (Apple's token mechanism); greeting "iSCREAM" or a
  ``...me.com`` server name. ``XAPPLEPUSHSERVICE`` alone proves nothing:
  Dovecot's push plugin and Yahoo advertise it too.

What a profile decides:

- ``saves_sent_copy``: the provider files mail sent over its SMTP server in
  Sent by itself (Gmail, Microsoft 365), so the app must not APPEND a copy;
  None where unknown, and the account's preset decides.
- ``max_connections``: the most IMAP connections this app opens to one
  account at once. Gmail refuses the 16th ("Too many simultaneous
  connections"); Dovecot's default is 10 per user and address; the person's
  phone and desktop share the same allowance, so the app stays well below.
- ``gmail_extensions``: X-GM-THRID (threading) is fetched.
- ``may_use_changedsince`` (a function of the capabilities, not of the
  profile): CHANGEDSINCE and MODSEQ only where CONDSTORE or QRESYNC is
  advertised. Yahoo sends HIGHESTMODSEQ on SELECT without CONDSTORE and
  answers CHANGEDSINCE with an error.

Pure Python, stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderProfile:
    key: str  # gmail, microsoft, yahoo, icloud, generic
    name: str  # for plain words: "Gmail refused ..."
    saves_sent_copy: bool | None
    max_connections: int
    gmail_extensions: bool = False


GMAIL = ProviderProfile("gmail", "Gmail", saves_sent_copy=True, max_connections=10, gmail_extensions=True)
# Exchange Online throttles per mailbox and drops connections past its limits;
# a handful of connections is all a sync needs.
MICROSOFT = ProviderProfile("microsoft", "Microsoft 365", saves_sent_copy=True, max_connections=8)
# Yahoo answers bursts with "[LIMIT] Rate limit hit": fewer connections.
YAHOO = ProviderProfile("yahoo", "Yahoo Mail", saves_sent_copy=None, max_connections=5)
ICLOUD = ProviderProfile("icloud", "iCloud Mail", saves_sent_copy=None, max_connections=8)
GENERIC = ProviderProfile("generic", "the mail server", saves_sent_copy=None, max_connections=8)

PROFILES = {p.key: p for p in (GMAIL, MICROSOFT, YAHOO, ICLOUD, GENERIC)}

_CAPABILITY_EVIDENCE = (
    (GMAIL, ("X-GM-EXT-1",)),
    (YAHOO, ("XYMHIGHESTMODSEQ", "X-MSG-EXT", "AUTH=XYMCOOKIE")),
    (ICLOUD, ("AUTH=ATOKEN", "AUTH=ATOKEN2")),
    (MICROSOFT, ("XPROXY3",)),
)
_GREETING_EVIDENCE = (
    (MICROSOFT, ("microsoft exchange",)),
    (GMAIL, ("gimap ready",)),
    (ICLOUD, ("iscream", ".me.com")),
)
_HOST_HINTS = (
    (GMAIL, ("imap.gmail.com", "imap.googlemail.com")),
    (MICROSOFT, ("outlook.office365.com", "outlook.office.com", "imap-mail.outlook.com", ".outlook.com")),
    (YAHOO, ("imap.mail.yahoo.com", ".yahoo.com", "imap.aol.com")),
    (ICLOUD, ("imap.mail.me.com", ".mail.me.com")),
)


def _texts(capabilities: Iterable[str | bytes]) -> frozenset[str]:
    return frozenset((c.decode("ascii", "replace") if isinstance(c, bytes) else str(c)).upper() for c in capabilities)


def detect_profile(capabilities: Iterable[str | bytes], greeting: str | bytes = "", host: str = "") -> ProviderProfile:
    """The profile the server's CAPABILITY and greeting show; the host name decides only when they do not."""
    caps = _texts(capabilities)
    text = (greeting.decode("utf-8", "replace") if isinstance(greeting, bytes) else greeting).lower()
    for profile, needles in _CAPABILITY_EVIDENCE:
        if any(n in caps for n in needles):
            return profile
    if "AUTH=NTLM" in caps and "AUTH=GSSAPI" in caps and "IMAP4" in caps:
        return MICROSOFT  # on-premises Exchange without the greeting
    for profile, needles in _GREETING_EVIDENCE:
        if any(n in text for n in needles):
            return profile
    return hinted_profile(host)


def hinted_profile(host: str) -> ProviderProfile:
    """The profile a host name suggests; for limits that apply before the server has said anything."""
    name = host.strip().rstrip(".").lower()
    for profile, hints in _HOST_HINTS:
        if any(name == h or (h.startswith(".") and name.endswith(h)) for h in hints):
            return profile
    return GENERIC


def may_use_changedsince(capabilities: Iterable[str | bytes]) -> bool:
    """RFC 7162: CHANGEDSINCE / MODSEQ need CONDSTORE (QRESYNC implies it); HIGHESTMODSEQ alone proves nothing."""
    caps = _texts(capabilities)
    return "CONDSTORE" in caps or "QRESYNC" in caps


def files_sent_copy_itself(profile: ProviderProfile, preset_saves_sent_copy: bool) -> bool:
    """Whether the provider puts mail sent over its SMTP server in Sent: the profile knows, else the preset."""
    return preset_saves_sent_copy if profile.saves_sent_copy is None else profile.saves_sent_copy


def gmail_user_labels(labels: Iterable[str]) -> list[str]:
    """The labels a person made, from X-GM-LABELS: Gmail's own (``\\Inbox``, ``\\Sent``, ``\\Important``,
    ``\\Starred`` ...) are folders or flags here, not labels."""
    return [label.strip() for label in labels if label.strip() and not label.startswith("\\")]
