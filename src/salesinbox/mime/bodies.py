"""The body of a parsed message: readable text, HTML, attachments.

The walk numbers parts as IMAP does (RFC 3501 6.4.5, BODY[<section>]): a
non-multipart message is part "1"; the children of a multipart are 1..n,
nested ones "2.1", "2.1.3"; a message/rfc822 part is one part, never entered.

What is body and what is attachment, as mail clients decide it:

- multipart/alternative gives one body unit: its text/plain for the text
  (unless empty), its last text/html for the HTML;
- any other multipart (mixed, related, signed, report, unknown) gives its
  children's units in order, so several inline text parts are joined;
- a text/plain or text/html leaf is body unless its Content-Disposition is
  "attachment", or it carries a filename without saying "inline";
- everything else is an attachment, including text/calendar (which also
  marks the message as an invite) and message/* (forwarded mail).

Attachment payloads are never decoded: sizes are estimated from the encoded
length (base64 * 3/4). Only text parts are decoded.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from email.message import Message

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_properties import Display
from inscriptis.model.config import ParserConfig
from inscriptis.model.html_element import HtmlElement
from inscriptis.model.tag import CustomHtmlTagHandlerMapping

from salesinbox.mime.charsets import clean, decode_text, decode_words, header_bytes_to_text, header_charset

_MAX_CACHED_PARAMETERS = 1024  # characters of a header value whose parameters are cached
MAX_HTML_TO_TEXT = 256 * 1024  # per message; inscriptis (tables flattened) needs up to ~0.8 ms per KB
_CALENDAR_TYPES = ("text/calendar", "application/ics")
_BODY_TYPES = ("text/plain", "text/html")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_:.+-]{1,40})""", re.IGNORECASE)
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TAGS = re.compile(r"<[^>]*>")
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MAX_FILENAME = 255
_DEFECT_NOTES = {
    "CloseBoundaryNotFoundDefect": "closing MIME boundary missing (message truncated?)",
    "StartBoundaryNotFoundDefect": "multipart boundary never appears",
    "NoBoundaryInMultipartDefect": "multipart without a boundary",
    "MultipartInvariantViolationDefect": "declared multipart but has no parts",
    "FirstHeaderLineIsContinuationDefect": "first header line is a continuation",
    "MissingHeaderBodySeparatorDefect": "a non-header line inside the header block",
    "MisplacedEnvelopeHeaderDefect": "a 'From ' envelope line among the headers",
    "InvalidMultipartContentTransferEncodingDefect": "multipart with an invalid transfer encoding",
    "InvalidBase64PaddingDefect": "base64 with bad padding",
    "InvalidBase64CharactersDefect": "base64 with invalid characters",
    "InvalidBase64LengthDefect": "base64 of impossible length (left undecoded)",
}


@dataclass(frozen=True)
class AttachmentInfo:
    part_id: str  # IMAP body section number ("2", "1.2", ...), RFC 3501 BODY[<section>]
    filename: str  # decoded (RFC 2231 / RFC 2047), "" if none; path separators and control chars stripped
    content_type: str  # lower-case "type/subtype"
    size: int  # decoded size in bytes, estimated from the encoded length
    content_id: str | None  # without <>
    inline: bool  # has a Content-ID and is not disposed as "attachment": an embedded image
    on_server: bool = False  # its bytes were left on the mail server at sync (``mime.lean``): fetched on demand


@dataclass
class Body:
    text: str = ""
    html: str | None = None
    attachments: tuple[AttachmentInfo, ...] = ()
    is_calendar: bool = False
    charset: str | None = None  # the first declared non-ASCII text charset: a hint for raw 8-bit headers
    problems: list[str] = field(default_factory=list)


@dataclass
class _Unit:
    """One body unit: a text part, an HTML part, or an alternative of both."""

    plain: str | None = None
    html: str | None = None


def read_body(message: Message) -> Body:
    walk = _Walk()
    units = walk.visit(message, "")
    htmls = [unit.html for unit in units if unit.html is not None]
    return Body(
        text="\n\n".join(text for text in (walk.unit_text(unit) for unit in units) if text),
        html="\n".join(htmls) if htmls else None,
        attachments=tuple(walk.attachments),
        is_calendar=walk.is_calendar,
        charset=walk.charset,
        problems=walk.problems,
    )


def html_to_text(html: str, *, budget: int = MAX_HTML_TO_TEXT) -> tuple[str, str | None]:
    """Readable text from HTML with inscriptis, for at most ``budget`` characters of HTML; a crude tag strip past it."""
    html = _CONTROL_CHARS.sub("", html)  # lxml refuses control characters
    note = None
    if len(html) > budget:
        if budget < 1024:
            return _strip_tags(html), "too much HTML to convert; tags stripped"
        html, note = html[:budget], f"HTML too long; text made from its first {budget // 1024} KB"
    try:
        return get_text(html, _TEXT_CONFIG), note
    except Exception:  # lxml raises its own error types on hostile markup; any of them means: fall back
        return _strip_tags(html), "HTML could not be read; tags stripped"


