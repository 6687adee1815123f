"""The part tree of a well-formed message, cut with whole-buffer searches instead of line by line.

``email.feedparser`` reads a message one line at a time (about 1.5 µs a
line) and checks every line against the boundary of each open multipart;
most of a mailbox's lines are base64 attachments we never decode. This
module builds the very same tree, with the same message class, headers,
payloads, preambles and epilogues, from a few ``str.find`` calls per part:

- the text is the raw bytes decoded as ASCII with ``surrogateescape``, as
  the compat32 ``BytesParser`` decodes them, so payloads are the same strings;
- a part's header block is its lines up to the first empty line, each one a
  field or a continuation (and the message's first line may be an mbox
  ``From `` line), cut into fields as ``FeedParser._parse_headers`` cuts them
  and stored as ``policy.compat32.header_source_parse`` stores them;
- in a multipart's body, a delimiter line (RFC 2046 5.1.1) is ``--boundary``,
  optionally followed by ``--`` (the close delimiter) and spaces or tabs, and
  a line end; the line end before a delimiter belongs to the delimiter, so it
  is not part of the preceding part's payload, preamble or a nested
  multipart's epilogue (and an empty nested epilogue is ``None``), as the
  feedparser leaves them;
- message/* parts stay opaque (``_OpaqueMessage`` calls them "application").

Why regions are enough: the feedparser ends a part at a delimiter of its own
multipart or of any enclosing one. Every delimiter of a multipart is found
in its whole body, and each child is cut strictly between two of them, so
no region holds an enclosing multipart's delimiter line, and the first
delimiter line the feedparser meets is the one found here.

A tree deeper than ``MAX_DEPTH``, with more than ``MAX_PARTS`` parts or
with a Content-Type field over ``limits.MAX_CONTENT_TYPE_BYTES`` is refused
too: the caller then measures the message in full (``limits.measure``), so
these limits, lower than its own, let it skip that walk for the rest.

Anything else returns ``None`` and the caller parses with the feedparser
instead: a bare CR line end, a missing header/body separator, a multipart
without a boundary, with a non-ASCII or nested-prefix boundary, without its
first or close delimiter, with delimiters after the close or two in a row,
an invalid transfer encoding on a multipart, message/delivery-status and
multipart/digest parts, nesting or part counts past a modest limit. Those
are the places where the feedparser records defects or has quirks; the
well-formed majority never reaches them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import Message
from itertools import pairwise

from salesinbox.mime.limits import MAX_CONTENT_TYPE_BYTES

__all__ = ["split_message"]

MAX_DEPTH = 20  # nesting deeper than this goes to the feedparser; real mail nests 3-4 deep
MAX_PARTS = 1_000

_BARE_CR = re.compile(rb"\r(?!\n)")
# A field is a line "name:" (printable ASCII but ":", as email.feedparser.headerRE) and its continuation lines.
_FIELD_PATTERN = r"([\041-\071\073-\176]+):([^\n]*\n(?:[ \t][^\n]*\n)*)"
_FIELD = re.compile(_FIELD_PATTERN)
_FIELDS = re.compile(f"(?:{_FIELD_PATTERN})*")
_DELIMITER_TAIL = re.compile(r"(--)?[ \t]*(?:\r?\n|\Z)")
_PLAIN_BOUNDARY = re.compile(r"[\x20-\x7e]+")
_MULTIPART_ENCODINGS = ("7bit", "8bit", "binary")


class _Unusual(Exception):
    """Something the feedparser would treat specially: leave the message to it."""


def split_message(raw: bytes, new_part: Callable[[], Message]) -> Message | None:
    """The compat32 part tree of ``raw`` made with ``new_part``; ``None`` where only the feedparser will do."""
    if b"\r" in raw and _BARE_CR.search(raw):  # a bare CR is a line end to the feedparser
        return None
    text = raw.decode("ascii", "surrogateescape")
    try:
        return _Splitter(text, new_part).message()
    except _Unusual:
        return None


def _strip_line_end(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


class _Splitter:
    def __init__(self, text: str, new_part: Callable[[], Message]) -> None:
        self.text = text
        self.new_part = new_part
        self.parts = 0

    def message(self) -> Message:
        message = self.new_part()
        body_start = self.read_headers(message, 0, len(self.text), first=True)
        self.read_body(message, body_start, len(self.text), ())
        return message

    def read_headers(self, part: Message, start: int, end: int, *, first: bool = False) -> int:
        """Set the header fields of the part starting at ``start``; the offset of its body."""
        text = self.text
        if first and text.startswith("From ", start, end):  # an mbox envelope line, allowed first only
            newline = text.find("\n", start, end)
            if newline < 0:
                raise _Unusual
            part.set_unixfrom(_strip_line_end(text[start : newline + 1]))
            start = newline + 1
        fields_end = _FIELDS.match(text, start, end).end()
        # Anything but an empty line after the fields is a defect: a line that is no field, a continuation
        # without a field, an envelope line out of place, a name missing, or no empty line before the end.
        if text.startswith("\n", fields_end, end):
            body_start = fields_end + 1
        elif text.startswith("\r\n", fields_end, end):
            body_start = fields_end + 2
        else:
            raise _Unusual
        for name, value in _FIELD.findall(text, start, fields_end):
            if len(value) > MAX_CONTENT_TYPE_BYTES and name.lower() == "content-type":
                raise _Unusual  # over the limit limits.measure names (its parameters are parsed in quadratic time)
            # As compat32.header_source_parse: leading blanks of the value and trailing line ends go.
            part.set_raw(name, value.lstrip(" \t").rstrip("\r\n"))
        return body_start

    def read_body(self, part: Message, start: int, end: int, enclosing: tuple[str, ...]) -> None:
        """Fill ``part``'s payload from ``text[start:end]``, the rest of its region."""
        if part.get_content_type() == "message/delivery-status":  # parsed as header blocks
            raise _Unusual
        if part.get_content_maintype() != "multipart":
            payload = self.text[start:end]
            part.set_payload(_strip_line_end(payload) if enclosing else payload)
            return
        boundary = self.boundary_of(part, enclosing)
        delimiters = self.delimiters(boundary, start, end)
        first_start = delimiters[0][0]
        if first_start > start:
            part.preamble = _strip_line_end(self.text[start:first_start])
        inner = (*enclosing, boundary)
        for (_, child_start, _), (child_end, _, _) in pairwise(delimiters):
            self.read_child(part, child_start, child_end, inner)
        part.epilogue = self.text[delimiters[-1][1] : end]

    def read_child(self, parent: Message, start: int, end: int, enclosing: tuple[str, ...]) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS or len(enclosing) > MAX_DEPTH:
            raise _Unusual
        child = self.new_part()
        parent.attach(child)
        self.read_body(child, self.read_headers(child, start, end), end, enclosing)
        if child.get_content_maintype() == "multipart":
            epilogue = child.epilogue
            child.epilogue = _strip_line_end(epilogue) if epilogue else None

    def boundary_of(self, part: Message, enclosing: tuple[str, ...]) -> str:
        boundary = part.get_boundary()
        if not boundary or not _PLAIN_BOUNDARY.fullmatch(boundary):
            raise _Unusual  # NoBoundaryInMultipartDefect, or a boundary to be careful with
        if any(boundary.startswith(outer) or outer.startswith(boundary) for outer in enclosing):
            raise _Unusual  # one delimiter line could be read as either
        if str(part.get("content-transfer-encoding", "8bit")).lower() not in _MULTIPART_ENCODINGS:
            raise _Unusual  # InvalidMultipartContentTransferEncodingDefect
        if part.get_content_type() == "multipart/digest":  # its parts default to message/rfc822
            raise _Unusual
        return boundary

    def delimiters(self, boundary: str, start: int, end: int) -> list[tuple[int, int, bool]]:
        """Every delimiter line in ``text[start:end]``: (line start, line end, is the close delimiter).

        Well formed means: at least one delimiter, then the close delimiter
        last, and never two delimiter lines in a row (an empty part, which the
        feedparser skips).
        """
        text = self.text
        marker = "\n--" + boundary
        found: list[tuple[int, int, bool]] = []
        pos = text.find(marker, start - 1, end)
        while pos >= 0:
            tail = _DELIMITER_TAIL.match(text, pos + len(marker), end)
            if tail:
                if found and found[-1][1] == pos + 1:
                    raise _Unusual
                found.append((pos + 1, tail.end(), tail.group(1) is not None))
            pos = text.find(marker, pos + 1, end)
        if len(found) < 2 or not found[-1][2] or any(close for _, _, close in found[:-1]):
            raise _Unusual  # StartBoundaryNotFoundDefect, CloseBoundaryNotFoundDefect, or text after the close
        return found
