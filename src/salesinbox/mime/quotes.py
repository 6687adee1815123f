"""Fold quoted history and signatures out of a message body for the conversation view.

``split_text`` cuts a plain-text body into the sender's new words, the quoted
history and the signature; ``split_html`` cuts an HTML body into the new part
and the quoted rest. Both are pure, never raise, and never drop content: when
unsure, or when the input is too big or too strange, everything is body.

Plain text: the attribution and header blocks are found with mail-parser-reply's
header patterns ("On ... wrote:", "Am ... schrieb ...:", Outlook "From:/Sent:"
blocks, "-----Original Message-----", in the languages below) and quotequail's
reply/forward patterns (which also cover Spanish and Dutch Gmail lines,
Portuguese, "Begin forwarded message:" and Outlook's underscore line), plus
Polish "W dniu ... pisze:" lines, which neither knows. Lines starting with ">"
are quotes too. Quoted history is cut from the original lines, never from the
libraries' normalised copies, so nothing is lost.

Interleaved replies (text, quote, more text) are not folded. A bottom-posted
reply (quote first, answer after) folds the leading quote.

Signatures are only the explicit kinds: a "-- " delimiter line, and a short
"Sent from my iPhone"-style line near the end of the new part. Sign-offs such as
"Thanks," stay in the body: mail-parser-reply's sign-off patterns would fold
"Thanks, that works for us." and everything after it.

HTML: quotequail.quote_html finds attribution lines and Outlook's border-top
header block; the markup of the common clients (Gmail's ``gmail_quote``,
``blockquote type="cite"`` of Apple Mail and Thunderbird, Outlook's
``divRplyFwdMsg`` / ``appendonsend``) is found on the tree. The earlier cut wins.
The output is not sanitised here.
"""

from __future__ import annotations

import copy
import html as html_lib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import lxml.etree
import lxml.html
import quotequail
from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES

if TYPE_CHECKING:
    from lxml.html import HtmlElement

MAX_TEXT_CHARS = 1_000_000  # longer text bodies are not folded
MAX_HTML_CHARS = 2_000_000  # longer HTML bodies are not folded
# The header patterns backtrack heavily (a few ms on a crafted 200-character line),
# so they see at most this many candidate lines, each cut to this length.
MAX_HEADER_SCAN_LINES = 150
MAX_HEADER_LINE_CHARS = 200
MAX_SIGNATURE_LINES = 25  # non-blank lines after a "-- " delimiter
MAX_SENT_FROM_TRAILER = 3  # non-blank lines allowed after "Sent from my iPhone"
# quotequail walks every line of the HTML (about 40 microseconds per element):
# bigger documents are folded on client markup only.
MAX_QUOTEQUAIL_ELEMENTS = 5_000
# quotequail's reply patterns ("^Am (.*) schrieb (.*):$") are quadratic in a line's length: the sum of
# squared line lengths (about 8 ns per unit) must stay under this, else only client markup is used.
MAX_QUOTEQUAIL_COST = 300_000_000
# libxml2 silently drops what is nested deeper than 256 elements; such a tree is
# not a faithful copy of the input, so it is never cut.
MAX_HTML_DEPTH = 250

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "nl", "pl", "it", "sv", "da", "cs", "ja", "ko", "zh")


@dataclass(frozen=True, slots=True)
class FoldedText:
    """A plain-text body cut into the new part, the quoted history and the signature."""

    body: str
    quoted: str = ""
    signature: str = ""


@dataclass(frozen=True, slots=True)
class FoldedHtml:
    """An HTML body cut into the new part and the quoted rest (not sanitised)."""

    body_html: str
    quoted_html: str = ""


# --- plain text -------------------------------------------------------------------------------------------------

_HEADER_RE: re.Pattern[str] = EmailReplyParser(languages=list(LANGUAGES)).read("").HEADER_REGEX

