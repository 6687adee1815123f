"""Raw RFC 5322 bytes -> ``ParsedMessage``, for any input bytes, without raising.

The steps, and why in this order:

1. ``limits.measure`` looks at the raw bytes first (header block size,
   nesting depth, part count, total size; depth and parts only where the
   feedparser is to build the tree, as ``split_message`` refuses a tree
   past its own, lower limits). Over a limit, only the first
   100 KB of headers are read and a rough snippet is taken from the body:
   status "over_limit". This is what keeps a hostile message from costing
   more than a few milliseconds (the stdlib hit RecursionError at 1,000
   nested parts and took 31 s on 100,000 To: lines).
2. The part tree is built with ``policy.compat32`` messages: about three
   times faster than ``policy.default`` on whole messages and more lenient
   on part headers. ``_OpaqueMessage`` keeps the inside of message/rfc822
   attachments unparsed: we never read it. ``split.split_message`` builds
   the tree of a well-formed message (the great majority) from whole-buffer
   searches for its boundaries, only the small header blocks read line by
   line; it is the very tree the stdlib feedparser builds, which walks every
   line of every base64 attachment (about 1.5 µs a line) and is still used
   for anything unusual (defects, bare CR line ends, odd boundaries):
   ``split_message`` then returns ``None``. ``fast=False`` skips it, for
   the tests that hold the two equal.
3. ``bodies.read_body`` walks the tree: text, HTML, attachments with IMAP
   section numbers.
4. ``headers.read_headers`` reads the top-level fields with
   ``policy.default`` header objects, falling back to lenient decoding.

Status: "ok"; "malformed" when anything needed a fallback (each one is in
``problems``); "over_limit" (step 1); "unparseable" when there is nothing
that looks like a header at all (empty input, random bytes).
``content_hash`` is the SHA-256 of the raw bytes: raw MIME is stored by it
and is never lost, whatever the status.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32

from salesinbox.mime.bodies import AttachmentInfo, Body, read_body
from salesinbox.mime.charsets import clean
from salesinbox.mime.headers import Address, Headers, read_headers
from salesinbox.mime.limits import MAX_HEADER_BYTES, Shape, measure
from salesinbox.mime.split import split_message

__all__ = ["Address", "AttachmentInfo", "ParsedMessage", "parse_message", "referred_ids"]

SNIPPET_LENGTH = 200
_SNIPPET_SCAN = 100_000  # characters of text looked at for a snippet: enough to get past a long quote
_ROUGH_SNIPPET_SCAN = 64 * 1024
_BASE64_LINE = re.compile(r"^[A-Za-z0-9+/=]{40,}$")


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None  # without <>, whitespace stripped; None when missing/garbage
    in_reply_to: tuple[str, ...]  # ids without <>
    references: tuple[str, ...]  # ids without <>, in header order, deduplicated
    subject: str  # decoded, whitespace-collapsed
    from_: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    date: datetime | None  # timezone-aware UTC; None when missing/unparseable
    text: str  # text/plain body (preferred), else the HTML body as text
    html: str | None  # the HTML body, UNSANITISED; None if none
    snippet: str  # start of `text`, whitespace collapsed, quoted lines dropped
    attachments: tuple[AttachmentInfo, ...]
    is_calendar: bool  # a text/calendar part (an invite) is present
    is_bulk: bool  # List-Id, List-Unsubscribe, Precedence bulk/list/junk, or Auto-Submitted other than "no"
    gm_thrid: str | None = None  # never set here: the IMAP layer knows it
    status: str = "ok"  # "ok" | "malformed" | "over_limit" | "unparseable"
    problems: tuple[str, ...] = ()  # short plain-English notes on what was wrong
    content_hash: str = ""  # sha256 hex of the raw bytes


class _OpaqueMessage(Message):
    """A compat32 message that keeps message/* parts as unparsed text, and answers its type fast.

    ``email.feedparser`` recurses into a part when ``get_content_maintype()``
    is "message"; forwarded mail is only ever an attachment to us, so saying
    "application" leaves its bytes as the payload: cheaper, and its size is
    simply the payload's length. ``get_content_type()`` still tells the truth.

    The feedparser asks a multipart for its type once per child, and each
    answer scans all its headers: 2,000 To: lines and 2,000 parts cost 4
    million comparisons. The answer is cached until the header count or the
    default type changes (the parser only ever adds headers).
    """

    _type_cache: tuple[tuple[int, str], str] | None = None

    def get_content_type(self) -> str:
        key = (len(self), self.get_default_type())
        if self._type_cache is None or self._type_cache[0] != key:
            self._type_cache = (key, super().get_content_type())
        return self._type_cache[1]

    def get_content_maintype(self) -> str:
        maintype = super().get_content_maintype()
        return "application" if maintype == "message" else maintype


_PARSER = BytesParser(_class=_OpaqueMessage, policy=compat32)
_HEADER_PARSER = BytesHeaderParser(_class=_OpaqueMessage, policy=compat32)


def parse_message(raw: bytes, *, max_bytes: int | None = None, fast: bool = True) -> ParsedMessage:
    """Parse raw message bytes. Never raises for bad input: any bytes give a ParsedMessage.

    ``fast=False`` builds the part tree with the stdlib feedparser only: the
    reference the fast path (``split.split_message``) is tested against.
    """
    content_hash = hashlib.sha256(raw).hexdigest()
    if not raw.strip():
        return _assemble(Headers(), Body(), "unparseable", ["empty message"], content_hash)
    shape = measure(raw, max_bytes, structure=False)
    if shape.over_limit:
        return _read_over_limit(raw, shape, content_hash)
    message = _split(raw) if fast else None
    if message is None:  # the feedparser's turn: the whole structure is measured first
        shape = measure(raw, max_bytes)
        if shape.over_limit:
            return _read_over_limit(raw, shape, content_hash)
        try:
            message = _PARSER.parsebytes(raw)
        except RecursionError:  # only if limits.measure missed a deep structure (e.g. bare-CR line ends mixed in)
            return _read_over_limit(raw, Shape(shape.body_start, "MIME structure too deep to parse"), content_hash)
    body = read_body(message)
    headers = read_headers(message.raw_items(), hint=body.charset)
    problems = headers.problems + body.problems
    if headers.count == 0:
        return _assemble(headers, body, "unparseable", ["no header fields found", *problems], content_hash)
    return _assemble(headers, body, "malformed" if problems else "ok", problems, content_hash)


def referred_ids(raw: bytes) -> tuple[str, ...]:
    """The ids a reply to this message must name before its Message-ID (RFC 5322 3.6.4), without <>.

    Its References, else its In-Reply-To when that names exactly one message;
    read from the header block alone (at most ``MAX_HEADER_BYTES``), parsed
    as ``parse_message`` parses them. Never raises for bad input.
    """
    block = raw[:MAX_HEADER_BYTES]
    if len(raw) > MAX_HEADER_BYTES:
        block = block[: block.rfind(b"\n") + 1]  # drop the partial last line
    wanted = ("references", "in-reply-to")
    items = [(n, v) for n, v in _HEADER_PARSER.parsebytes(block).raw_items() if n.strip().lower() in wanted]
    headers = read_headers(items)
    if headers.references:
        return headers.references
    return headers.in_reply_to if len(headers.in_reply_to) == 1 else ()


def _part_tree(raw: bytes) -> Message:
    tree = _split(raw)
    return _PARSER.parsebytes(raw) if tree is None else tree


def _split(raw: bytes) -> Message | None:
    try:
        return split_message(raw, _OpaqueMessage)
    except Exception:  # a case split.py did not foresee: the feedparser's answer is the right one anyway
        return None


def _read_over_limit(raw: bytes, shape: Shape, content_hash: str) -> ParsedMessage:
    block = raw[: min(shape.body_start, MAX_HEADER_BYTES)]
    if shape.body_start > MAX_HEADER_BYTES:
        block = block[: block.rfind(b"\n") + 1]  # drop the partial last line
    headers = read_headers(_HEADER_PARSER.parsebytes(block).raw_items())
    text = _rough_text(raw[shape.body_start : shape.body_start + _ROUGH_SNIPPET_SCAN])
    body = Body(text=text)
    return _assemble(headers, body, "over_limit", [str(shape.over_limit), *headers.problems], content_hash)


def _assemble(headers: Headers, body: Body, status: str, problems: list[str], content_hash: str) -> ParsedMessage:
    return ParsedMessage(
        message_id=headers.message_id,
        in_reply_to=headers.in_reply_to,
        references=headers.references,
        subject=headers.subject,
        from_=headers.from_,
        reply_to=headers.reply_to,
        to=headers.to,
        cc=headers.cc,
        bcc=headers.bcc,
        date=headers.date,
        text=body.text,
        html=body.html,
        snippet=make_snippet(body.text),
        attachments=body.attachments,
        is_calendar=body.is_calendar,
        is_bulk=headers.is_bulk,
        status=status,
        problems=tuple(dict.fromkeys(problems)),
        content_hash=content_hash,
    )


def make_snippet(text: str, length: int = SNIPPET_LENGTH) -> str:
    """The first ``length`` characters of ``text``: quoted lines dropped, whitespace collapsed, cut at a word."""
    words: list[str] = []
    size = 0
    for line in text[:_SNIPPET_SCAN].splitlines():
        if line.lstrip().startswith(">"):
            continue
        for word in line.split():
            words.append(word)
            size += len(word) + 1
        if size > length:
            break
    snippet = " ".join(words)
    if len(snippet) <= length:
        return snippet
    cut = snippet.rfind(" ", 0, length + 1)
    return snippet[: cut if cut > length * 3 // 4 else length].rstrip()


def _rough_text(body: bytes) -> str:
    """Best-effort readable lines from a body too big or deep to parse: no MIME headers, delimiters, base64."""
    kept: list[str] = []
    size = 0
    in_part_headers = False
    for line in clean(body.decode("utf-8", "replace")).splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            in_part_headers = True
        elif not stripped:
            in_part_headers = False
        elif not in_part_headers and not _BASE64_LINE.match(stripped):
            kept.append(stripped)
            size += len(stripped) + 1
            if size > SNIPPET_LENGTH:
                break
    return make_snippet("\n".join(kept))
