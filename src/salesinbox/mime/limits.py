"""Limits checked on the raw bytes before the stdlib ``email`` parser sees them.

The stdlib parser recurses once per nested multipart (RecursionError near
1,000 levels), keeps every part in memory, and its header and parameter
parsers are slow on huge or pathological values. So a message is measured
first, cheaply, with a few regular-expression scans and a bounded walk:

- the top-level header block must fit in ``MAX_HEADER_BYTES``;
- multipart nesting must not go deeper than ``MAX_DEPTH``;
- there must be at most ``MAX_PARTS`` parts;
- no Content-Type header may be longer than ``MAX_CONTENT_TYPE_BYTES``
  (``email.message._parseparam`` is quadratic in the number of parameters);
- the whole message must fit in ``max_bytes`` when the caller gives one.

The walk mirrors the stdlib's: a ``Content-Type: multipart/...; boundary=b``
header opens a level, a line ``--b`` starts a part of the innermost open
level that declared ``b`` (implicitly closing anything nested deeper), and
``--b--`` closes it. Declarations quoted inside text bodies can only make the
count larger, never smaller, so the measure errs on the safe side.

CR, LF and CRLF are all line ends to the stdlib. Mail with LF or CRLF line
ends (nearly all of it) is scanned in place, the CRs dropped from what the
patterns capture; a message with a bare CR is scanned as a copy with LF line
ends. Both give the same boundaries in the same order (tests/unit/test_mime_limits.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_HEADER_BYTES = 100 * 1024
MAX_DEPTH = 100
MAX_PARTS = 10_000
MAX_CONTENT_TYPE_BYTES = 16 * 1024

_BLANK_LINE = re.compile(rb"\n\r?\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
# Each line pattern twice: after a line end, and at the very start (no copy of the message with a LF in front).
_CONTENT_TYPE_FIELD = rb"content-type[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)"
_CONTENT_TYPE = re.compile(rb"\n" + _CONTENT_TYPE_FIELD, re.IGNORECASE)
_FIRST_CONTENT_TYPE = re.compile(_CONTENT_TYPE_FIELD, re.IGNORECASE)
_MULTIPART = re.compile(rb"\s*multipart/", re.IGNORECASE)
_BOUNDARY = re.compile(rb"""[\s;]boundary\s*=\s*(?:"([^"]*)"|([^\s;"]+))""", re.IGNORECASE)
# RFC 2046 caps boundaries at 70 characters; allow slack for sloppy senders.
_DELIMITER_LINE = rb"--([^\n]{1,200})"
_DELIMITER = re.compile(rb"\n" + _DELIMITER_LINE)
_FIRST_DELIMITER = re.compile(_DELIMITER_LINE)


@dataclass(frozen=True)
class Shape:
    """Where a message's body starts, and why it is over a limit (``None`` if it is not)."""

    body_start: int
    over_limit: str | None


def measure(raw: bytes, max_bytes: int | None = None, *, structure: bool = True) -> Shape:
    """``structure=False`` checks only what costs nothing: the size and the top-level header block.

    The walk over every line (a fifth of a whole parse) is then the caller's
    to skip: ``split.split_message`` refuses, on its own, any tree deeper or
    wider than its own, lower limits and any oversized Content-Type, and a
    message it refuses is measured in full before the feedparser sees it.
    """
    body_start = _find_body_start(raw)
    if max_bytes is not None and len(raw) > max_bytes:
        return Shape(body_start, f"message is {len(raw):,} bytes, over the {max_bytes:,}-byte limit")
    if body_start < 0:
        found = _BLANK_LINE.search(raw)
        return Shape(found.end() if found else len(raw), f"header block is over {MAX_HEADER_BYTES // 1024} KB")
    return Shape(body_start, _walk_structure(raw) if structure else None)


