"""The fast part tree (mime/split.py) is the feedparser's tree, or it steps aside.

Equivalence is the whole contract: wherever ``split_message`` answers, its
tree has the same headers, payloads, preambles and epilogues as the compat32
``BytesParser`` tree, and ``parse_message`` gives the same ParsedMessage on
both paths. Generated messages cover what the corpus cannot: random
boundaries, preambles, epilogues, line ends, nesting and encodings.
"""

from __future__ import annotations

import base64
import email
import quopri
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesinbox.mime.parse import _OpaqueMessage, parse_message
from salesinbox.mime.split import split_message

CORPUS = Path(__file__).parent.parent / "fixtures" / "emails"
FIXTURES = sorted(path.name for path in CORPUS.glob("*.eml"))
# The corpus messages the feedparser must read: each has a defect or a quirk the fast path leaves to it.
LEFT_TO_THE_FEEDPARSER = {
    "delivery-status-report.eml",  # message/delivery-status is parsed as header blocks
    "truncated-mime.eml",  # no close delimiter
}
_FEEDPARSER = BytesParser(_class=_OpaqueMessage, policy=compat32)


def tree(message: Message) -> dict[str, object]:
    """Everything the parser sets on a part, children included; not the content-type cache."""
    fields = {name: value for name, value in vars(message).items() if name != "_type_cache"}
    fields["class"] = type(message)
    fields["defects"] = [repr(defect) for defect in message.defects]
    payload = message._payload  # the exact payload: get_payload() would copy or decode
    fields["_payload"] = [tree(part) for part in payload] if isinstance(payload, list) else payload
    return fields


def assert_same_as_the_feedparser(raw: bytes) -> bool:
    """Equal trees and equal ParsedMessages; whether the fast path answered."""
    fast = split_message(raw, _OpaqueMessage)
    if fast is not None:
        assert tree(fast) == tree(_FEEDPARSER.parsebytes(raw))
    assert parse_message(raw) == parse_message(raw, fast=False)
    return fast is not None


def split(raw: bytes) -> Message | None:
    return split_message(raw, _OpaqueMessage)


# --- the corpus ------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_every_corpus_message_gives_the_feedparsers_tree_and_result(name):
    took_fast_path = assert_same_as_the_feedparser((CORPUS / name).read_bytes())
    assert took_fast_path is (name not in LEFT_TO_THE_FEEDPARSER)