# Polish attribution lines that mail-parser-reply (only "Dnia ... napisał(a):") misses:
# Thunderbird's "W dniu 5.01.2024 o 10:00, Anna pisze:" and Gmail's "pt., 5 sty 2024 ... napisała:".
_EXTRA_INTRO_RE = re.compile(
    r"^(?:> ?)*(?:W dniu .{1,200}? (?:pisze|napisał\(a\)|napisała?)"
    r"|\S.{0,200}?\d.{0,200}? (?:napisał\(a\)|napisała?)) ?:$",
    re.IGNORECASE,
)
# Header field names of forwarded/replied mail in the supported languages; the "from" ones must be present.
_FROM_FIELDS = ("From", "Von", "De", "Van", "Od", "Da", "Från", "Fra", "发件人", "보낸 사람", "보낸사람")
_OTHER_FIELDS = (
    "Sent|To|Cc|Bcc|Subject|Date|Reply-To|Organization|"
    "Gesendet|An|Betreff|Datum|Kopie|Antwort an|"
    "Envoyé|Envoyé le|À|Objet|Répondre à|"
    "Enviado|Enviado el|Para|Asunto|Fecha|CCO|"
    "Verzonden|Aan|Onderwerp|Antwoord aan|"
    "Wysłano|Do|Temat|Data|DW|"
    "Inviato|A|Oggetto|"
    "Skickat|Till|Ämne|Kopia|"
    "Sendt|Til|Emne|Dato|Kopi|"
    "Odesláno|Komu|Předmět|"
    "发送时间|收件人|主题|抄送|받는 사람|받는사람|제목|참조|보낸 날짜"
).split("|")
_FIELD_PREFIX = r"^(?:> ?)*[* ]*(?:"
_FIELD_SUFFIX = r")[ *]*[:：]"
_FROM_FIELD_RE = re.compile(_FIELD_PREFIX + "|".join(map(re.escape, _FROM_FIELDS)) + _FIELD_SUFFIX, re.IGNORECASE)
_ANY_FIELD_RE = re.compile(
    _FIELD_PREFIX + "|".join(map(re.escape, (*_FROM_FIELDS, *_OTHER_FIELDS))) + _FIELD_SUFFIX, re.IGNORECASE
)
# Cheap pre-filter: a line that may start a header field (not a URL scheme).
_FIELD_START_RE = re.compile(r"^(?:> ?)*[* ]*[^\W\d_][\w .'()-]{0,40}?[ *]*[:：](?!//)")
_DASHED_SEPARATOR_RE = re.compile(r"^(?:> ?)*-{3,} ?\S.*-{3,}$", re.MULTILINE)
_RULE_LINE_RE = re.compile(r"^(?:> ?)*[-_=*~]{8,}$")

_SENT_FROM_EXTRA = (
    r"Sent from (?:Mail|Outlook|Yahoo|Gmail|Samsung|my)\b",
    r"Sent (?:with|via) ",
    r"Get Outlook for ",
    r"Von meinem .{1,60} gesendet",
    r"Envoy[ée] (?:de|depuis) mon ",
    r"Enviado desde ",
    r"Enviado do meu ",
    r"Verstuurd (?:vanaf|met) ",
    r"Wys[łl]ane z ",
    r"Inviato dal mio ",
)
_SENT_FROM_RE = re.compile(
    "^(?:"
    + "|".join(
        [
            *(MAIL_LANGUAGES[lang]["sent_from"] for lang in LANGUAGES if MAIL_LANGUAGES.get(lang, {}).get("sent_from")),
            *_SENT_FROM_EXTRA,
        ]
    )
    + ")",
    re.IGNORECASE,
)
_MAX_SENT_FROM_CHARS = 100


def split_text(text: str) -> FoldedText:
    """Cut a plain-text body into new part, quoted history and signature; never raises, never drops text.

    A body with nothing to fold comes back as ``FoldedText(text.rstrip(), "", "")``.
    """
    if not text or len(text) > MAX_TEXT_CHARS:
        return FoldedText(text.rstrip() if text else "")
    try:
        return _split_text(text)
    except Exception:  # a library bug or a pathological input must not break the view
        return FoldedText(text.rstrip())