def _find_body_start(raw: bytes) -> int:
    """Offset of the first body byte; ``len(raw)`` when there is no body; -1 past the header limit."""
    if raw.startswith(b"\n"):
        return 1
    if raw.startswith(b"\r\n"):
        return 2
    found = _BLANK_LINE.search(raw, 0, MAX_HEADER_BYTES + 3)
    if found:
        return found.end()
    return len(raw) if len(raw) <= MAX_HEADER_BYTES else -1


_OPENS, _DELIMITS = 0, 1


def _walk_structure(raw: bytes) -> str | None:
    events, reason = _structure_events(raw)
    return reason or _count_levels(events)


def _structure_events(raw: bytes) -> tuple[list[tuple[int, int, bytes]], str | None]:
    """Boundary declarations and delimiter lines in message order, or why the message is over a limit."""
    scan = raw
    if b"\r" in raw and _BARE_CR.search(raw):
        # The stdlib treats CR, LF and CRLF alike as line ends; so does the scan.
        scan = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    # Otherwise every CR is the first half of a CRLF: the patterns find the same lines in ``raw`` as
    # in a copy with LF line ends, and dropping the CRs from what they capture gives the same text.
    declarations, reason = _declared_boundaries(scan)
    if reason or not declarations:
        return [], reason
    known = {boundary for _, _, boundary in declarations}
    delimiters = []
    for start, found in _line_matches(_DELIMITER, _FIRST_DELIMITER, scan):
        text = found.group(1)
        if text == b"\r":  # an empty "--" line: no match without its CR
            continue
        line = text.removesuffix(b"\r").rstrip(b" \t")
        if line in known or line.removesuffix(b"--") in known:
            delimiters.append((start, _DELIMITS, line))
    return sorted(declarations + delimiters), None


def _line_matches(
    after_line_end: re.Pattern[bytes], at_start: re.Pattern[bytes], scan: bytes
) -> Iterator[tuple[int, re.Match[bytes]]]:
    """(offset, match) of each line of ``scan`` that matches; the first line's offset is -1."""
    first = at_start.match(scan)
    if first:
        yield -1, first
    for found in after_line_end.finditer(scan):
        yield found.start(), found


def _declared_boundaries(scan: bytes) -> tuple[list[tuple[int, int, bytes]], str | None]:
    declarations = []
    for start, found in _line_matches(_CONTENT_TYPE, _FIRST_CONTENT_TYPE, scan):
        value = found.group(1).replace(b"\r", b"")
        if len(value) > MAX_CONTENT_TYPE_BYTES:
            return [], f"a Content-Type header is over {MAX_CONTENT_TYPE_BYTES // 1024} KB"
        boundary = _BOUNDARY.search(value) if _MULTIPART.match(value) else None
        if boundary:
            quoted, bare = boundary.groups()
            declarations.append((start, _OPENS, (bare if quoted is None else quoted).rstrip()))
            if len(declarations) > MAX_PARTS:
                return [], f"more than {MAX_PARTS:,} MIME parts"
    return declarations, None


def _count_levels(events: list[tuple[int, int, bytes]]) -> str | None:
    open_levels: list[bytes] = []
    parts = 0  # body parts under a boundary; the multipart containers themselves are not counted
    for _, kind, text in events:
        if kind == _OPENS:
            open_levels.append(text)
            if len(open_levels) > MAX_DEPTH:
                return f"MIME parts nested more than {MAX_DEPTH} deep"
            continue
        closing = text not in open_levels
        level = _innermost(open_levels, text.removesuffix(b"--") if closing else text)
        if level is None:
            continue
        del open_levels[level + (0 if closing else 1):]
        if not closing:
            parts += 1
            if parts > MAX_PARTS:
                return f"more than {MAX_PARTS:,} MIME parts"
    return None


def _innermost(open_levels: list[bytes], boundary: bytes) -> int | None:
    for level in range(len(open_levels) - 1, -1, -1):
        if open_levels[level] == boundary:
            return level
    return None
