"""Header injection, fuzzed: whatever a user types or a synced message carries, the built message has
exactly the expected header fields and the envelope exactly the expected recipients. A reply's
References: the parent's chain, then the parent (RFC 5322 3.6.4), each id one clean token, bounded."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.message import Message
from email.policy import default
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from salesinbox.domain.errors import ValidationFailed
from salesinbox.mime.parse import referred_ids
from salesinbox.services.outbox import MAX_REFERENCE_ID, MAX_REFERENCES, WIRE, Attachment, OutgoingMessage, _build

NASTY = ["\r", "\n", "\r\n", "\x00", "\x85", "\u2028", "\u2029", "=?utf-8?q?=0D=0ABcc:_x@evil.test?=", "%0d%0a",
         "\r\nBcc: evil@attacker.test", "\nTo: evil@attacker.test", ",", ";", "<", ">", '"', "\\", "Ω", "ü", " "]
text = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)), max_size=8).map("".join)
local = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=10).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
# Message ids as a synced message may carry them: hostile pieces, encoded words, huge ones.
HUGE = ["x" * 5000 + "@big.example", "=?utf-8?q?" + "=0D=0A" * 300 + "?=", "a@b " * 400]
msg_id = st.one_of(text, st.sampled_from(HUGE), text.map(lambda t: f"<{t}@customer.example>"),
                   st.text(alphabet="abcdef0123456789.-", min_size=1, max_size=12).map(lambda t: f"<{t}@ok.example>"))
address = st.builds(lambda name, user: (name, f"{user}@customer.example"), text, local)

ACCOUNT = SimpleNamespace(address="rep@acme.test", display_name="Rep", attachment_limit_bytes=10**7)
EXPECTED = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"}


@given(to=st.lists(address, min_size=1, max_size=3), cc=st.lists(address, max_size=2),
       bcc=st.lists(address, max_size=2), subject=text, display=text, parent_id=st.one_of(st.none(), msg_id),
       chain=st.lists(msg_id, max_size=8), filename=st.one_of(st.none(), text))
@settings(max_examples=2000, deadline=None)
def test_typed_values_never_add_a_header_or_a_recipient(to, cc, bcc, subject, display, parent_id, chain, filename):
    account = SimpleNamespace(**{**vars(ACCOUNT), "display_name": display})
    parent = SimpleNamespace(id="p", message_id_header=parent_id) if parent_id is not None else None
    outgoing = OutgoingMessage(
        account_id="a", to=[f"{n} <{a}>" for n, a in to], cc=[f"{n} <{a}>" for n, a in cc], bcc=[a for _, a in bcc],
        subject=subject, text="body", attachments=[Attachment(filename, "text/plain", b"x")] if filename else [])
    try:
        message, recipients = _build(account, outgoing, parent, chain)
    except ValidationFailed:
        return  # refused, with words: nothing built, nothing sent
    built = message_from_bytes(message.as_bytes(policy=WIRE), policy=default)

    names = [k.lower() for k in built.keys()]
    expected = EXPECTED | ({"cc"} if cc else set())
    optional = {"in-reply-to", "references", "content-transfer-encoding"}
    assert expected <= set(names) <= expected | optional
    assert len(names) == len(set(names))  # no header twice
    assert "bcc" not in names
    assert recipients == list(dict.fromkeys(a for _, a in (*to, *cc, *bcc)))
    assert [a.addr_spec for a in built["To"].addresses] == [a for _, a in to]
    if cc:
        assert [a.addr_spec for a in built["Cc"].addresses] == [a for _, a in cc]
    assert "\n" not in str(built["Subject"]) and "\r" not in str(built["Subject"])
    part_headers = {"content-type", "content-transfer-encoding", "content-disposition", "mime-version"}
    for part in list(built.walk())[1:]:
        assert {key.lower() for key in part.keys()} <= part_headers
    assert_reply_ids(built)


ID_TOKEN = re.compile(r"<[!-;=?-~]+>")


def assert_reply_ids(built) -> None:
    """In-Reply-To and References together or not at all: clean <id> tokens, the parent last, bounded."""
    names = {k.lower() for k in built.keys()}
    assert ("in-reply-to" in names) == ("references" in names)
    if "references" not in names:
        return
    in_reply_to, references = str(built["In-Reply-To"]), str(built["References"]).split()
    assert ID_TOKEN.fullmatch(in_reply_to)
    assert all(ID_TOKEN.fullmatch(i) for i in references) and "=?" not in str(built["References"])
    assert references[-1] == in_reply_to and len(set(references)) == len(references) <= MAX_REFERENCES
    assert all(len(i) <= MAX_REFERENCE_ID + 2 for i in references[:-1])


def parent_raw(references: list[str], in_reply_to: list[str], message_id: str) -> bytes:
    """A synced parent's raw header block, the values written as a hostile sender may (raw UTF-8, encoded words)."""
    lines = [f"Message-ID: {message_id}", "From: a@customer.example", "Subject: x"]
    lines += [f"References: {v}" for v in references] + [f"In-Reply-To: {v}" for v in in_reply_to]
    return ("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode("utf-8", "surrogatepass")


@given(references=st.lists(st.lists(msg_id, max_size=25).map(" ".join), max_size=3),
       in_reply_to=st.lists(msg_id, max_size=2), parent_id=msg_id)
@settings(max_examples=2000, deadline=None)
def test_a_synced_chain_never_adds_a_header_or_a_recipient(references, in_reply_to, parent_id):
    raw = parent_raw(references, in_reply_to, parent_id)
    parent = SimpleNamespace(id="p", message_id_header=parent_id)
    outgoing = OutgoingMessage(account_id="a", to=["Customer <c@customer.example>"], subject="Re: x", text="body")

    message, recipients = _build(ACCOUNT, outgoing, parent, referred_ids(raw))
    built = message_from_bytes(message.as_bytes(policy=WIRE), policy=default)

    names = [k.lower() for k in built.keys()]
    assert set(names) <= EXPECTED | {"in-reply-to", "references", "content-transfer-encoding"}
    assert len(names) == len(set(names)) and recipients == ["c@customer.example"]
    assert [a.addr_spec for a in built["To"].addresses] == ["c@customer.example"]
    assert_reply_ids(built)


def reply_to(parent_headers: dict[str, str], parent_id: str = "<p3@customer.example>") -> Message:
    head = "".join(f"{name}: {value}\r\n" for name, value in {"Message-ID": parent_id, **parent_headers}.items())
    chain = referred_ids(f"{head}\r\nx\r\n".encode())
    outgoing = OutgoingMessage(account_id="a", to=["c@customer.example"], subject="Re: x", text="y")
    message, _ = _build(ACCOUNT, outgoing, SimpleNamespace(id="p", message_id_header=parent_id), chain)
    return message_from_bytes(message.as_bytes(policy=WIRE), policy=default)


def test_a_reply_names_the_parents_references_then_the_parent():
    built = reply_to({"References": "<p1@customer.example>\r\n <p2@acme.test>", "In-Reply-To": "<p2@acme.test>"})
    assert built["In-Reply-To"] == "<p3@customer.example>"
    assert built["References"].split() == ["<p1@customer.example>", "<p2@acme.test>", "<p3@customer.example>"]


def test_without_references_a_single_in_reply_to_starts_the_chain():
    assert reply_to({"In-Reply-To": "<p2@acme.test>"})["References"].split() == [
        "<p2@acme.test>", "<p3@customer.example>"]
    # Two ids in In-Reply-To say nothing certain about the thread: the parent alone.
    assert reply_to({"In-Reply-To": "<a@x.test> <b@x.test>"})["References"].split() == ["<p3@customer.example>"]
    assert reply_to({})["References"].split() == ["<p3@customer.example>"]


def test_a_long_chain_keeps_its_first_id_and_the_latest_ones():
    ids = [f"<m{n}@customer.example>" for n in range(60)]
    references = reply_to({"References": " ".join(ids)})["References"].split()
    assert references == [ids[0], *ids[-(MAX_REFERENCES - 2):], "<p3@customer.example>"]
    assert len(references) == MAX_REFERENCES


def test_an_id_that_is_not_one_clean_token_is_left_out_of_the_chain():
    hostile = ["<a@x.test>", "<=?utf-8?q?=0D=0ABcc:_evil@attacker.test?=@x>", "<" + "y" * 300 + "@x.test>",
               "<p3@customer.example>", "<b@x.test>", "<a@x.test>"]
    built = reply_to({"References": " ".join(hostile)})
    assert built["References"].split() == ["<a@x.test>", "<b@x.test>", "<p3@customer.example>"]
    assert built.get_all("Bcc") is None