def _split_text(text: str) -> FoldedText:
    """The work of ``split_text``, on the lines of the original text."""
    lines = text.split("\n")
    norm = [line.strip() for line in lines]
    n = len(norm)

    first_quote = next((i for i, line in enumerate(norm) if line.startswith(">")), None)
    scan_end = first_quote + 1 if first_quote is not None else n
    header = _find_header(norm, 0, scan_end)
    if header is None and first_quote is not None:
        # the scan budget may have run out in a long body: look right above the quote once more
        header = _find_header(norm, max(0, first_quote - 4), scan_end)

    start: int | None = None
    header_end = -1
    if header is not None and (first_quote is None or header[0] <= first_quote):
        start, header_end = header
    elif first_quote is not None:
        start, header_end = first_quote, first_quote - 1

    if start is None:
        return _assemble(lines, norm, (0, n))

    start = _include_rule_line(norm, start)
    quote_end = _quote_end(norm, start, max(header_end, start - 1))
    has_body_before = any(norm[:start])
    if quote_end == n:
        return _assemble(lines, norm, (0, start), quoted=(start, n))
    tail_signature = _signature_start(norm, quote_end, n)
    if tail_signature is not None and not any(norm[quote_end:tail_signature]):
        # top-posted reply with the signature after the quote
        return _assemble(lines, norm, (0, start), quoted=(start, quote_end), trailer=(quote_end, n))
    if not has_body_before:
        # bottom-posted reply: the quote comes first, the answer after it
        return _assemble(lines, norm, (quote_end, n), quoted=(start, quote_end))
    # interleaved answers: folding would hide the sender's words
    return _assemble(lines, norm, (0, n))


def _assemble(
    lines: list[str],
    norm: list[str],
    body: tuple[int, int],
    *,
    quoted: tuple[int, int] = (0, 0),
    trailer: tuple[int, int] = (0, 0),
) -> FoldedText:
    """Build the result from line ranges; a signature is cut off the end of the body range."""
    body_start, body_end = body
    signature_start = _signature_start(norm, body_start, body_end)
    if signature_start is None:
        signature_start = body_end
    if quoted[0] >= quoted[1] and trailer[0] >= trailer[1] and signature_start == body_end:
        return FoldedText("\n".join(lines).rstrip())
    if body_start == 0:
        body_text = "\n".join(lines[:signature_start]).rstrip()
    else:
        body_text = _join(lines, body_start, signature_start)
    signature_parts = (_join(lines, signature_start, body_end), _join(lines, *trailer))
    signature = "\n\n".join(part for part in signature_parts if part)
    return FoldedText(body_text, _join(lines, *quoted), signature)


def _join(lines: list[str], start: int, end: int) -> str:
    """Original lines start..end, without leading blank lines and trailing whitespace."""
    while start < end and not lines[start].strip():
        start += 1
    return "\n".join(lines[start:end]).rstrip()


def _include_rule_line(norm: list[str], start: int) -> int:
    """Move the cut up to an underscore/dash rule line that introduces the quote (Outlook)."""
    previous = start - 1
    if previous >= 0 and not norm[previous]:
        previous -= 1
    if previous >= 0 and _RULE_LINE_RE.match(norm[previous]):
        return previous
    return start


def _quote_end(norm: list[str], start: int, header_end: int) -> int:
    """Where the quoted history that begins at ``start`` ends (``len(norm)`` for the end of the text).

    After an attribution line, a ">" block is the quote and text after it is new text again;
    after an Outlook header block or a forward line, the rest of the message is the old mail.
    """
    n = len(norm)
    first = header_end + 1
    while first < n and not norm[first]:
        first += 1
    if first >= n or not norm[first].startswith(">"):
        return n
    after = first
    last_quoted = first
    while after < n and (not norm[after] or norm[after].startswith(">")):
        if norm[after]:
            last_quoted = after
        after += 1
    if after >= n:
        return n
    next_header = _find_header(norm, after, min(n, after + 4))
    if next_header is not None and next_header[0] <= after + 1:
        return n
    return last_quoted + 1


