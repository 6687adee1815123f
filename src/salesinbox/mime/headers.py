"""Top-level header fields: ids, subject, addresses, date and the bulk-mail signs.

Values arrive raw, as the stdlib parser left them (8-bit bytes as surrogate
escapes). Each is first made into text (``charsets.header_bytes_to_text``,
with one charset per message for raw 8-bit bytes: ``charsets.header_charset``),
then parsed by a ``policy.default`` header object: it decodes RFC 2047 words
and knows RFC 5322 address and date syntax. Those objects raise or record
defects on malformed input; then the raw text is decoded leniently instead
(``charsets.decode_words``, ``email.utils.getaddresses``) and a note is
recorded, which makes the message "malformed".

``policy.default``'s address parser is slow (0.5 ms for one address, 27 ms
for 100, 0.2 s for 1,000, 1.2 s for 3,000: worse than linear), so address
headers over 1 KB go straight to the ten times faster legacy parser
(``email.utils.getaddresses``) and keep at most ``MAX_ADDRESSES``. Both
stdlib parsers recurse on nested groups and comments; a header full of them
is read with a plain address pattern instead.
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.utils import getaddresses, parsedate_to_datetime

from salesinbox.mime.charsets import clean, decode_words, header_bytes_to_text, header_charset

MAX_ADDRESSES = 1_000
_MAX_CACHED_SUBJECT = 1024
_LONG_ADDRESS_HEADER = 1024  # about 35 addresses: ~7 ms in policy.default's parser, 0.7 ms in the legacy one
# The legacy parser recurses once per group ("name:") and per nested comment "(":
# past a few hundred of them it would exhaust the stack.
_MAX_NESTING_SIGNS = 200
_MAX_ID_LENGTH = 998  # RFC 5322 line length
_ADDRESS_FIELDS = ("from", "reply-to", "to", "cc", "bcc")
_TEXT_FIELDS = ("subject", *_ADDRESS_FIELDS)
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAKS = re.compile(r"[\r\n]+")
_BRACKETED_ID = re.compile(r"<([^<>]*)>")
_NOT_IN_ADDRESS = re.compile(r"[\s<>,]")
_NOT_SIMPLE = re.compile(r'["()\\:;\[\]]|=\?')
# An addr-spec whose local part is a dot-atom (no leading, trailing or doubled dot: policy.default flags those).
_ADDR_SPEC = r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*@[\w-]+(?:\.[\w-]+)+"
_SIMPLE_ADDRESS = re.compile(
    rf"(?:(?P<name>[\w.!#$%&'*+/=?^`{{|}}~ -]*?)\s*<(?P<addr>{_ADDR_SPEC})>|(?P<bare>{_ADDR_SPEC}))", re.ASCII
)
# A display name made of RFC 2047 encoded words only ("=?utf-8?b?...?= <addr>"): most names outside ASCII.
# Inside, the characters RFC 2047 allows an encoded word in a phrase; anything else goes to policy.default.
_ENCODED_WORD = r"=\?[A-Za-z0-9_.:+-]+(?:\*[A-Za-z0-9-]+)?\?[bBqQ]\?[A-Za-z0-9!*+/=_-]*\?="
_ENCODED_NAME_ADDRESS = re.compile(
    rf"(?P<name>{_ENCODED_WORD}(?:[ \t]+{_ENCODED_WORD})*)[ \t]+<(?P<addr>{_ADDR_SPEC})>",
    re.ASCII,
)
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_Q_LONE_EQUALS = re.compile(rb"=(?![0-9A-Fa-f]{2})")  # policy.default may end the word there ("?=" + "9")
_EMAIL_TOKEN = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# Python >= 3.11.10 / 3.12.6 parse strictly by default and return nothing for a broken list.
_LENIENT = {"strict": False} if "strict" in inspect.signature(getaddresses).parameters else {}


@dataclass(frozen=True)
class Address:
    name: str  # display name, decoded (RFC 2047), "" if none
    email: str  # lower-cased addr-spec, "" if unparseable


@dataclass
class Headers:
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    subject: str = ""
    from_: Address | None = None
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    date: datetime | None = None
    is_bulk: bool = False
    count: int = 0
    problems: list[str] = field(default_factory=list)


def read_headers(items: Iterable[tuple[str, str]], *, hint: str | None = None) -> Headers:
    """Read the header fields the product uses from raw ``(name, value)`` pairs, in order."""
    fields: dict[str, list[str]] = {}
    count = 0
    for name, value in items:
        fields.setdefault(name.strip().lower(), []).append(value)
        count += 1
    raws = (raw for name in _TEXT_FIELDS for raw in fields.get(name, ()))
    reader = _Reader(fields, header_charset(raws, hint))
    addresses = {name: reader.addresses(name) for name in _ADDRESS_FIELDS}
    return Headers(
        message_id=reader.message_id(),
        in_reply_to=reader.ids("in-reply-to"),
        references=reader.ids("references"),
        subject=reader.subject(),
        from_=addresses["from"][0] if addresses["from"] else None,
        reply_to=addresses["reply-to"],
        to=addresses["to"],
        cc=addresses["cc"],
        bcc=addresses["bcc"],
        date=reader.date(),
        is_bulk=reader.is_bulk(),
        count=count,
        problems=reader.problems,
    )


class _Reader:
    def __init__(self, fields: dict[str, list[str]], charset: str | None) -> None:
        self.fields = fields
        self.charset = charset  # for raw 8-bit bytes that are not UTF-8
        self.problems: list[str] = []

    def text(self, name: str, *, every: bool = False) -> str | None:
        values = self.fields.get(name)
        if not values:
            return None
        texts = []
        for raw in values if every else values[:1]:
            text, note = header_bytes_to_text(raw, self.charset)
            self.note(name, note)
            if "\n" in text or "\r" in text:  # folded (most values are one line: the patterns cost more)
                text = _LINE_BREAKS.sub(" ", _FOLD.sub("", text))
            texts.append(text.strip())
        return ", ".join(texts)

    def note(self, name: str, note: str | None) -> None:
        if note:
            self.problems.append(f"{_title(name)} header: {note}")

    def subject(self) -> str:
        text = self.text("subject")
        if text is None:
            return ""
        if "=?" not in text:  # nothing to decode: policy.default would return the text as it is
            return clean(" ".join(text.split()))
        value = (_decode_subject_cached if len(text) <= _MAX_CACHED_SUBJECT else _decode_subject)(text)
        if value is None:
            value, note = decode_words(text)
            self.note("subject", note or "malformed encoded words (decoded leniently)")
        return clean(" ".join(value.split()))

    def addresses(self, name: str) -> tuple[Address, ...]:
        text = self.text(name, every=True)
        if not text:
            return ()
        simple = _simple_addresses(text)
        if simple is None and "=?" in text:
            simple = _encoded_name_addresses(text)
        if simple is not None:
            return simple
        parsed = _parse_addresses(name, text) if len(text) <= _LONG_ADDRESS_HEADER else None
        if parsed is not None:
            return parsed
        found, clean_syntax = _salvage_addresses(text)
        if not clean_syntax or len(text) <= _LONG_ADDRESS_HEADER:
            self.note(name, "address list has syntax errors (read leniently)")
        if len(found) > MAX_ADDRESSES:
            self.note(name, f"{len(found):,} addresses, kept the first {MAX_ADDRESSES:,}")
        return found[:MAX_ADDRESSES]

    def message_id(self) -> str | None:
        text = self.text("message-id")
        if text is None:
            return None
        found = _ids(text)
        if found:
            return found[0]
        self.note("message-id", "not a valid message id")
        return None

    def ids(self, name: str) -> tuple[str, ...]:
        text = self.text(name, every=True)
        return tuple(dict.fromkeys(_ids(text))) if text else ()

    def date(self) -> datetime | None:
        text = self.text("date")
        if text is None:
            return None
        when = _parse_date(text)
        if when is None:
            self.note("date", "not a valid date")
        return when

    def is_bulk(self) -> bool:
        if "list-id" in self.fields or "list-unsubscribe" in self.fields:
            return True
        precedence = (self.text("precedence") or "").lower()
        auto_submitted = (self.text("auto-submitted") or "no").split(";")[0].strip().lower()
        return precedence in ("bulk", "list", "junk") or auto_submitted not in ("no", "")


def _decode_subject(text: str) -> str | None:
    """The subject decoded by policy.default; ``None`` when it raised or went wrong."""
    try:
        header = policy.default.header_factory("subject", text)
        value = str(header)
    except Exception:  # the stdlib header parsers have raised many kinds on bad input
        return None
    if header.defects or ("\ufffd" in value and "\ufffd" not in text):
        return None
    return value


# A conversation repeats its subject; 4,096 subjects of at most 1 KB are kept.
_decode_subject_cached = functools.lru_cache(maxsize=4096)(_decode_subject)


def _title(name: str) -> str:
    return "-".join(word.capitalize() for word in name.split("-")).replace("-Id", "-ID")


def _simple_addresses(text: str) -> tuple[Address, ...] | None:
    """The common case read fast: a list of ``addr`` or ``Name <addr>`` with plain ASCII names.

    ``None`` when anything is less than plain (encoded words, quotes, comments,
    groups, routes, 8-bit text, a doubtful addr-spec): those go to the full parser.
    """
    if not text.isascii() or _NOT_SIMPLE.search(text) is not None or len(text) > _LONG_ADDRESS_HEADER:
        return None
    return _listed(text, _plain_item)


def _plain_item(item: str) -> tuple[str, str] | None:
    matched = _SIMPLE_ADDRESS.fullmatch(item)
    if matched is None:
        return None
    return matched.group("name") or "", matched.group("addr") or matched.group("bare")


def _listed(text: str, read_item) -> tuple[Address, ...] | None:
    """The comma-separated items of ``text``, each read by ``read_item`` into (name, addr); ``None`` if one is not."""
    found = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        pair = read_item(item)
        address = _address(*pair) if pair is not None else None
        if address is None or not address.email:
            return None
        found.append(address)
    return tuple(found)


def _encoded_name_addresses(text: str) -> tuple[Address, ...] | None:
    """Addresses whose names are encoded words only, read as policy.default reads them, without its parser.

    That parser takes a tenth of a sync worker's time on a mailbox with many
    non-ASCII names (each list it has not seen costs ~0.1 ms). Each word is
    decoded as the stdlib's ``email._encoded_words`` decodes it (Q's "_" and
    "=XX", base64, then the charset) and the words of a name are joined with
    a space, as policy.default joins them (a property test holds the two
    equal). ``None``, the full parser's turn, for anything it would flag (bad
    base64 or padding, an unknown charset, bytes the charset cannot decode),
    for names with characters that are not printable (controls, spaces other
    than " ") and for a list of any other shape.
    """
    if not text.isascii() or len(text) > _LONG_ADDRESS_HEADER:
        return None
    return _listed(text, _encoded_item)


def _encoded_item(item: str) -> tuple[str, str] | None:
    matched = _ENCODED_NAME_ADDRESS.fullmatch(item)
    if matched is None:
        return None
    words = [_decoded_word(word) for word in matched.group("name").split()]
    # Printable text only: policy.default treats control characters and odd spaces in its own ways.
    if not all(word and word.isprintable() for word in words):
        return None
    name = " ".join(words)
    if "\ufffd" in name:  # the full parser refuses it (then reads the list leniently)
        return None
    return name, matched.group("addr")


def _decoded_word(word: str) -> str | None:
    _, charset, encoding, payload, _ = word.split("?")
    data = payload.encode("ascii")
    if encoding in "qQ":
        if _Q_LONE_EQUALS.search(data):
            return None
        data = _Q_ESCAPE.sub(lambda m: bytes.fromhex(m.group(1).decode("ascii")), data.replace(b"_", b" "))
    elif len(data) % 4:
        return None
    else:
        try:
            data = base64.b64decode(data, validate=True)
        except binascii.Error:
            return None
    try:
        return data.decode(charset.partition("*")[0])
    except (LookupError, UnicodeError):
        return None


@functools.lru_cache(maxsize=4096)
def _parse_addresses(name: str, text: str) -> tuple[Address, ...] | None:
    """Parse with policy.default; ``None`` when it raised or reported defects.

    Cached: the same correspondents come back message after message (a third
    of the calls in a 10,000-message mailbox are new lists), and the answer
    is immutable. At most 4,096 lists of at most 1 KB are kept.
    """
    try:
        header = policy.default.header_factory(name, text)
        parsed = header.addresses
    except Exception:  # see subject(): the failures are not of one type
        return None
    if any(not _is_obsolete_only(defect) for defect in header.defects):
        return None
    if any("\ufffd" in address.display_name for address in parsed):
        return None
    found = (_address(address.display_name, address.addr_spec) for address in parsed)
    return tuple(address for address in found if address is not None)


def _is_obsolete_only(defect: Exception) -> bool:
    # Obsolete RFC 5322 syntax (empty list elements, routes) still parses correctly.
    return type(defect).__name__ == "ObsoleteHeaderDefect"


def _salvage_addresses(text: str) -> tuple[tuple[Address, ...], bool]:
    """Addresses read by the legacy parser, and whether every one of them was well-formed."""
    pairs, clean_syntax = _legacy_pairs(text)
    found = []
    for name, addr in pairs:
        name = decode_words(name)[0]
        if not _plausible(addr):
            clean_syntax = False
            name, addr = _rescue(name, addr)
        address = _address(name, addr)
        if address is not None:
            found.append(address)
    return tuple(found), clean_syntax


def _legacy_pairs(text: str) -> tuple[list[tuple[str, str]], bool]:
    if text.count(":") + text.count("(") <= _MAX_NESTING_SIGNS:
        try:
            return getaddresses([text], **_LENIENT), True
        except RecursionError:
            pass
    return [("", token) for token in _EMAIL_TOKEN.findall(text)], False


def _rescue(name: str, addr: str) -> tuple[str, str]:
    """An address the parser could not split ("Jane Doe jane@x.com"): find the addr-spec inside."""
    for source in (addr, name):
        token = _EMAIL_TOKEN.search(source)
        if token is not None:
            return (source[: token.start()] + source[token.end() :]).strip(" <>\"'") or name, token.group()
    return name or addr, ""


def _address(name: str, addr: str) -> Address | None:
    name = clean(" ".join(name.split()))
    email = clean(addr.strip().lower()) if _plausible(addr) else ""
    return Address(name, email) if name or email else None


def _plausible(addr: str) -> bool:
    local, at, domain = addr.strip().rpartition("@")
    return bool(at and local and domain) and _NOT_IN_ADDRESS.search(addr.strip()) is None


def _ids(text: str) -> list[str]:
    bracketed = _BRACKETED_ID.findall(text)
    # Some mailers drop the angle brackets; then only whitespace separates ids.
    candidates = bracketed if bracketed else [token for token in text.split() if "@" in token]
    ids = ("".join(candidate.split()) for candidate in candidates)
    return [clean(found) for found in ids if found and len(found) <= _MAX_ID_LENGTH]


def _parse_date(text: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(text)  # what policy.default's Date header calls, without the header object
    except Exception:  # e.g. OverflowError, ValueError, IndexError from the stdlib date parser
        when = None
    if when is None:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