def _ignore_tag(*_: object) -> None:
    return None


def _flat_tables_config() -> ParserConfig:
    """inscriptis with tables read as rows of words instead of laid out as grids.

    Its grid layout costs time that grows with the square of nested tables'
    content (0.8 s for 31 KB of unclosed nested cells); flattened, every
    document converts in linear time, and search and snippets lose nothing.
    """
    css = dict(CSS_PROFILES["strict"])
    css["table"] = css["tr"] = HtmlElement(display=Display.block)
    css["td"] = css["th"] = HtmlElement(suffix=" ", limit_whitespace_affixes=True)
    handlers = CustomHtmlTagHandlerMapping(
        start_tag_mapping=dict.fromkeys(("table", "tr", "td", "th"), _ignore_tag),
        end_tag_mapping=dict.fromkeys(("table", "td", "th"), _ignore_tag),
    )
    return ParserConfig(css=css, custom_html_tag_handler_mapping=handlers)


_TEXT_CONFIG = _flat_tables_config()


def _strip_tags(html: str) -> str:
    return " ".join(_TAGS.sub(" ", html).split())


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except (ValueError, TypeError, LookupError):
        return "application/octet-stream"


class _Walk:
    def __init__(self) -> None:
        self.attachments: list[AttachmentInfo] = []
        self.is_calendar = False
        self.charset: str | None = None
        self.problems: list[str] = []
        self.html_budget = MAX_HTML_TO_TEXT
        self.header_charset: str | None = None  # guessed once, at the first raw 8-bit part header

    def visit(self, part: Message, part_id: str) -> list[_Unit]:
        self.note_defects(part, part_id)
        ctype = _content_type(part)
        if part.is_multipart() and not ctype.startswith("message/"):
            prefix = f"{part_id}." if part_id else ""
            children = [(child, f"{prefix}{n}") for n, child in enumerate(part.get_payload(), 1)]
            if ctype == "multipart/alternative":
                return [self.alternative(children)]
            return [unit for child, child_id in children for unit in self.visit(child, child_id)]
        return self.leaf(part, part_id or "1", ctype)

    def alternative(self, children: list[tuple[Message, str]]) -> _Unit:
        chosen = _Unit()
        for child, child_id in children:
            merged = _merge(self.visit(child, child_id))
            if merged.plain is not None and (chosen.plain is None or not chosen.plain.strip()):
                chosen.plain = merged.plain
            if merged.html is not None:
                chosen.html = merged.html  # alternatives are ordered plainest first: the last is the best
        if chosen.plain is not None and not chosen.plain.strip() and chosen.html is not None:
            chosen.plain = None  # an empty text alternative next to real HTML
        return chosen

    def leaf(self, part: Message, part_id: str, ctype: str) -> list[_Unit]:
        disposition = _disposition(part)
        filename = self.filename(part, part_id)
        is_body = ctype in _BODY_TYPES or ctype.startswith("multipart/")  # a multipart that lost its parts
        if is_body and disposition != "attachment" and (not filename or disposition == "inline"):
            text = self.decode(part, part_id, ctype)
            return [_Unit(html=text)] if ctype == "text/html" else [_Unit(plain=text)]
        if ctype in _CALENDAR_TYPES:
            self.is_calendar = True
            filename = filename or "invite.ics"
        elif ctype in ("message/rfc822", "message/global"):
            filename = filename or "message.eml"
        content_id = self.content_id(part)
        self.attachments.append(
            AttachmentInfo(
                part_id=part_id,
                filename=filename,
                content_type=ctype,
                size=_encoded_size(part),
                content_id=content_id,
                inline=content_id is not None and disposition != "attachment",
            )
        )
        return []

    def decode(self, part: Message, part_id: str, ctype: str) -> str:
        payload = part.get_payload(decode=True)
        self.note_defects(part, part_id)
        data = payload if isinstance(payload, bytes) else b""
        charset = self.charset_of(part)
        if charset is None and ctype == "text/html":
            meta = _META_CHARSET.search(data, 0, 4096)
            charset = meta.group(1).decode("ascii") if meta else None
        if self.charset is None and charset and charset.lower() not in ("us-ascii", "ascii", "utf-8", "utf8"):
            self.charset = charset
        text, note = decode_text(data, charset)
        if note:
            self.problems.append(f"part {part_id}: {note}")
        return clean(text.replace("\r\n", "\n").replace("\r", "\n"))

    def filename(self, part: Message, part_id: str) -> str:
        try:
            value = self.param(part, "content-disposition", "filename") or self.param(part, "content-type", "name")
        except (ValueError, TypeError, LookupError, UnicodeError, IndexError):
            self.problems.append(f"part {part_id}: unreadable filename")
            return ""
        if value is None:
            return ""
        if isinstance(value, tuple):  # RFC 2231: (charset, language, percent-decoded text, one char a byte)
            charset, _, text = value
            try:
                name, note = decode_text(text.encode("latin-1", "surrogateescape"), charset or None)
            except UnicodeEncodeError:  # raw non-Latin text among the percent escapes: already text
                name, note = text, "mixes raw text into RFC 2231 encoding"
        else:
            name, note = decode_words(value)
        if note:
            self.problems.append(f"part {part_id}: filename {note}")
        return _safe_filename(name)

    def unit_text(self, unit: _Unit) -> str:
        if unit.plain is not None:
            return unit.plain
        if unit.html is None:
            return ""
        text, note = html_to_text(unit.html, budget=self.html_budget)
        self.html_budget -= len(unit.html)
        if note:
            self.problems.append(note)
        return text

    def header_text(self, raw: str) -> str:
        if self.header_charset is None and not raw.isascii():
            self.header_charset = header_charset([raw], self.charset)
        return header_bytes_to_text(raw, self.header_charset)[0]

    def param(self, part: Message, header: str, name: str) -> str | tuple[str, str, str] | None:
        raw = _raw_header(part, header)
        if raw is None:
            return None
        if not raw.isascii():
            # compat32 would turn raw 8-bit bytes into U+FFFD: give it the decoded text instead.
            scratch = Message()
            scratch[header] = self.header_text(raw)
            return scratch.get_param(name, None, header)
        if len(raw) <= _MAX_CACHED_PARAMETERS:
            return _ascii_param(raw, header, name)
        return part.get_param(name, None, header)

    def charset_of(self, part: Message) -> str | None:
        value = self.param(part, "content-type", "charset")
        if isinstance(value, tuple):
            value = value[2]
        if not isinstance(value, str):
            return None
        return value.strip() or None

    def content_id(self, part: Message) -> str | None:
        raw = _raw_header(part, "content-id")
        if raw is None:
            return None
        value = clean("".join(self.header_text(raw).split()).strip("<>"))
        return value or None

    def note_defects(self, part: Message, part_id: str) -> None:
        for defect in part.defects:
            name = type(defect).__name__
            note = _DEFECT_NOTES.get(name, name)
            self.problems.append(f"part {part_id}: {note}" if part_id else note)
        part.defects.clear()  # noted once, even when decoding adds more later


