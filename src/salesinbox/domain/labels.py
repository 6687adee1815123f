"""Labels: their names, and the IMAP keyword each one is stored as on the mail server.

A label is company-wide. On a server whose folder allows keywords
(``PERMANENTFLAGS`` holds ``\\*``, RFC 3501 section 7.1) it is stored on each
message as one keyword, an RFC 3501 ``atom``: printable ASCII without space,
``( ) { % * " \\ ]`` or control characters.

The keyword is derived from the name once, when the label is created, and
then kept: renaming a label changes its name only, so the messages other
mail clients see keep their keyword and nothing is rewritten on the server.
The derivation follows the way Thunderbird makes keys of its tags, so a tag
made there and a label made here meet:

- characters outside printable ASCII are written in IMAP's modified UTF-7
  (RFC 3501 section 5.1.3: ``&`` + base64 of UTF-16 with ``,`` for ``/`` +
  ``-``; ``&`` itself is ``&-``);
- spaces and the characters an atom forbids become ``_``;
- a keyword that would read as a system keyword (``$Forwarded``, ``$Junk``,
  ``NonJunk`` ...) is prefixed with ``_``;
- at most 50 characters (Dovecot's default ``mail_max_keyword_length``),
  never cut inside an encoded run; a keyword another label has already gets
  ``_2``, ``_3`` ...

Keywords are matched case-insensitively (``keyword_key``). A keyword another
mail client set becomes a label unless it is a system keyword
(``is_system_keyword``): anything starting with ``$`` or ``\\`` and the
unprefixed junk and forwarding keywords some servers and clients set.
"""

from __future__ import annotations

import base64
import re
import unicodedata

from salesinbox.domain.errors import ValidationFailed
from salesinbox.domain.text import Text

MAX_NAME = 50
MAX_KEYWORD = 50  # Dovecot's default mail_max_keyword_length: a longer keyword is refused
_FORBIDDEN = set(' (){%*"\\]')
_SYSTEM_WORDS = frozenset({"junk", "nonjunk", "notjunk", "forwarded", "redirected"})
_SPACES = re.compile(r"\s+")
_ENCODED = re.compile(r"&([A-Za-z0-9+,]*)-")


def normalize_name(name: str) -> str:
    """A label name as it is kept: trimmed, inner whitespace one space, NFC; 1 to 50 characters, printable."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", name or "")).strip()
    if not text:
        raise ValidationFailed({"name": Text("Give the label a name.")})
    if len(text) > MAX_NAME:
        raise ValidationFailed({"name": Text("A label name has at most %(max)s characters.", max=MAX_NAME)})
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise ValidationFailed({"name": Text("A label name cannot hold control characters.")})
    return text


def name_key(name: str) -> str:
    """What two names must differ in to be two labels: case is not enough."""
    return normalize_name(name).casefold()


def keyword_key(keyword: str) -> str:
    return keyword.lower()


def is_system_keyword(keyword: str) -> bool:
    """Keywords servers and clients set for their own purposes: never labels."""
    return not keyword or keyword[0] in "$\\" or keyword.lower() in _SYSTEM_WORDS


def is_keyword(flag: str) -> bool:
    """A flag that is a keyword (not ``\\Seen`` and the other system flags) and a valid atom."""
    return bool(flag) and flag[0] != "\\" and all(0x20 < ord(ch) < 0x7F and ch not in _FORBIDDEN for ch in flag)


def keyword_for(name: str, taken: set[str] = frozenset()) -> str:
    """The keyword a new label named ``name`` is stored as; ``taken``: keyword keys already in use."""
    text = "".join("_" if ch in _FORBIDDEN else ch for ch in _modified_utf7(normalize_name(name)))
    if is_system_keyword(text):
        text = "_" + text.lstrip("$\\")
    candidate, n = _cut(text, MAX_KEYWORD), 1
    while keyword_key(candidate) in taken:
        n += 1
        candidate = f"{_cut(text, MAX_KEYWORD - 1 - len(str(n)))}_{n}"
    return candidate


def _cut(keyword: str, most: int) -> str:
    """At most ``most`` characters, never inside an encoded ``&...-`` run (it would not decode)."""
    if len(keyword) <= most:
        return keyword
    cut = keyword[:most]
    opened = cut.rfind("&")
    if opened != -1 and "-" not in cut[opened:]:
        cut = cut[:opened]
    return cut or "_"


def name_for(keyword: str) -> str:
    """The name a label made from another mail client's keyword gets: decoded, ``_`` read as a space."""
    try:
        text = _ENCODED.sub(_decode_part, keyword)
    except (ValueError, UnicodeDecodeError):
        text = keyword
    text = _SPACES.sub(" ", text.replace("_", " ")).strip()[:MAX_NAME].strip()
    try:
        return normalize_name(text)
    except ValidationFailed:
        return normalize_name(keyword[:MAX_NAME])


def keywords_of(flags: str) -> set[str]:
    """The keyword keys among a location's stored flags (space-separated, as the sync keeps them)."""
    return {keyword_key(f) for f in flags.split() if is_keyword(f)}


def _modified_utf7(text: str) -> str:
    out, pending = [], []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _decode_part(found: re.Match) -> str:
    body = found[1]
    if not body:
        return "&"
    padded = body.replace(",", "/") + "=" * (-len(body) % 4)
    return base64.b64decode(padded, validate=True).decode("utf-16-be")