def _signature_start(norm: list[str], start: int, end: int) -> int | None:
    """The first line of a signature at the end of lines start..end, if there is one.

    Only the last few non-blank lines can start one, so the walk goes backwards and stops early.
    """
    candidate: int | None = None
    after = 0  # non-blank lines below the current one
    for i in range(end - 1, start - 1, -1):
        line = norm[i]
        if not line:
            continue
        if line.startswith(">"):
            break  # a signature never has quoted lines below it
        if line == "--":
            if 0 < after <= MAX_SIGNATURE_LINES:
                candidate = i
        elif after <= MAX_SENT_FROM_TRAILER and len(line) <= _MAX_SENT_FROM_CHARS and _SENT_FROM_RE.match(line):
            candidate = i
        after += 1
        if after > MAX_SIGNATURE_LINES:
            break
    return candidate


def _relevant(line: str) -> bool:
    """Whether a (stripped) line could be part of an attribution or header block."""
    if not line:
        return False
    if line.endswith((":", "：", ">")):
        return True
    if line.lstrip("> ")[:1] in ("-", "_", "="):
        return True
    return _FIELD_START_RE.match(line) is not None


def _find_header(norm: list[str], start: int, end: int) -> tuple[int, int] | None:
    """First attribution or header block in lines start..end, as (first line, last line).

    The patterns see only lines that could belong to a header (and the line before each, for
    wrapped attribution lines), each cut to ``MAX_HEADER_LINE_CHARS``; other lines become one blank.
    """
    view: list[str] = []
    index: list[int] = []
    budget = MAX_HEADER_SCAN_LINES
    last = len(norm) - 1
    for i in range(start, end):
        line = norm[i]
        if not line or not (_relevant(line) or (i < last and _relevant(norm[i + 1]))):
            if view and view[-1]:
                view.append("")
                index.append(i)
            continue
        if budget == 0:
            break
        budget -= 1
        view.append(line if len(line) <= MAX_HEADER_LINE_CHARS else line[:MAX_HEADER_LINE_CHARS] + "\u2026")
        index.append(i)
    if not view:
        return None
    found = _header_in_view(view)
    if found is None:
        return None
    return index[found[0]], index[found[1]]


def _header_in_view(view: list[str]) -> tuple[int, int] | None:
    """Earliest header block found by the two libraries (and the Polish extra) in the view lines."""
    hits: list[tuple[int, int]] = []
    text = "\n".join(view)

    for match in _HEADER_RE.finditer(text):
        block = match.group(0)
        offset = match.start() + (len(block) - len(block.lstrip("\n")))
        block = block.strip("\n")
        if not block.strip() or not _accept_header_block(block):
            continue
        first = text.count("\n", 0, offset)
        hits.append((first, first + block.count("\n")))
        break

    total = len(view)
    begin = quotequail.quote(text, limit=total + 1, quote_intro_line=True)
    if len(begin) == 2:
        first = total - (begin[1][1].count("\n") + 1)
        end = quotequail.quote(text, limit=total + 1)
        last = end[0][1].count("\n") if len(end) == 2 else first
        hits.append((first, max(first, last)))

    for i, line in enumerate(view):
        if _EXTRA_INTRO_RE.match(line):
            hits.append((i, i))
            break
        if line and i + 1 < total and view[i + 1] and _EXTRA_INTRO_RE.match(line + " " + view[i + 1]):
            hits.append((i, i + 1))
            break

    return min(hits) if hits else None


def _accept_header_block(block: str) -> bool:
    """Keep attribution lines and header blocks with a sender; drop stray field lines ("Data: ...", "To: all")."""
    lines = [line for line in block.split("\n") if line.strip()]
    if _DASHED_SEPARATOR_RE.search(block):
        return True
    fields = [line for line in lines if _ANY_FIELD_RE.match(line)]
    if fields:
        return len(fields) >= 2 and any(_FROM_FIELD_RE.match(line) for line in fields)
    return len(lines) <= 2 and lines[-1].rstrip().endswith((":", "："))