def _merge(units: list[_Unit]) -> _Unit:
    plains = [unit.plain for unit in units if unit.plain is not None]
    htmls = [unit.html for unit in units if unit.html is not None]
    return _Unit("\n\n".join(plains) if plains else None, "\n".join(htmls) if htmls else None)


@functools.lru_cache(maxsize=1024)
def _ascii_param(raw: str, header: str, name: str) -> str | tuple[str, str, str] | None:
    """compat32's ``get_param`` on a field whose first value is ``raw``: the same answer, cached.

    The same few Content-Type values ("text/plain; charset=utf-8") come back
    in most messages; an answer is a string or a tuple of strings, immutable.
    Only values up to ``_MAX_CACHED_PARAMETERS`` are kept: at most about 1 MB.
    """
    scratch = Message()
    scratch[header] = raw
    return scratch.get_param(name, None, header)


def _raw_header(part: Message, name: str) -> str | None:
    for key, value in part.raw_items():
        if key.lower() == name:
            return value
    return None


def _disposition(part: Message) -> str:
    raw = _raw_header(part, "content-disposition")
    return raw.split(";", 1)[0].strip().lower() if raw else ""


def _encoded_size(part: Message) -> int:
    try:
        payload = part.get_payload()
    except (TypeError, LookupError, ValueError):  # 8-bit payloads are decoded with the declared charset
        return 0
    if isinstance(payload, list):  # message/delivery-status: header blocks parsed as messages
        return sum(len(str(block)) for block in payload)
    if not isinstance(payload, str):
        return 0
    encoding = (_raw_header(part, "content-transfer-encoding") or "").strip().lower()
    if encoding == "base64":
        # "in" is a memchr, count is not: most of these characters are absent (a CR with LF line ends, spaces, tabs).
        chars = len(payload) - sum(payload.count(space) for space in ("\n", "\r", " ", "\t") if space in payload)
        padding = len(payload.rstrip()) - len(payload.rstrip().rstrip("="))
        return max(chars * 3 // 4 - padding, 0)
    if encoding == "quoted-printable":
        return max(len(payload) - 2 * payload.count("="), 0)
    return len(payload)


def _safe_filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch not in _BIDI_CONTROLS and unicodedata.category(ch) != "Cc")
    name = clean(name).strip()
    if name in (".", ".."):
        return ""
    if len(name) > _MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        keep = _MAX_FILENAME - len(extension) - 1
        name = stem[:keep] + dot + extension if dot and 0 < len(extension) < 16 else name[:_MAX_FILENAME]
    return name