@pytest.mark.parametrize("name", FIXTURES)
def test_every_corpus_message_with_crlf_line_ends_gives_the_feedparsers_tree(name):
    raw = (CORPUS / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert_same_as_the_feedparser(raw)


# The stdlib's own email test messages (odd boundaries, digests, defects), where this Python ships them.
STDLIB_MESSAGES = sorted((Path(email.__file__).parent.parent / "test" / "test_email" / "data").glob("msg_*.txt"))


@pytest.mark.parametrize("path", STDLIB_MESSAGES, ids=lambda path: path.name)
def test_the_stdlib_email_test_messages_give_the_feedparsers_tree_and_result(path):
    raw = path.read_bytes()
    assert_same_as_the_feedparser(raw)
    assert_same_as_the_feedparser(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


# --- the rules, one at a time ------------------------------------------------------------

HEAD = b"From: a@acme.example\nSubject: s\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"


def test_the_line_end_before_a_delimiter_belongs_to_the_delimiter():
    raw = HEAD + b"pre\n\n--b\n\nfirst\n\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\nepi\n"
    message = split(raw)
    assert message is not None
    assert message.preamble == "pre\n"
    assert [part.get_payload() for part in message.get_payload()] == ["first\n", "<p>x</p>"]
    assert message.epilogue == "epi\n"
    assert_same_as_the_feedparser(raw)


def test_spaces_and_tabs_after_a_delimiter_still_delimit():
    raw = HEAD + b"--b \t\n\none\n--b\t\n\ntwo\n--b-- \n"
    assert [part.get_payload() for part in split(raw).get_payload()] == ["one", "two"]
    assert_same_as_the_feedparser(raw)


def test_lines_that_only_start_like_a_delimiter_stay_in_the_part():
    raw = HEAD + b"--b\n\n--bx\n --b\n--b-x\n-- b\n--b--\n"
    assert split(raw).get_payload()[0].get_payload() == "--bx\n --b\n--b-x\n-- b"
    assert_same_as_the_feedparser(raw)


def test_a_nested_multipart_ends_at_the_outer_delimiter_and_loses_one_line_end_of_its_epilogue():
    inner = b'Content-Type: multipart/alternative; boundary="in"\n\n--in\n\nplain\n--in--\ninner epilogue\n\n'
    raw = HEAD + b"--b\n" + inner + b"--b\n\nlast\n--b--\n"
    message = split(raw)
    nested = message.get_payload()[0]
    assert nested.epilogue == "inner epilogue\n"
    assert nested.get_payload()[0].get_payload() == "plain"
    assert_same_as_the_feedparser(raw)


def test_an_empty_nested_epilogue_is_none_as_the_feedparser_leaves_it():
    raw = HEAD + b'--b\nContent-Type: multipart/mixed; boundary="in"\n\n--in\n\nx\n--in--\n--b--\n'
    assert split(raw).get_payload()[0].epilogue is None
    assert_same_as_the_feedparser(raw)


def test_a_forwarded_message_stays_one_opaque_part():
    raw = HEAD + b"--b\nContent-Type: message/rfc822\n\nSubject: inner\n\n--not-ours\nbody\n--b--\n"
    forwarded = split(raw).get_payload()[0]
    assert forwarded.get_payload() == "Subject: inner\n\n--not-ours\nbody"
    assert_same_as_the_feedparser(raw)


def test_an_mbox_from_line_and_folded_headers_are_read_as_the_feedparser_reads_them():
    raw = b"From jane@acme.example Mon Jan 1 00:00:00 2024\nSubject: a\n folded\n\tagain\nX-Empty:\n\nbody"
    message = split(raw)
    assert message.get_unixfrom() == "From jane@acme.example Mon Jan 1 00:00:00 2024"
    assert message["Subject"] == "a\n folded\n\tagain"
    assert_same_as_the_feedparser(raw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\nno headers at all\n", id="empty header block, LF"),
        pytest.param(b"\r\nno headers at all\r\n", id="empty header block, CRLF"),
        pytest.param(b"X-Odd.Name!#$%&'*+^_`{|}~:value\nSubject:  two spaces \t\n\n", id="every name character"),
        pytest.param(b"Subject:\n  \n\tlast\nX: y\r\n\r\nbody\r\n", id="blank continuation lines"),
    ],
)
def test_header_blocks_are_cut_into_fields_as_the_feedparser_cuts_them(raw):
    assert split(raw) is not None
    assert_same_as_the_feedparser(raw)


def test_raw_8bit_bytes_are_kept_as_surrogate_escapes():
    raw = b"Subject: caf\xc3\xa9\nContent-Type: text/plain; charset=utf-8\n\ncaf\xc3\xa9\xff\n"
    assert split(raw)._payload == "caf\udcc3\udca9\udcff\n"  # get_payload() would decode it
    assert_same_as_the_feedparser(raw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(HEAD.replace(b"\n", b"\r") + b"--b\r\rx\r--b--\r", id="bare CR line ends"),
        pytest.param(HEAD + b"--b\n\nx\n--b\n\ny\n", id="no close delimiter"),
        pytest.param(HEAD + b"no delimiter at all\n", id="no delimiter"),
        pytest.param(HEAD + b"--b--\n", id="close delimiter only"),
        pytest.param(HEAD + b"--b\n--b\n\nx\n--b--\n", id="two delimiters in a row"),
        pytest.param(HEAD + b"--b\n\nx\n--b--\n--b\n\ny\n", id="a delimiter after the close"),
        pytest.param(HEAD + b"--b\n\nx\n--b--\n--b--\n", id="two close delimiters"),
        pytest.param(HEAD + b"--b\nnot a header\n\nx\n--b--\n", id="part without header separator"),
        pytest.param(HEAD + b"--b\nContent-Type: text/plain\n--b--\n", id="part without empty line"),
        pytest.param(HEAD + b"--b\n folded first\n\nx\n--b--\n", id="part starting with a continuation"),
        pytest.param(HEAD + b"--b\nFrom someone\n\nx\n--b--\n", id="part with an envelope line"),
        pytest.param(HEAD + b"--b\n: no name\n\nx\n--b--\n", id="header without a name"),
        pytest.param(b"Subject: s\nContent-Type: multipart/mixed\n\n--b\n\nx\n--b--\n", id="no boundary"),
        pytest.param(HEAD.replace(b'"b"', b'"b\xc3\xa9"') + b"--b\xc3\xa9\n\nx\n--b\xc3\xa9--\n", id="8-bit boundary"),
        pytest.param(
            HEAD + b'--b\nContent-Type: multipart/mixed; boundary="b1"\n\n--b1\n\nx\n--b1--\n--b--\n',
            id="nested boundary extends the outer one",
        ),
        pytest.param(
            HEAD.replace(b"\n\n", b"\nContent-Transfer-Encoding: base64\n\n") + b"--b\n\nx\n--b--\n",
            id="multipart in base64",
        ),
        pytest.param(HEAD.replace(b"mixed", b"digest") + b"--b\n\nSubject: x\n\ny\n--b--\n", id="digest"),
        pytest.param(b"Subject: only headers\nFrom: a@acme.example\n", id="no body separator at all"),
        pytest.param(b"Subject: s\nFrom x\n\nbody\n", id="envelope line after a header"),
        pytest.param(b"Subject: s\nNot a header\n\nbody\n", id="top-level header without a colon"),
    ],
)
def test_anything_unusual_is_left_to_the_feedparser_with_the_same_result(raw):
    assert split(raw) is None
    assert_same_as_the_feedparser(raw)


