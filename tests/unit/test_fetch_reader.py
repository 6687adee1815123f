"""The fast reader of FETCH answers: what it reads equals imapclient's general parser, and anything
outside the one shape it knows goes to that parser instead of being misread."""

from __future__ import annotations

import pytest
from imapclient.response_parser import parse_fetch_response

from salesinbox.adapters.imap.session import _fetched_by_imapclient, _read_fetched

RAW = b"From: a@example.com\r\nSubject: x\r\n\r\nbody ) with { braces } and BODY[] {3}\r\n"


def both(data: list) -> tuple[dict | None, dict]:
    return _read_fetched(data), _fetched_by_imapclient(parse_fetch_response(data, True, True))


@pytest.mark.parametrize(
    "data",
    [
        [(b"1 (UID 7 FLAGS (\\Seen $Label1) MODSEQ (42) BODY[] {%d}" % len(RAW), RAW), b")"],
        [(b"1 (UID 7 FLAGS () BODY[] {%d}" % len(RAW), RAW), b" MODSEQ (9))"],
        [(b"1 (FLAGS (\\Answered) BODY[] {%d}" % len(RAW), RAW), b" UID 8 X-GM-THRID 1278455344230334865)"],
        [(b"1 (UID 7 BODY[] {0}", b""), b")", (b"2 (UID 9 FLAGS (\\Seen) BODY[] {%d}" % len(RAW), RAW), b")"],
        [],
    ],
    ids=["flags-and-modseq", "items-after-the-literal", "gmail-thread-id", "empty-message-then-another", "none"],
)
def test_it_reads_what_the_general_parser_reads(data):
    fast, general = both(data)
    assert fast == general


@pytest.mark.parametrize(
    "data",
    [
        [(b"1 (UID 7 X-GM-LABELS (\"\\\\Important\" \"a (b)\") BODY[] {%d}" % len(RAW), RAW), b")"],
        [(b"1 (UID 7 INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" BODY[] {%d}" % len(RAW), RAW), b")"],
        [(b"1 (UID 7 BODY[] {%d}" % (len(RAW) + 1), RAW), b")"],  # a literal shorter than announced
        [b"3 (FLAGS (\\Seen) UID 3)"],  # an answer without a body
        [(b"1 (UID 7 BODY[] {%d}" % len(RAW), RAW), b" garbage)"],
        [(b"1 (FLAGS (\\Seen) BODY[] {%d}" % len(RAW), RAW), b")"],  # no UID
    ],
    ids=["gmail-labels", "internaldate", "short-literal", "no-body", "unknown-tail", "no-uid"],
)
def test_anything_else_goes_to_the_general_parser(data):
    assert _read_fetched(data) is None


def test_the_general_parser_fills_in_for_it():
    data = [(b"1 (UID 7 X-GM-LABELS (\"\\\\Inbox\") FLAGS (\\Seen) BODY[] {%d}" % len(RAW), RAW), b")"]
    assert _fetched_by_imapclient(parse_fetch_response(data, True, True)) == {7: (RAW, ("\\Seen",), None, None)}