# --- HTML -------------------------------------------------------------------------------------------------------

_MARKER_CLASSES = frozenset(
    {
        "gmail_quote",
        "gmail_quote_container",
        "yahoo_quoted",
        "moz-cite-prefix",
        "protonmail_quote",
        "zmail_extra",
        "OutlookMessageHeader",
        "AppleOriginalContents",
    }
)
_MARKER_IDS = ("divRplyFwdMsg", "appendonsend", "mail-editor-reference-message-container")
_HTML_FIELD_RE = re.compile(r"^[^\W\d_][\w .'-]{0,30}?\s?[:：]")
# Tags that do not end a line for quotequail (its _html.INLINE_TAGS).
_INLINE_TAGS = frozenset(
    ("a", "b", "em", "i", "strong", "span", "font", "q", "object", "bdo", "sub", "sup", "center", "td", "th")
)
_XML_ILLEGAL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_FULL_DOCUMENT_RE = re.compile(r"<(?:!doctype|html|head|body)[\s>/]", re.IGNORECASE)
_SPACE_RE = re.compile(r"\s+")
_TOO_DEEP = lxml.etree.XPath("boolean(" + "/*" * (MAX_HTML_DEPTH + 1) + ")")
_COUNT_ELEMENTS = lxml.etree.XPath("count(//*)")


def split_html(html: str) -> FoldedHtml:
    """Cut an HTML body into the new part and the quoted history; never raises.

    With nothing to fold, or on any failure, the input comes back unchanged as ``body_html``.
    """
    if not html or not html.strip() or len(html) > MAX_HTML_CHARS:
        return FoldedHtml(html or "")
    try:
        return _split_html(html)
    except Exception:  # broken markup or a library bug: show everything
        return FoldedHtml(html)


def _split_html(html: str) -> FoldedHtml:
    """The work of ``split_html``: the earlier of the markup cut and quotequail's cut."""
    root = _parse(html)
    if _TOO_DEEP(root):
        return FoldedHtml(html)
    count = int(_COUNT_ELEMENTS(root))

    candidates: list[tuple[int, int, str, str]] = []
    marker = _first_marker(root)
    if marker is not None:
        body_root, quoted_root = _cut_at(root, marker)
        full = _FULL_DOCUMENT_RE.search(html) is not None
        candidates.append((_visible_chars(body_root), 0, _render(body_root, full), _render(quoted_root, full)))
    if count <= MAX_QUOTEQUAIL_ELEMENTS and _quotequail_cost(root) <= MAX_QUOTEQUAIL_COST:
        chunks = quotequail.quote_html(html, limit=4 * count + 16, quote_intro_line=True)
        body_parts: list[str] = []
        quoted_parts: list[str] = []
        for expanded, chunk in chunks:
            (quoted_parts if quoted_parts or not expanded else body_parts).append(chunk)
        if quoted_parts:
            body_html = "".join(body_parts)
            candidates.append((_visible_chars_of(body_html), 1, body_html, "".join(quoted_parts)))

    if not candidates:
        return FoldedHtml(html)
    _, _, body_html, quoted_html = min(candidates)
    if not quoted_html.strip():
        return FoldedHtml(html)
    return FoldedHtml(body_html, quoted_html)


def _parse(markup: str) -> HtmlElement:
    """Parse into a full document tree (fragments get html/head/body); raises on empty documents."""
    cleaned = _XML_ILLEGAL_RE.sub("", markup)
    parser = lxml.html.HTMLParser(encoding="utf-8")
    return lxml.html.document_fromstring(cleaned.encode("utf-8"), parser=parser)


def _quotequail_cost(root: HtmlElement) -> int:
    """Sum of the squared lengths of the lines quotequail will match (lines end at blocks and <br>)."""
    cost = 0
    line = 0
    for event, node in lxml.etree.iterwalk(root, events=("start", "end")):
        if isinstance(node.tag, str):
            if node.tag not in _INLINE_TAGS:
                cost += line * line
                line = 0
            if event == "start":
                line += len(node.text or "")
        if event == "end":
            line += len(node.tail or "")
    return cost + line * line


