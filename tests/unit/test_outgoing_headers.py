"""Header injection, fuzzed: whatever a user types or a synced message carries, the built message has
exactly the expected header fields and the envelope exactly the expected recipients."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from salesinbox.domain.errors import ValidationFailed
from salesinbox.services.outbox import WIRE, Attachment, OutgoingMessage, _build

NASTY = ["\r", "\n", "\r\n", "\x00", "\x85", "\u2028", "\u2029", "=?utf-8?q?=0D=0ABcc:_x@evil.test?=", "%0d%0a",
         "\r\nBcc: evil@attacker.test", "\nTo: evil@attacker.test", ",", ";", "<", ">", '"', "\\", "Ω", "ü", " "]
text = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)), max_size=8).map("".join)
local = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=10).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
address = st.builds(lambda name, user: (name, f"{user}@customer.example"), text, local)

ACCOUNT = SimpleNamespace(address="rep@acme.test", display_name="Rep", attachment_limit_bytes=10**7)
EXPECTED = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"}


@given(to=st.lists(address, min_size=1, max_size=3), cc=st.lists(address, max_size=2),
       bcc=st.lists(address, max_size=2), subject=text, display=text, parent_id=st.one_of(st.none(), text),
       filename=st.one_of(st.none(), text))
@settings(max_examples=2000, deadline=None)
def test_typed_values_never_add_a_header_or_a_recipient(to, cc, bcc, subject, display, parent_id, filename):
    account = SimpleNamespace(**{**vars(ACCOUNT), "display_name": display})
    parent = SimpleNamespace(id="p", message_id_header=parent_id) if parent_id is not None else None
    outgoing = OutgoingMessage(
        account_id="a", to=[f"{n} <{a}>" for n, a in to], cc=[f"{n} <{a}>" for n, a in cc], bcc=[a for _, a in bcc],
        subject=subject, text="body", attachments=[Attachment(filename, "text/plain", b"x")] if filename else [])
    try:
        message, recipients = _build(account, outgoing, parent)
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
