"""limits.measure scans CRLF mail in place: the same structure as the scan of a copy with LF line ends.

``reference_events`` is the scan as it was written first (prefix a LF, turn
every CRLF and CR into LF, then search): the oracle the in-place scan must
agree with, event for event, on any bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesinbox.mime import limits

CORPUS = Path(__file__).parent.parent / "fixtures" / "emails"
FIXTURES = sorted(path.name for path in CORPUS.glob("*.eml"))

_CONTENT_TYPE = re.compile(rb"\ncontent-type[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)", re.IGNORECASE)
_DELIMITER = re.compile(rb"\n--([^\n]{1,200})")


def reference_events(raw: bytes) -> tuple[list[tuple[int, bytes]], str | None]:
    scan = b"\n" + raw
    if b"\r" in scan:
        scan = scan.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    declarations = []
    for found in _CONTENT_TYPE.finditer(scan):
        value = found.group(1)
        if len(value) > limits.MAX_CONTENT_TYPE_BYTES:
            return [], "too long"
        boundary = limits._BOUNDARY.search(value) if limits._MULTIPART.match(value) else None
        if boundary:
            quoted, bare = boundary.groups()
            declarations.append((found.start(), limits._OPENS, (bare if quoted is None else quoted).rstrip()))
    if not declarations:
        return [], None
    known = {boundary for _, _, boundary in declarations}
    delimiters = []
    for found in _DELIMITER.finditer(scan):
        line = found.group(1).rstrip(b" \t")
        if line in known or line.removesuffix(b"--") in known:
            delimiters.append((found.start(), limits._DELIMITS, line))
    return [(kind, text) for _, kind, text in sorted(declarations + delimiters)], None


def assert_same_events(raw: bytes) -> None:
    events, reason = limits._structure_events(raw)
    expected, expected_reason = reference_events(raw)
    assert [(kind, text) for _, kind, text in events] == expected
    assert (reason is None) is (expected_reason is None)


def line_ends(raw: bytes, end: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", end)


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("name", FIXTURES)
def test_every_corpus_message_has_the_same_structure_with_any_line_ends(name, end):
    assert_same_events(line_ends((CORPUS / name).read_bytes(), end))


PIECES = [
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"\r\n\t",
    b"\r\n ",
    b"--",
    b"--b",
    b"--b--",
    b"--b c",
    b"--\r\n",
    b"Content-Type: multipart/mixed; boundary=b",
    b'content-type:MULTIPART/alternative;\r\n boundary="b c"',
    b"Content-Type: multipart/related;\n\tboundary=\"\"",
    b"Content-Type: text/plain",
    b"boundary=b",
    b"x" * 199,
    b"x" * 200,
    b"\xff",
    b'Content-Type: multipart/mixed; boundary=""',
    b'Content-Type: multipart/mixed; boundary="a\r\n b"',
]


@settings(max_examples=1_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=4)), max_size=40))
def test_any_bytes_have_the_same_structure_as_the_scan_of_an_lf_copy(pieces):
    assert_same_events(b"".join(pieces))


FOLDED = b"".join(b"\r\n x" + b"y" * 37 for _ in range(400))  # 16,000 bytes with LF line ends, 16,400 with CRLF


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\n\r\nx\r\n--\r\n', id="empty boundary"),
        pytest.param(b'Content-Type: multipart/mixed; boundary="a\r\n b"\r\n\r\n--a\r\n', id="folded quoted boundary"),
        pytest.param(b"Content-Type: multipart/mixed; boundary=b;" + FOLDED + b"\r\n\r\n--b\r\n", id="long value"),
        pytest.param(b"Content-Type: multipart/mixed; boundary=b  \r\n\r\n--b \t\r\n--b--\r\n", id="spaces"),
        pytest.param(b"Content-Type: multipart/mixed; boundary=b\r\r\n--b\r\n", id="a bare CR before a CRLF"),
    ],
)
def test_crlf_edge_cases_have_the_same_structure(raw):
    assert_same_events(raw)
    assert limits._structure_events(raw)[0] or limits._structure_events(raw)[1]


def test_a_content_type_on_the_first_line_and_a_delimiter_of_199_characters_are_found():
    boundary = b"b" * 197
    raw = b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--" + boundary + b"\r\n\r\nx\r\n"
    events, _ = limits._structure_events(raw)
    assert [kind for _, kind, _ in events] == [limits._OPENS, limits._DELIMITS]
    assert_same_events(raw)