def _first_marker(root: HtmlElement) -> HtmlElement | None:
    """The first element, in document order, that a mail client uses to wrap quoted history."""
    # Every client marks quotes on a <div> or a <blockquote>; iter() filters tags in C.
    return next((element for element in root.iter("div", "blockquote") if _is_marker(element)), None)


def _is_marker(element: HtmlElement) -> bool:
    """Whether the element starts quoted history (Gmail, Apple Mail, Thunderbird, Outlook, Yahoo markup)."""
    tag = element.tag
    if not isinstance(tag, str) or tag in ("html", "head", "body"):
        return False
    if tag == "blockquote" and (element.get("type") or "").strip().lower() == "cite":
        return True
    if _MARKER_CLASSES.intersection((element.get("class") or "").split()):
        return True
    ident = element.get("id") or ""
    if ident and any(ident == marker or ident.endswith("_" + marker) for marker in _MARKER_IDS):
        return True
    style = element.get("style")
    if tag == "div" and style and "border-top:solid" in _SPACE_RE.sub("", style.lower()):
        return _HTML_FIELD_RE.match(_leading_text(element).lstrip()) is not None
    return False


def _leading_text(element: HtmlElement, limit: int = 200) -> str:
    """The first ``limit`` characters of the element's text, without walking all of it."""
    parts: list[str] = []
    size = 0
    for piece in element.itertext():
        parts.append(piece)
        size += len(piece)
        if size >= limit:
            break
    return "".join(parts)[:limit]


def _cut_at(root: HtmlElement, marker: HtmlElement) -> tuple[HtmlElement, HtmlElement]:
    """Two trees: everything before the marker, and the marker with everything after it."""
    position = next(i for i, node in enumerate(root.iter()) if node is marker)
    body_root = copy.deepcopy(root)
    body_marker = next(node for i, node in enumerate(body_root.iter()) if i == position)
    _drop_from(body_marker)
    _drop_before(marker)
    return body_root, root


def _drop_from(marker: HtmlElement) -> None:
    """Remove the marker and everything after it in document order (ancestors stay, emptied)."""
    node = marker
    parent = node.getparent()
    while parent is not None:
        for sibling in list(node.itersiblings()):
            parent.remove(sibling)  # lxml removes the tail text with the element
        if node is not marker:
            node.tail = None
        node, parent = parent, parent.getparent()
    owner = marker.getparent()
    if owner is not None:
        owner.remove(marker)


def _drop_before(marker: HtmlElement) -> None:
    """Remove everything before the marker in document order, keeping <head> (styles)."""
    node = marker
    parent = node.getparent()
    while parent is not None:
        parent.text = None
        for sibling in list(node.itersiblings(preceding=True)):
            if sibling.tag != "head":
                parent.remove(sibling)
        node, parent = parent, parent.getparent()


def _render(root: HtmlElement, full_document: bool) -> str:
    """Serialise a tree: a whole document if the input was one, else the fragment's content."""
    if full_document:
        return lxml.html.tostring(root, encoding="unicode")
    parts: list[str] = [html_lib.escape(root.text or "", quote=False)]
    for child in root:
        if child.tag in ("head", "body"):
            parts.append(html_lib.escape(child.text or "", quote=False))
            parts.extend(lxml.html.tostring(grandchild, encoding="unicode") for grandchild in child)
            parts.append(html_lib.escape(child.tail or "", quote=False))
        else:
            parts.append(lxml.html.tostring(child, encoding="unicode"))
    return "".join(parts).strip()


def _visible_chars(root: HtmlElement) -> int:
    """How many non-space characters of text the tree holds."""
    return sum(len(_SPACE_RE.sub("", piece)) for piece in root.itertext())


def _visible_chars_of(markup: str) -> int:
    """``_visible_chars`` of an HTML string (0 for an empty one)."""
    if not markup.strip():
        return 0
    try:
        return _visible_chars(_parse(markup))
    except lxml.etree.ParserError:  # nothing but a comment, say
        return 0