def test_nesting_past_the_fast_paths_depth_is_left_to_the_feedparser():
    depth = 25
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="n%03d"\n\n--n%03d\n' % (n, n) for n in range(depth))
    closing = b"".join(b"\n--n%03d--" % n for n in reversed(range(depth)))
    raw = b"Subject: deep\n" + opening + b"Content-Type: text/plain\n\ndeep text" + closing + b"\n"
    assert split(raw) is None
    assert parse_message(raw).text == "deep text"


# --- generated messages --------------------------------------------------------------------

_BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?"  # RFC 2046 bchars, no space
_TEXT = st.text(alphabet=st.sampled_from("abc xyz-=.\t>éł€ש"), max_size=120)
_LINES = st.lists(_TEXT, max_size=5)


@st.composite
def boundaries(draw: st.DrawFn, level: int) -> str:
    # A level tag keeps nested boundaries from being prefixes of each other (the fast path refuses those).
    core = draw(st.text(alphabet=_BCHARS, min_size=1, max_size=40))
    space = draw(st.sampled_from(["", " x"]))  # an inner space is allowed, a trailing one is not
    return f"{level}{core}{space}~{level}"


@st.composite
def leaves(draw: st.DrawFn) -> list[str]:
    ctype = draw(
        st.sampled_from(["text/plain", "text/html", "application/pdf", "image/png", "message/rfc822", "text/calendar"])
    )
    encoding = draw(st.sampled_from(["7bit", "8bit", "quoted-printable", "base64", None]))
    text = "\n".join(draw(_LINES))
    data = text.encode("utf-8") if ctype.startswith("text/") else draw(st.binary(max_size=300))
    if draw(st.integers(0, 9)) < 9:
        data = data.replace(b"\r", b"")  # now and then a bare CR, which the fast path leaves alone
    if ctype == "message/rfc822":
        data = b"Subject: forwarded\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\n\n" + data
    if encoding == "base64":
        body = base64.encodebytes(data).decode("ascii")
    elif encoding == "quoted-printable":
        body = quopri.encodestring(data).decode("ascii")
    else:
        body = data.decode("latin-1")  # surrogate-free stand-in for raw 8-bit bytes, encoded back as latin-1 below
    headers = [f"Content-Type: {ctype}; charset=utf-8"]
    if encoding:
        headers.append(f"Content-Transfer-Encoding: {encoding}")
    if draw(st.booleans()):
        headers.append('Content-Disposition: attachment;\n filename="r\u00e9sum\u00e9.pdf"')
    if draw(st.booleans()):
        headers = headers[::-1]  # no headers at all is allowed too: the part then starts with its empty line
    if draw(st.booleans()):
        headers = []
    return [*headers, "", *body.split("\n")]


def multiparts(level: int) -> st.SearchStrategy[list[str]]:
    children = leaves() if level >= 3 else st.one_of(leaves(), st.deferred(lambda: multiparts(level + 1)))
    return _multipart(children, level)


@st.composite
def _multipart(draw: st.DrawFn, children: st.SearchStrategy[list[str]], level: int) -> list[str]:
    boundary = draw(boundaries(level))
    subtype = draw(st.sampled_from(["mixed", "alternative", "related"]))
    quoted = f'"{boundary}"' if " " in boundary or draw(st.booleans()) else boundary
    lines = [f"Content-Type: multipart/{subtype};", f" boundary={quoted}", ""]
    lines += draw(st.lists(_TEXT, max_size=3))  # the preamble
    delimiter_space = draw(st.sampled_from(["", " ", "\t ", "  "]))
    for part in draw(st.lists(children, min_size=1, max_size=4)):
        lines += [f"--{boundary}{delimiter_space}", *part]
        if draw(st.booleans()):
            lines.append(f"--{boundary}x near miss")
    if draw(st.integers(0, 19)) < 19:  # now and then no close delimiter (Hypothesis favours 0: keep it common)
        lines.append(f"--{boundary}--{delimiter_space}")
    lines += draw(st.lists(_TEXT, max_size=3))  # the epilogue
    return lines


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    head = ["From: Jane <jane@acme.example>", "To: bob@customer.example", "Subject: generated", "MIME-Version: 1.0"]
    body = draw(multiparts(0) if draw(st.integers(0, 9)) < 9 else leaves())
    line_end = draw(st.sampled_from(["\n", "\r\n", "mixed"]))
    lines = [*head, *body]
    if line_end == "mixed":
        ends = draw(st.lists(st.sampled_from(["\n", "\r\n"]), min_size=len(lines), max_size=len(lines)))
        text = "".join(line + end for line, end in zip(lines, ends, strict=True))
    else:
        text = line_end.join(lines) + draw(st.sampled_from(["", line_end]))
    return text.encode("latin-1", "replace") if draw(st.booleans()) else text.encode("utf-8")


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_generated_messages_give_the_feedparsers_tree_and_result(raw):
    assert_same_as_the_feedparser(raw)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_well_formed_generated_messages_take_the_fast_path(raw):
    reference = _FEEDPARSER.parsebytes(raw)
    well_formed = not any(part.defects for part in reference.walk()) and raw.count(b"\r") == raw.count(b"\r\n")
    if well_formed:
        assert split(raw) is not None
